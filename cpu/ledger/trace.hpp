// Replays that explain (internal): what each credit gave to jobs, for breakdowns.
#pragma once

#include <utility>
#include <vector>

#include "gpucredit/events.hpp"
#include "gpucredit/types.hpp"

namespace gpucredit::detail {

/// What each credit of `account` gave to jobs by time t (ticks <= t), from a replay of
/// the account's events up to t: (credit row, amount), ordered by credit row. Credits
/// that gave nothing may be listed with 0. O(events of the account log n).
std::vector<std::pair<event_row, amount_t>> job_draws_until(const event_table& events, account_index account,
                                                            timestamp_t t, overdraft_policy policy);

}  // namespace gpucredit::detail
