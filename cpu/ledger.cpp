// The authoritative ledger replay. Events are grouped by account with a stable counting
// sort (accounts never interact), each account's events are put in (timestamp, arrival)
// order, and `account_replayer` sweeps them with the live credits in a min-heap keyed by
// (end, start, arrival): its top is both the next credit to expire and the first to draw
// from, so an add, a draw and an expiry each cost O(log live credits).
#include "gpucredit/ledger.hpp"

#include <algorithm>
#include <cassert>
#include <string>
#include <tuple>

#include "gpucredit/detail/parallel.hpp"
#include "gpucredit/error.hpp"

namespace gpucredit {
namespace {

// One event of one account, gathered for the replay core.
struct account_event {
  timestamp_t timestamp;
  amount_t amount;
  timestamp_t end;  // add: timestamp + expiration
  event_row row;    // arrival number; ties in timestamp apply in this order
  op kind;
};

// Replays one account's events, which must be sorted by (timestamp, row), appending its
// interval rows (ordered by credit, then begin) and usage exceptions to `out`. Its
// buffers are reused from account to account. Throws detail::balance_overflow.
class account_replayer {
 public:
  void run(std::span<const account_event> events, account_index account, overdraft_policy policy,
           ledger_result& out);

 private:
  struct live_credit {
    timestamp_t end;
    timestamp_t start;
    event_row row;
    amount_t remaining;
    timestamp_t open_begin;  // begin of the stretch at the current `remaining`
  };
  struct closed_row {
    event_row credit;
    timestamp_t begin;
    timestamp_t end;
    amount_t amount;
  };
  void close(const live_credit& credit, timestamp_t end);

  std::vector<live_credit> heap_;
  std::vector<closed_row> rows_;
};

// std::*_heap build max-heaps; "greater" puts the smallest (end, start, row) on top.
template <class Credit>
bool later_first(const Credit& a, const Credit& b) noexcept {
  return std::tie(a.end, a.start, a.row) > std::tie(b.end, b.start, b.row);
}

void account_replayer::close(const live_credit& credit, timestamp_t end) {
  assert(credit.open_begin <= end);
  assert(credit.remaining > 0);
  rows_.push_back({credit.row, credit.open_begin, end, credit.remaining});
}

void account_replayer::run(std::span<const account_event> events, account_index account,
                           overdraft_policy policy, ledger_result& out) {
  constexpr auto heap_order = later_first<live_credit>;
  heap_.clear();
  rows_.clear();
  amount_t balance = 0;  // sum of `remaining` over heap_: the balance at the current time

  auto pop_top = [&] {
    std::pop_heap(heap_.begin(), heap_.end(), heap_order);
    heap_.pop_back();
  };

  std::size_t i = 0;
  while (i < events.size()) {
    const timestamp_t t = events[i].timestamp;
    // Credits whose end is before t expired at end + 1 <= t (no end + 1 is computed).
    while (!heap_.empty() && heap_.front().end < t) {
      close(heap_.front(), heap_.front().end);
      balance -= heap_.front().remaining;
      pop_top();
    }
    for (; i < events.size() && events[i].timestamp == t; ++i) {
      const account_event& e = events[i];
      assert(e.amount >= 0);
      if (e.amount == 0) continue;  // a zero add is no credit, a zero use draws nothing
      if (e.kind == op::add) {
        if (balance > amount_max - e.amount) throw detail::balance_overflow{e.row, t};
        balance += e.amount;
        heap_.push_back({e.end, t, e.row, e.amount, t});
        std::push_heap(heap_.begin(), heap_.end(), heap_order);
        continue;
      }
      if (e.amount > balance && policy == overdraft_policy::reject) {
        out.rejections.push(account, e.row, t, e.amount);
        continue;
      }
      amount_t need = e.amount;
      while (need > 0 && !heap_.empty()) {
        live_credit& top = heap_.front();
        const amount_t take = std::min(top.remaining, need);
        // The stretch at the old amount ends at t - 1; none when it began at t.
        if (top.open_begin < t) close(top, t - 1);
        top.remaining -= take;
        need -= take;
        balance -= take;
        if (top.remaining == 0) {
          pop_top();
        } else {
          top.open_begin = t;  // the heap key (end, start, row) is unchanged
        }
      }
      if (need > 0) out.shortfalls.push(account, e.row, t, need);
    }
    assert(balance >= 0);
  }
  for (const live_credit& credit : heap_) close(credit, credit.end);

  std::sort(rows_.begin(), rows_.end(), [](const closed_row& a, const closed_row& b) {
    return std::tie(a.credit, a.begin) < std::tie(b.credit, b.begin);
  });
  for (const closed_row& r : rows_) out.intervals.push(account, r.credit, r.begin, r.end, r.amount);
}

// Accounts never interact: a ledger of at least this many events per core is replayed
// in parts of consecutive accounts, one per core.
constexpr std::size_t events_per_part_min = std::size_t{1} << 16;

// Replays accounts [first, last) of the counting-sorted rows into `out`.
void replay_accounts(const event_table& events, overdraft_policy policy, const std::vector<std::size_t>& offsets,
                     const std::vector<event_row>& order, std::size_t first, std::size_t last, std::size_t capacity,
                     ledger_result& out) {
  // An account never has more interval rows than events (an add opens one stretch, a
  // use ends at most one partly drawn stretch and opens one): reserving `capacity` rows
  // takes address space only, so the first part can take the others' rows in place.
  out.intervals.account.reserve(capacity);
  out.intervals.credit.reserve(capacity);
  out.intervals.begin.reserve(capacity);
  out.intervals.end.reserve(capacity);
  out.intervals.amount.reserve(capacity);
  account_replayer replayer;
  std::vector<account_event> batch;
  for (std::size_t a = first; a < last; ++a) {
    batch.clear();
    for (std::size_t i = offsets[a]; i < offsets[a + 1]; ++i) {
      const event_row row = order[i];
      batch.push_back({events.timestamp[row], events.amount[row], events.end[row], row, events.kind[row]});
    }
    // Logs mostly arrive in time order: sort only when needed. Stable, so equal
    // timestamps keep arrival order.
    auto by_time = [](const account_event& x, const account_event& y) {
      return x.timestamp < y.timestamp;
    };
    if (!std::is_sorted(batch.begin(), batch.end(), by_time)) {
      std::stable_sort(batch.begin(), batch.end(), by_time);
    }
    try {
      replayer.run(batch, static_cast<account_index>(a), policy, out);
    } catch (const detail::balance_overflow& overflow) {
      throw input_error(events.source, events.line[overflow.row],
                        "balance beyond int64 at " + std::to_string(overflow.timestamp) + " (account '" +
                            std::string(events.accounts[static_cast<std::uint32_t>(a)]) + "')");
    }
  }
}

// Moves the rows of `part` to the end of `out`, freeing each column once copied so that
// at most one column exists twice at a time.
template <class T>
void append_column(std::vector<T>& out, std::vector<T>& part) {
  out.insert(out.end(), part.begin(), part.end());
  std::vector<T>().swap(part);
}

void append_usage(usage_table& out, usage_table& part) {
  append_column(out.account, part.account);
  append_column(out.row, part.row);
  append_column(out.timestamp, part.timestamp);
  append_column(out.amount, part.amount);
}

}  // namespace

std::vector<credit_state> credits_at(const event_table& events, const ledger_result& result, account_index account,
                                     timestamp_t t) {
  // The account's rows are contiguous, ordered by (credit, begin), and its adds come in
  // arrival order (= credit order): one pass over each, O(events + rows).
  const auto& accounts = result.intervals.account;
  std::size_t row = static_cast<std::size_t>(std::lower_bound(accounts.begin(), accounts.end(), account) - accounts.begin());
  const auto last = static_cast<std::size_t>(std::upper_bound(accounts.begin(), accounts.end(), account) - accounts.begin());
  std::vector<credit_state> credits;
  for (std::size_t add = 0; add < events.size(); ++add) {
    if (events.account[add] != account || events.kind[add] != op::add) continue;
    while (row < last && result.intervals.credit[row] < add) ++row;  // rows of earlier credits
    if (events.timestamp[add] > t) continue;
    credit_state c{static_cast<event_row>(add), events.timestamp[add], events.end[add], events.amount[add], 0, 0, 0,
                   events.timestamp[add] <= t && t <= events.end[add]};
    amount_t held_at_end = 0;  // the amount of a stretch reaching the credit's end
    for (; row < last && result.intervals.credit[row] == add; ++row) {
      if (result.intervals.begin[row] <= t && t <= result.intervals.end[row]) c.remaining = result.intervals.amount[row];
      if (result.intervals.end[row] == c.end) held_at_end = result.intervals.amount[row];
    }
    if (c.end < t) c.expired = held_at_end;
    c.consumed = c.granted - c.remaining - c.expired;
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
    if (iv.begin[i] <= t && t <= iv.end[i]) a.remaining += iv.amount[i];
    if (iv.end[i] < t && iv.end[i] == events.end[iv.credit[i]]) a.expired += iv.amount[i];  // held until its end
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
      if (from < usage.timestamp[i] && usage.timestamp[i] <= to) into[usage.account[i]] += usage.amount[i];
    }
  };
  add_unpaid(result.shortfalls, unpaid_shortfall);
  add_unpaid(result.rejections, unpaid_rejected);

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

ledger_result replay(const event_table& events, overdraft_policy policy) {
  const std::size_t event_count = events.size();
  const std::size_t account_count = events.accounts.size();

  // Stable counting sort of rows by account: arrival order survives within an account.
  std::vector<std::size_t> offsets(account_count + 1, 0);
  for (const account_index a : events.account) ++offsets[a + 1];
  for (std::size_t a = 0; a < account_count; ++a) offsets[a + 1] += offsets[a];
  std::vector<event_row> order(event_count);
  {
    std::vector<std::size_t> cursor(offsets.begin(), offsets.end() - 1);
    for (std::size_t row = 0; row < event_count; ++row) {
      order[cursor[events.account[row]]++] = static_cast<event_row>(row);
    }
  }

  // Parts of consecutive accounts, one per core. The first error in account order is
  // the one reported, whichever part finds it first.
  const std::size_t parts = account_count == 0 ? 1 : detail::part_count(event_count, events_per_part_min);
  const std::vector<std::size_t> cuts = detail::balanced_cuts(offsets, parts);
  std::vector<ledger_result> partial(parts);
  detail::run_parts(parts, [&](std::size_t k) {
    const std::size_t own = offsets[cuts[k + 1]] - offsets[cuts[k]];
    replay_accounts(events, policy, offsets, order, cuts[k], cuts[k + 1], k == 0 ? event_count : own, partial[k]);
  });

  // The other parts' rows follow the first part's, in account order.
  ledger_result out = std::move(partial[0]);
  out.account_count = account_count;
  for (std::size_t k = 1; k < parts; ++k) {
    interval_table& part = partial[k].intervals;
    append_column(out.intervals.account, part.account);
    append_column(out.intervals.credit, part.credit);
    append_column(out.intervals.begin, part.begin);
    append_column(out.intervals.end, part.end);
    append_column(out.intervals.amount, part.amount);
    append_usage(out.shortfalls, partial[k].shortfalls);
    append_usage(out.rejections, partial[k].rejections);
  }
  return out;
}

}  // namespace gpucredit
