// The authoritative ledger (SPEC sections 2 to 5): replays each account's events in
// (timestamp, arrival) order and flattens the result into a table of credit intervals.
#pragma once

#include <vector>

#include "gpucredit/events.hpp"
#include "gpucredit/types.hpp"

namespace gpucredit {

/// The flattened ledger (SPEC sections 5 and 10): one row per stretch of time in which a
/// credit's remaining amount follows one line and is positive: the credit held
/// `amount - slope * (t - begin)` at every t in [begin, end] (both ends included,
/// begin <= end). `slope` is 0 except where jobs draw from the credit; the column is
/// empty when no row has a slope (ledgers without jobs), and `slope_of` reads it either
/// way. Rows are grouped by account in ascending account index, and within an account
/// ordered by (credit, begin). For every account and t: balance(t) = the sum of
/// `amount - slope * (t - begin)` over its rows covering t.
struct interval_table {
  std::vector<account_index> account;
  std::vector<event_row> credit;  ///< the row of the credit's add in the event table
  std::vector<timestamp_t> begin;
  std::vector<timestamp_t> end;
  std::vector<amount_t> amount;  ///< held at `begin`
  std::vector<amount_t> slope;   ///< drawn per tick after `begin`; empty: every row 0

  std::size_t size() const noexcept { return account.size(); }
  bool has_slopes() const noexcept { return !slope.empty(); }
  amount_t slope_of(std::size_t row) const noexcept { return slope.empty() ? 0 : slope[row]; }
  /// What row `row` holds at t (begin <= t <= end).
  amount_t held_at(std::size_t row, timestamp_t t) const noexcept {
    const amount_t s = slope_of(row);
    // A sloped row spans less than amount / slope ticks, so neither the span nor the
    // product overflows; a level row may span more than int64.
    return s == 0 ? amount[row] : amount[row] - s * (t - begin[row]);
  }
  void push(account_index a, event_row c, timestamp_t b, timestamp_t e, amount_t v, amount_t s = 0) {
    const bool sloped = s != 0 || !slope.empty();
    if (sloped && slope.size() != account.size()) slope.assign(account.size(), 0);  // the first slope
    account.push_back(a);
    credit.push_back(c);
    begin.push_back(b);
    end.push_back(e);
    amount.push_back(v);
    if (sloped) slope.push_back(s);
  }
};

/// Usage that was not paid in full: under `drain`, `amount` is the unpaid rest (the
/// shortfall); under `reject`, the whole usage, which changed nothing. One record per
/// use, and one per job (SPEC section 10: `timestamp` is the job's first tick not paid
/// in full, `amount` its total unpaid). Grouped by account, in the order the ledger met
/// them.
struct usage_table {
  std::vector<account_index> account;
  std::vector<event_row> row;  ///< the use's (or the job's) row in the event table
  std::vector<timestamp_t> timestamp;
  std::vector<amount_t> amount;

  std::size_t size() const noexcept { return account.size(); }
  void push(account_index a, event_row r, timestamp_t t, amount_t v) {
    account.push_back(a);
    row.push_back(r);
    timestamp.push_back(t);
    amount.push_back(v);
  }
};

/// Where jobs went unpaid, tick by tick in closed form: `per_tick` unpaid (shortfall or
/// rejected, as the policy says) at every tick of [first, last] of the job at `row`.
/// What windows and report steps sum (SPEC section 11); grouped by account.
struct unpaid_ticks {
  std::vector<account_index> account;
  std::vector<event_row> row;
  std::vector<timestamp_t> first;
  std::vector<timestamp_t> last;
  std::vector<amount_t> per_tick;

  std::size_t size() const noexcept { return account.size(); }
  void push(account_index a, event_row r, timestamp_t f, timestamp_t l, amount_t v) {
    account.push_back(a);
    row.push_back(r);
    first.push_back(f);
    last.push_back(l);
    per_tick.push_back(v);
  }
};

/// Everything the replay produces.
struct ledger_result {
  interval_table intervals;
  usage_table shortfalls;  ///< drain only
  usage_table rejections;  ///< reject only
  unpaid_ticks job_unpaid;  ///< jobs' unpaid ticks (shortfall under drain, rejected under reject)
  std::size_t account_count = 0;  ///< = events.accounts.size()
  overdraft_policy policy = overdraft_policy::drain;  ///< the policy it was replayed under
};

/// Replays every account of `events` under `policy`. O(n log n) in events, whatever
/// the number of live credits per account. Throws `input_error` naming the event's
/// source line when an account's balance would go beyond int64 after some event.
/// Blocks; uses the calling thread only.
ledger_result replay(const event_table& events, overdraft_policy policy = overdraft_policy::drain);

/// One credit of an account as it stands at some time t: the answer to "why is my
/// balance X". Amounts are exact: granted = consumed + remaining + expired.
struct credit_state {
  event_row credit;        ///< the row of the credit's add
  timestamp_t start;       ///< the add's timestamp
  timestamp_t end;         ///< start + expiration (usable on [start, end])
  amount_t granted;        ///< the add's amount
  amount_t consumed;       ///< drawn by uses and job ticks up to t
  amount_t remaining;      ///< held at t (0 unless active)
  amount_t expired;        ///< left unused when it expired (only once end < t)
  bool active;             ///< start <= t <= end
  amount_t to_jobs = 0;    ///< the part of `consumed` that job ticks drew (SPEC section 10)
};

/// The credits of `account` added at or before `t`, in arrival order, read off the
/// interval table of `result` (which `replay(events, ...)` made). Blocks.
std::vector<credit_state> credits_at(const event_table& events, const ledger_result& result, account_index account,
                                     timestamp_t t);

/// One account over a window (from, to] (SPEC section 11): what it held at both ends
/// and what moved in between. Exactly: balance_to = balance_from + granted - consumed -
/// expired. Balances fit in int64; the totals may not (two grants of the largest amount
/// in one window), so they are exact 128-bit integers.
struct account_window {
  amount_t balance_from = 0;  ///< balance at `from`
  total_t granted = 0;        ///< adds with from < timestamp <= to
  total_t consumed = 0;       ///< drawn by uses with from < timestamp <= to
  total_t expired = 0;        ///< left unused by credits expiring in the window (from <= end < to)
  total_t shortfall = 0;      ///< unpaid usage in the window (drain)
  total_t rejected = 0;       ///< rejected usage in the window (reject)
  amount_t balance_to = 0;    ///< balance at `to`
};

/// The window (from, to] of every account (indexed by account), read off `events` and the
/// `result` of replaying them; O(events + intervals). Throws `error` when from > to.
/// Blocks.
std::vector<account_window> window_summary(const event_table& events, const ledger_result& result, timestamp_t from,
                                           timestamp_t to);

}  // namespace gpucredit
