// Tuning knobs read from the environment (internal): chunk sizes, part counts and the
// like, which tests and benchmarks set to exercise or measure a path.
#pragma once

#include <charconv>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <system_error>

namespace gpucredit::detail {

/// The positive integer in environment variable `name`, else `fallback` (unset, empty,
/// not a number, or 0).
inline std::uint64_t env_positive(const char* name, std::uint64_t fallback) {
  const char* env = std::getenv(name);
  if (env == nullptr || *env == '\0') return fallback;
  std::uint64_t value = 0;
  const auto [ptr, ec] = std::from_chars(env, env + std::strlen(env), value);
  return ec == std::errc() && *ptr == '\0' && value > 0 ? value : fallback;
}

}  // namespace gpucredit::detail
