// The seam every query backend implements, and the factories that engine::create calls.
// Plain C++: the CUDA backend defines its factory in cuda/engine.cu.
#pragma once

#include <memory>
#include <span>
#include <vector>

#include "gpucredit/engine.hpp"

namespace gpucredit {

class engine::impl {
 public:
  virtual ~impl() = default;
  virtual backend kind() const noexcept = 0;
  /// Writes the balances in query order into `out`, 0 for none; the spans have equal sizes.
  virtual void balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                        std::span<amount_t> out) const = 0;
  /// The backend's step index, copied to host memory.
  virtual step_index index() const = 0;
  /// The CPU step index when this is the CPU backend, else null.
  virtual const step_index* cpu_index() const noexcept { return nullptr; }
};

namespace detail {

/// Whether the device engine was compiled into this build.
bool device_engine_built() noexcept;
/// Whether the device engine can run here (CUDA: a device is present).
bool device_engine_available();
/// Builds the device engine from the interval table. Throws backend_error.
std::unique_ptr<engine::impl> make_device_engine(const interval_table& intervals, std::size_t account_count);

}  // namespace detail
}  // namespace gpucredit
