// The query engine's public face: backend selection and the `engine` class, which
// forwards to the backend behind the seam (engine_impl.hpp): the CPU engine
// (cpu_engine.cpp) or the device engine (cuda/engine.cu; no_device.cpp stands in for
// it in builds without CUDA).
#include "gpucredit/engine.hpp"

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

engine::engine(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
engine::engine(engine&&) noexcept = default;
engine& engine::operator=(engine&&) noexcept = default;
engine::~engine() = default;

engine engine::create(const ledger_result& result, backend b) {
  return create(result.intervals, result.account_count, b);
}

engine engine::create(const interval_table& intervals, std::size_t account_count, backend b) {
  if (b == backend::cuda) {
    require_device_engine();
    return engine(detail::make_device_engine(intervals, account_count));
  }
  return engine(detail::make_cpu_engine(intervals, account_count));
}

backend engine::kind() const noexcept { return impl_->kind(); }

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
