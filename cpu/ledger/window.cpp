// Reading a replayed ledger back: one account's credits at a time (`breakdown`) and
// every account's window summary (SPEC section 11, `report`), both from the event table
// and the interval table in linear passes.
#include <algorithm>

#include "cpu/ledger/ticks.hpp"
#include "cpu/ledger/trace.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/ledger.hpp"

namespace gpucredit {

std::vector<credit_state> credits_at(const event_table& events, const ledger_result& result, account_index account,
                                     timestamp_t t) {
  // The account's rows are contiguous, ordered by (credit, begin), and its adds come in
  // arrival order (= credit order): one pass over each, O(events + rows).
  const auto& accounts = result.intervals.account;
  std::size_t row = static_cast<std::size_t>(std::lower_bound(accounts.begin(), accounts.end(), account) - accounts.begin());
  const auto last = static_cast<std::size_t>(std::upper_bound(accounts.begin(), accounts.end(), account) - accounts.begin());
  std::vector<credit_state> credits;
  std::vector<std::pair<event_row, amount_t>> job_draws;  // (credit, drawn by jobs), by credit
  if (events.has_jobs()) job_draws = detail::job_draws_until(events, account, t, result.policy);
  auto draw = job_draws.begin();
  for (std::size_t add = 0; add < events.size(); ++add) {
    if (events.account[add] != account || events.kind[add] != op::add) continue;
    while (row < last && result.intervals.credit[row] < add) ++row;  // rows of earlier credits
    if (events.timestamp[add] > t) continue;
    credit_state c{static_cast<event_row>(add), events.timestamp[add], events.end[add], events.amount[add], 0, 0, 0,
                   events.timestamp[add] <= t && t <= events.end[add]};
    amount_t held_at_end = 0;  // the amount of a stretch reaching the credit's end
    for (; row < last && result.intervals.credit[row] == add; ++row) {
      if (result.intervals.begin[row] <= t && t <= result.intervals.end[row]) c.remaining = result.intervals.held_at(row, t);
      if (result.intervals.end[row] == c.end) held_at_end = result.intervals.held_at(row, c.end);
    }
    if (c.end < t) c.expired = held_at_end;
    c.consumed = c.granted - c.remaining - c.expired;
    while (draw != job_draws.end() && draw->first < add) ++draw;
    if (draw != job_draws.end() && draw->first == add) c.to_jobs = draw->second;
    credits.push_back(c);
  }
  return credits;
}

namespace {

using wide = total_t;  // sums over a whole history may pass int64

// Per account at time t: granted (adds up to t), remaining (held at t) and expired
// (left unused by credits whose end < t); consumed follows as granted - remaining - expired.
struct account_totals {
  wide granted = 0;
  wide remaining = 0;
  wide expired = 0;
};

std::vector<account_totals> totals_at(const event_table& events, const ledger_result& result, timestamp_t t) {
  std::vector<account_totals> totals(result.account_count);
  for (std::size_t row = 0; row < events.size(); ++row) {
    if (events.kind[row] == op::add && events.timestamp[row] <= t) totals[events.account[row]].granted += events.amount[row];
  }
  const interval_table& iv = result.intervals;
  for (std::size_t i = 0; i < iv.size(); ++i) {
    account_totals& a = totals[iv.account[i]];
    if (iv.begin[i] <= t && t <= iv.end[i]) a.remaining += iv.held_at(i, t);
    if (iv.end[i] < t && iv.end[i] == events.end[iv.credit[i]]) a.expired += iv.held_at(i, iv.end[i]);  // held until its end
  }
  return totals;
}

}  // namespace

std::vector<account_window> window_summary(const event_table& events, const ledger_result& result, timestamp_t from,
                                           timestamp_t to) {
  if (from > to) throw error("window_summary: from is after to");
  const std::vector<account_totals> at_from = totals_at(events, result, from);
  const std::vector<account_totals> at_to = totals_at(events, result, to);
  std::vector<wide> unpaid_shortfall(result.account_count, 0);
  std::vector<wide> unpaid_rejected(result.account_count, 0);
  auto add_unpaid = [&](const usage_table& usage, std::vector<wide>& into) {
    for (std::size_t i = 0; i < usage.size(); ++i) {
      if (events.kind[usage.row[i]] == op::run) continue;  // a job's total: its ticks count below
      if (from < usage.timestamp[i] && usage.timestamp[i] <= to) into[usage.account[i]] += usage.amount[i];
    }
  };
  add_unpaid(result.shortfalls, unpaid_shortfall);
  add_unpaid(result.rejections, unpaid_rejected);
  // Jobs' unpaid ticks in (from, to] (SPEC sections 10 and 11), in closed form.
  std::vector<wide>& job_into = result.policy == overdraft_policy::drain ? unpaid_shortfall : unpaid_rejected;
  const unpaid_ticks& ticks = result.job_unpaid;
  for (std::size_t i = 0; i < ticks.size(); ++i) {
    const wide count = detail::ticks_within(ticks.first[i], ticks.last[i], from, to);
    if (count > 0) job_into[ticks.account[i]] += count * ticks.per_tick[i];
  }

  std::vector<account_window> windows(result.account_count);
  for (std::size_t a = 0; a < windows.size(); ++a) {
    const account_totals& f = at_from[a];
    const account_totals& t = at_to[a];
    const wide consumed_from = f.granted - f.remaining - f.expired;
    const wide consumed_to = t.granted - t.remaining - t.expired;
    account_window& w = windows[a];
    w.balance_from = static_cast<amount_t>(f.remaining);  // a balance: fits (SPEC section 1)
    w.balance_to = static_cast<amount_t>(t.remaining);
    w.granted = t.granted - f.granted;
    w.consumed = consumed_to - consumed_from;
    w.expired = t.expired - f.expired;
    w.shortfall = unpaid_shortfall[a];
    w.rejected = unpaid_rejected[a];
  }
  return windows;
}

}  // namespace gpucredit
