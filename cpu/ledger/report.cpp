// See gpucredit/report.hpp.
#include "gpucredit/report.hpp"

#include <algorithm>
#include <string>

#include "cpu/ledger/ticks.hpp"
#include "gpucredit/error.hpp"

namespace gpucredit {

time_grid report_time_grid(timestamp_t from, timestamp_t to, timestamp_t every) {
  if (from > to) throw input_error("report grid", 0, "from is after to");
  if (every <= 0) throw input_error("report grid", 0, "the step must be positive");
  // Unsigned arithmetic: to - from and from + k * every never overflow.
  const std::uint64_t span = static_cast<std::uint64_t>(to) - static_cast<std::uint64_t>(from);
  const std::uint64_t steps = span / static_cast<std::uint64_t>(every);
  if (steps >= grid_times_max) {
    throw input_error("report grid", 0,
                      "from " + std::to_string(from) + " to " + std::to_string(to) + " every " + std::to_string(every) +
                          " has " + to_decimal(total_t{steps} + 1) + " times; at most " +
                          std::to_string(grid_times_max) + " are allowed");
  }
  return time_grid{from, every, static_cast<std::size_t>(steps) + 1};
}

std::vector<timestamp_t> report_grid(timestamp_t from, timestamp_t to, timestamp_t every) {
  const time_grid g = report_time_grid(from, to, every);
  std::vector<timestamp_t> grid(g.count);
  for (std::size_t k = 0; k < g.count; ++k) grid[k] = g.at(k);
  return grid;
}

step_flows flows_per_step(const event_table& events, const ledger_result& result, std::span<const timestamp_t> grid,
                          std::span<const char> included) {
  step_flows flows{std::vector<total_t>(grid.size(), 0), std::vector<total_t>(grid.size(), 0)};
  const interval_table& iv = result.intervals;
  for (std::size_t r = 0; r < iv.size(); ++r) {  // a row reaching its credit's end: held until it expired
    if (included[iv.account[r]] == 0 || iv.end[r] != events.end[iv.credit[r]]) continue;
    const auto i = static_cast<std::size_t>(std::upper_bound(grid.begin(), grid.end(), iv.end[r]) - grid.begin());
    if (i >= 1 && i < grid.size()) flows.breakage[i] += iv.held_at(r, iv.end[r]);
  }
  for (const usage_table* usage : {&result.shortfalls, &result.rejections}) {
    for (std::size_t u = 0; u < usage->size(); ++u) {
      if (included[usage->account[u]] == 0 || events.kind[usage->row[u]] == op::run) continue;
      const auto i =
          static_cast<std::size_t>(std::lower_bound(grid.begin(), grid.end(), usage->timestamp[u]) - grid.begin());
      if (i >= 1 && i < grid.size()) flows.shortfall[i] += usage->amount[u];
    }
  }
  // Jobs' unpaid ticks: a run of ticks spreads over the steps it crosses. Its first and
  // last steps get their share; the whole steps between get per_tick x their length,
  // through a difference array over steps (O(runs log steps + steps)).
  std::vector<total_t> whole(grid.size() + 1, 0);
  const unpaid_ticks& ticks = result.job_unpaid;
  for (std::size_t r = 0; r < ticks.size(); ++r) {
    if (included[ticks.account[r]] == 0) continue;
    // Step i holds the ticks in (grid[i-1], grid[i]]: the step of tick t is the first i with grid[i] >= t.
    const auto first_step =
        static_cast<std::size_t>(std::lower_bound(grid.begin(), grid.end(), ticks.first[r]) - grid.begin());
    const auto last_step =
        static_cast<std::size_t>(std::lower_bound(grid.begin(), grid.end(), ticks.last[r]) - grid.begin());
    auto share = [&](std::size_t i) {  // ticks of the run in step i, times per_tick
      if (i < 1 || i >= grid.size()) return;
      flows.shortfall[i] += detail::ticks_within(ticks.first[r], ticks.last[r], grid[i - 1], grid[i]) * ticks.per_tick[r];
    };
    share(first_step);
    if (last_step != first_step) share(last_step);
    // Steps strictly between first_step and last_step lie wholly inside the run.
    const std::size_t lo = std::max<std::size_t>(first_step + 1, 1);
    const std::size_t hi = std::min(last_step, grid.size());  // exclusive
    if (lo < hi) {
      whole[lo] += ticks.per_tick[r];
      whole[hi] -= ticks.per_tick[r];
    }
  }
  total_t rate = 0;
  for (std::size_t i = 1; i < grid.size(); ++i) {
    rate += whole[i];
    if (rate != 0) flows.shortfall[i] += rate * (total_t{grid[i]} - grid[i - 1]);
  }
  return flows;
}

void grid_balances(const engine& answers, std::span<const account_index> accounts, const time_grid& grid,
                   std::vector<total_t>& fleet,
                   const std::function<void(std::size_t first, std::span<const amount_t> balances)>& sink) {
  fleet.assign(grid.count, 0);
  if (grid.count == 0) return;
  // A bounded slice of accounts at a time: 4 Mi balances (32 MiB), generated and summed
  // where the engine runs; the balances come back for the sink.
  constexpr std::size_t grid_balances_per_batch = std::size_t{1} << 22;
  const std::size_t accounts_per_batch = std::max<std::size_t>(1, grid_balances_per_batch / grid.count);
  std::vector<amount_t> b;
  std::vector<total_t> part(grid.count);
  for (std::size_t first = 0; first < accounts.size(); first += accounts_per_batch) {
    const std::size_t last = std::min(accounts.size(), first + accounts_per_batch);
    b.resize((last - first) * grid.count);
    answers.grid(accounts.subspan(first, last - first), grid, part, b);
    for (std::size_t k = 0; k < grid.count; ++k) fleet[k] += part[k];
    sink(first, b);
  }
}

}  // namespace gpucredit
