// The query engine's public face: backend selection and the `engine` class, which
// forwards to the backend behind the seam (engine_impl.hpp): the CPU engine
// (cpu_engine.cpp) or the device engine (cuda/engine.cu; no_device.cpp stands in for
// it in builds without CUDA).
#include "gpucredit/engine.hpp"

#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <string>

#include "cpu/query/engine_impl.hpp"
#include "gpucredit/error.hpp"

namespace gpucredit {

std::string_view to_string(backend b) noexcept { return b == backend::cpu ? "cpu" : "cuda"; }

std::vector<backend> compiled_backends() {
  if (detail::device_engine_built()) return {backend::cpu, backend::cuda};
  return {backend::cpu};
}

std::string backend_status(backend b) {
  if (b == backend::cpu) return "usable";
  if (!detail::device_engine_built()) return "not compiled into this build";
  return (detail::device_engine_available() ? "usable: " : "compiled in, not usable here: ") +
         detail::device_engine_status();
}

bool backend_available(backend b) { return b == backend::cpu || detail::device_engine_available(); }

namespace {

// Throws backend_unavailable saying why the CUDA backend cannot be used, if it cannot.
void require_device_engine() {
  if (!detail::device_engine_built()) {
    throw backend_unavailable("the CUDA backend is not compiled into this build of gpucredit");
  }
  if (!detail::device_engine_available()) {
    throw backend_unavailable("the CUDA backend cannot run here: " + detail::device_engine_status());
  }
}

}  // namespace

backend select_backend(std::string_view request) {
  std::string_view chosen = request;
  if (chosen == "auto") {
    if (const char* env = std::getenv("GPUCREDIT_BACKEND"); env != nullptr && *env != '\0') {
      chosen = env;
    }
  }
  if (chosen == "auto") return backend_available(backend::cuda) ? backend::cuda : backend::cpu;
  if (chosen == "cpu") return backend::cpu;
  if (chosen == "cuda") {
    require_device_engine();
    return backend::cuda;
  }
  throw backend_unavailable("unknown backend '" + std::string(chosen) + "' (expected auto, cpu or cuda)");
}

engine_options resolve_engine(std::string_view request, std::vector<int> devices) {
  engine_options options;
  options.devices = std::move(devices);
  std::string_view chosen = request;
  if (chosen == "auto") {
    if (const char* env = std::getenv("GPUCREDIT_BACKEND"); env != nullptr && *env != '\0') chosen = env;
  }
  if (chosen == "auto") {
    options.place = placement::cost_model;
    if (!options.devices.empty()) {  // named devices: engine::create says why one cannot be used
      if (!detail::device_engine_built()) {
        throw backend_unavailable("--device needs the CUDA backend, which is not compiled into this build of gpucredit");
      }
      options.where = backend::cuda;
    } else {
      options.where = backend_available(backend::cuda) ? backend::cuda : backend::cpu;
    }
    return options;
  }
  options.where = select_backend(chosen);
  if (options.where == backend::cpu && !options.devices.empty()) {
    throw backend_unavailable("--device names CUDA devices, but the backend asked for is cpu");
  }
  return options;
}

std::vector<int> parse_devices(std::string_view text) {
  std::vector<int> devices;
  std::size_t at = 0;
  while (at <= text.size()) {
    const std::size_t comma = std::min(text.find(',', at), text.size());
    int d = -1;
    const auto [ptr, ec] = std::from_chars(text.data() + at, text.data() + comma, d);
    if (ec != std::errc() || ptr != text.data() + comma || d < 0) {
      throw backend_unavailable("'" + std::string(text) + "' is not a device index or a list of them (such as 0 or 0,2)");
    }
    devices.push_back(d);
    at = comma + 1;
  }
  return devices;
}

engine::engine(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
engine::engine(engine&&) noexcept = default;
engine& engine::operator=(engine&&) noexcept = default;
engine::~engine() = default;

engine engine::create(const ledger_result& result, backend b) {
  return create(result.intervals, result.account_count, b);
}

engine engine::create(const interval_table& intervals, std::size_t account_count, backend b) {
  engine_options options;
  options.where = b;
  return create(intervals, account_count, options);
}

engine engine::create(const interval_table& intervals, std::size_t account_count, const engine_options& options) {
  if (options.where == backend::cuda) {
    if (options.devices.empty()) {
      require_device_engine();
    } else if (!detail::device_engine_built()) {
      throw backend_unavailable("the CUDA backend is not compiled into this build of gpucredit");
    }
    return engine(detail::make_device_engine(intervals, account_count, options));
  }
  return engine(detail::make_cpu_engine(intervals, account_count));
}

backend engine::kind() const noexcept { return impl_->kind(); }
std::string engine::describe() const { return impl_->describe(); }

void engine::grid(std::span<const account_index> accounts, const time_grid& grid, std::span<total_t> fleet,
                  std::span<amount_t> balances) const {
  if (fleet.size() != grid.count) throw error("engine::grid: fleet must hold one total per grid time");
  if (!balances.empty() && (grid.count == 0 || balances.size() / grid.count != accounts.size() ||
                            balances.size() % grid.count != 0)) {
    throw error("engine::grid: balances must be empty or hold accounts x grid times values");
  }
  if (grid.count == 0) return;
  if (grid.every <= 0) throw error("engine::grid: the grid's step must be positive");
  impl_->grid(accounts, grid, fleet, balances);
}

std::vector<amount_t> engine::balances(std::span<const account_index> accounts,
                                       std::span<const timestamp_t> times) const {
  std::vector<amount_t> out(accounts.size());
  balances(accounts, times, out);
  return out;
}

void engine::balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                      std::span<amount_t> out) const {
  if (accounts.size() != times.size() || out.size() != accounts.size()) {
    throw error("engine::balances: accounts, times and out differ in length");
  }
  impl_->balances(accounts, times, out);
}

std::optional<amount_t> engine::balance(account_index account, timestamp_t t) const {
  amount_t out = 0;
  impl_->balances({&account, 1}, {&t, 1}, {&out, 1});
  return as_optional(out);
}

}  // namespace gpucredit
