// The seam every query backend implements, and the factories that engine::create calls
// (internal). Plain C++: the CUDA backend defines its factories in cuda/engine.cu, and
// builds without it link no_device.cpp.
#pragma once

#include <memory>
#include <span>
#include <string>
#include <vector>

#include "cpu/query/step_index.hpp"
#include "gpucredit/engine.hpp"

namespace gpucredit {

class engine::impl {
 public:
  virtual ~impl() = default;
  virtual backend kind() const noexcept = 0;
  /// Writes the balances in query order into `out`, 0 for none; the spans have equal sizes.
  virtual void balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                        std::span<amount_t> out) const = 0;
  /// See engine::grid: `fleet` has grid.count entries, `balances` is empty or
  /// accounts.size() * grid.count.
  virtual void grid(std::span<const account_index> accounts, const time_grid& grid, std::span<total_t> fleet,
                    std::span<amount_t> balances) const = 0;
  /// See engine::describe.
  virtual std::string describe() const = 0;
  /// The backend's step index, copied to host memory.
  virtual step_index index() const = 0;
  /// The CPU step index when this is the CPU backend, else null.
  virtual const step_index* cpu_index() const noexcept { return nullptr; }
};

namespace detail {

/// The CPU engine over the step index built from `intervals`.
std::unique_ptr<engine::impl> make_cpu_engine(const interval_table& intervals, std::size_t account_count);
/// The CPU engine over `index`.
std::unique_ptr<engine::impl> make_cpu_engine(step_index index);
/// Whether the device engine was compiled into this build.
bool device_engine_built() noexcept;
/// Whether the device engine can run here (CUDA: a usable device is present).
bool device_engine_available();
/// What the device engine would run on, or why it cannot run here (runtime and driver
/// versions, the device, its compute capability), for `--version` and the device check.
std::string device_engine_status();
/// Builds the device engine from the interval table, on `options.devices` (or the
/// environment's choice) with `options.place`. Throws backend_unavailable for a device
/// that cannot be used, device_error when a device fails.
std::unique_ptr<engine::impl> make_device_engine(const interval_table& intervals, std::size_t account_count,
                                                 const engine_options& options);

/// What tests, benchmarks and diagnostics may see of an engine: its step index.
struct engine_access {
  /// The CPU step index; null on other backends.
  static const step_index* cpu_index(const engine& e) noexcept { return e.impl_->cpu_index(); }
  /// The engine's step index copied to host memory, whatever the backend (every backend
  /// must build the same one). Blocks.
  static step_index index(const engine& e) { return e.impl_->index(); }
};

}  // namespace detail
}  // namespace gpucredit
