// Counting ticks in closed form (internal): what windows and report steps need of the
// jobs' unpaid ticks (SPEC sections 10 and 11).
#pragma once

#include <algorithm>

#include "gpucredit/types.hpp"

namespace gpucredit::detail {

/// How many of the ticks first, first + 1, ..., last lie in the window (from, to].
inline total_t ticks_within(timestamp_t first, timestamp_t last, timestamp_t from, timestamp_t to) noexcept {
  if (from == timestamp_max || to <= from) return 0;
  const timestamp_t lo = std::max(first, from + 1);
  const timestamp_t hi = std::min(last, to);
  return hi < lo ? 0 : total_t{hi} - lo + 1;
}

}  // namespace gpucredit::detail
