// The device engine's factories in a build without it: they say so.
#include "cpu/query/engine_impl.hpp"
#include "gpucredit/error.hpp"

namespace gpucredit {

namespace detail {
bool device_engine_built() noexcept { return false; }
bool device_engine_available() { return false; }
std::string device_engine_status() { return "not compiled into this build (no CUDA compiler when it was built)"; }
std::unique_ptr<engine::impl> make_device_engine(const interval_table&, std::size_t, const engine_options&) {
  throw backend_unavailable("the CUDA backend is not compiled into this build of gpucredit");
}
}  // namespace detail

}  // namespace gpucredit
