// The authoritative ledger replay. Events are grouped by account with a stable counting
// sort (accounts never interact), each account's events are put in (timestamp, arrival)
// order, and `account_replayer` sweeps them with the live credits in a min-heap keyed by
// (end, start, arrival): its top is both the next credit to expire and the first to draw
// from, so an add, a draw and an expiry each cost O(log live credits). The rules of
// SPEC section 4 themselves live in draw.hpp, shared with the compatible class.
#include "gpucredit/ledger.hpp"

#include <algorithm>
#include <cassert>
#include <string>
#include <tuple>

#include "cpu/ledger/draw.hpp"
#include "cpu/parallel.hpp"
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

// The live credits of the account being replayed, in a binary min-heap keyed by (end,
// start, arrival), as detail::draw sees them. Every change of a credit's remaining
// amount closes the stretch it held until then as an interval row.
class heap_credits {
 public:
  struct credit {
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

  void clear() {
    heap_.clear();
    rows_.clear();
  }
  void set_now(timestamp_t t) noexcept { now_ = t; }
  void insert(const credit& c) {
    heap_.push_back(c);
    std::push_heap(heap_.begin(), heap_.end(), later_first);
  }
  // The concept detail::live_credit_set.
  bool empty() const noexcept { return heap_.empty(); }
  timestamp_t front_end() const noexcept { return heap_.front().end; }
  amount_t front_remaining() const noexcept { return heap_.front().remaining; }
  void take_from_front(amount_t amount) {
    credit& top = heap_.front();
    if (top.open_begin < now_) close(top, now_ - 1);  // none when the stretch began now
    top.remaining -= amount;
    if (top.remaining == 0) {
      pop();
    } else {
      top.open_begin = now_;  // the heap key (end, start, row) is unchanged
    }
  }
  void expire_front(amount_t /*balance*/) {
    close(heap_.front(), heap_.front().end);
    pop();
  }

  // Closes every credit still live at the end of the account's events (at its end), and
  // hands over the rows ordered by (credit, begin).
  std::vector<closed_row>& finish() {
    for (const credit& c : heap_) close(c, c.end);
    std::sort(rows_.begin(), rows_.end(), [](const closed_row& a, const closed_row& b) {
      return std::tie(a.credit, a.begin) < std::tie(b.credit, b.begin);
    });
    return rows_;
  }

 private:
  // std::*_heap build max-heaps; "greater" puts the smallest (end, start, row) on top.
  static bool later_first(const credit& a, const credit& b) noexcept {
    return std::tie(a.end, a.start, a.row) > std::tie(b.end, b.start, b.row);
  }
  void pop() {
    std::pop_heap(heap_.begin(), heap_.end(), later_first);
    heap_.pop_back();
  }
  void close(const credit& c, timestamp_t end) {
    assert(c.open_begin <= end);
    assert(c.remaining > 0);
    rows_.push_back({c.row, c.open_begin, end, c.remaining});
  }

  std::vector<credit> heap_;
  std::vector<closed_row> rows_;
  timestamp_t now_ = 0;
};
static_assert(detail::live_credit_set<heap_credits>);

// Replays one account's events, which must be sorted by (timestamp, row), appending its
// interval rows (ordered by credit, then begin) and usage exceptions to `out`. The live
// credits' buffers are reused from account to account. Throws detail::balance_overflow.
class account_replayer {
 public:
  void run(std::span<const account_event> events, account_index account, overdraft_policy policy,
           ledger_result& out);

 private:
  heap_credits live_;
};

void account_replayer::run(std::span<const account_event> events, account_index account,
                           overdraft_policy policy, ledger_result& out) {
  live_.clear();
  amount_t balance = 0;  // the sum of the live credits' remaining amounts: the balance now

  std::size_t i = 0;
  while (i < events.size()) {
    const timestamp_t t = events[i].timestamp;
    detail::expire_before(live_, t, balance);
    live_.set_now(t);
    for (; i < events.size() && events[i].timestamp == t; ++i) {
      const account_event& e = events[i];
      assert(e.amount >= 0);
      if (e.amount == 0) continue;  // a zero add is no credit, a zero use draws nothing
      if (e.kind == op::add) {
        detail::add_to_balance(balance, e.amount, e.row, t);
        live_.insert({e.end, t, e.row, e.amount, t});
        continue;
      }
      const detail::use_outcome paid = detail::draw(live_, balance, e.amount, policy);
      if (paid.rejected) {
        out.rejections.push(account, e.row, t, e.amount);
      } else if (paid.unpaid > 0) {
        out.shortfalls.push(account, e.row, t, paid.unpaid);
      }
    }
    assert(balance >= 0);
  }
  for (const heap_credits::closed_row& r : live_.finish()) out.intervals.push(account, r.credit, r.begin, r.end, r.amount);
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
