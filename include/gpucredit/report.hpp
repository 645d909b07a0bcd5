// The bulk historical report (SPEC section 11): a time grid, every account's balance at
// each grid time through the query engine, and what moved between grid times. The CLI's
// `report` and the Python package build on these; totals are exact (total_t).
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <vector>

#include "gpucredit/engine.hpp"
#include "gpucredit/events.hpp"
#include "gpucredit/ledger.hpp"
#include "gpucredit/types.hpp"

namespace gpucredit {

/// The most times a report grid may hold (each costs a balance per account).
inline constexpr std::uint64_t grid_times_max = std::uint64_t{1} << 31;

/// The grid from, from + every, ... <= to, computed without overflow at the ends of
/// int64. Throws `input_error` when every <= 0, from > to, or the grid would hold more
/// than grid_times_max times.
time_grid report_time_grid(timestamp_t from, timestamp_t to, timestamp_t every);
/// The same grid's times, listed.
std::vector<timestamp_t> report_grid(timestamp_t from, timestamp_t to, timestamp_t every);

/// What moved in each step (grid[i-1], grid[i]] over the accounts `a` with
/// `included[a] != 0` (SPEC section 11 per step): `breakage[i]`, what credits ending in
/// [grid[i-1], grid[i]) still held at their end; `shortfall[i]`, usage unpaid (drain) or
/// rejected (reject) at times in (grid[i-1], grid[i]]. Entry 0 is 0.
struct step_flows {
  std::vector<total_t> breakage;
  std::vector<total_t> shortfall;
};
step_flows flows_per_step(const event_table& events, const ledger_result& result, std::span<const timestamp_t> grid,
                          std::span<const char> included);

/// The balances of `accounts` (indices into the ledger; account_none answers 0) at every
/// grid time, by `answers.grid` (generated and summed on the device where the engine
/// runs there) a bounded batch of accounts at a time. For each batch,
/// `sink(first, balances)` receives the balances of accounts [first, first + n) account
/// by account (n * grid.count values, grid order within an account); `fleet[k]` (resized
/// to the grid) is the exact sum over all accounts at grid.at(k).
void grid_balances(const engine& answers, std::span<const account_index> accounts, const time_grid& grid,
                   std::vector<total_t>& fleet,
                   const std::function<void(std::size_t first, std::span<const amount_t> balances)>& sink);

}  // namespace gpucredit
