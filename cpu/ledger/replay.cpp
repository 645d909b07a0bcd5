// The authoritative ledger replay. Events are grouped by account with a stable counting
// sort (accounts never interact), each account's events are put in (timestamp, arrival)
// order, and `account_replayer` sweeps them with the live credits in a min-heap keyed by
// (end, start, arrival): its top is both the next credit to expire and the first to draw
// from, so an add, a draw and an expiry each cost O(log live credits). The rules of
// SPEC section 4 themselves live in draw.hpp, shared with the compatible class.
#include "gpucredit/ledger.hpp"

#include <algorithm>
#include <cassert>
#include <limits>
#include <memory>
#include <span>
#include <string>
#include <type_traits>
#include <utility>

#include "cpu/ledger/draw.hpp"
#include "cpu/ledger/trace.hpp"
#include "cpu/memory.hpp"
#include "cpu/parallel.hpp"
#include "gpucredit/error.hpp"

namespace gpucredit {
namespace {

// One event of one account, gathered for the replay core.
struct account_event {
  timestamp_t timestamp;
  amount_t amount;
  timestamp_t end;  // add: timestamp + expiration; run: the last tick
  event_row row;    // arrival number; ties in timestamp apply in this order
  op kind;
};

// What a live credit keeps, and what a closed stretch holds. Accounts with jobs keep
// more (where a run can no longer continue, what started each stretch, what jobs drew);
// accounts without keep the compact forms, so plain ledgers pay nothing for jobs.
struct plain_credit {
  timestamp_t end;
  timestamp_t start;
  event_row row;
  amount_t remaining;
  timestamp_t open_begin;  // begin of the stretch at the current `remaining`
};
struct metered_credit : plain_credit {
  bool open = true;          // false once nothing can follow (a run reached the last timestamp)
  bool open_by_job = false;  // the change at open_begin came from job ticks alone
  amount_t to_jobs = 0;      // drawn by job ticks so far (tallied for breakdowns)
};
struct plain_row {
  event_row credit;
  timestamp_t begin;
  timestamp_t end;
  amount_t amount;  // held at begin
};
struct metered_row : plain_row {
  amount_t slope = 0;      // drawn per tick after begin
  bool job_start = false;  // the change at begin came from job ticks alone (rows may merge there)
};

// The live credits of the account being replayed, in a binary min-heap keyed by (end,
// start, arrival), as detail::draw sees them. Every change of a credit's remaining
// amount closes the stretch it held until then as an interval row; with `Jobs`, a run of
// job ticks (draw_run) is one row with a slope.
template <bool Jobs>
class heap_credits {
 public:
  using credit = std::conditional_t<Jobs, metered_credit, plain_credit>;
  using closed_row = std::conditional_t<Jobs, metered_row, plain_row>;

  void clear() {
    heap_.clear();
    rows_.clear();
    tallies_.clear();
    merge_ = false;
  }
  void set_now(timestamp_t t) noexcept { now_ = t; }
  // Whether the draws that follow are job ticks (their rows may merge with job runs).
  void set_job_draw(bool job) noexcept { job_draw_ = job; }
  // Whether to keep each credit's draws by jobs (tallies()) as it leaves.
  void set_tally(bool on) noexcept { tally_ = on; }
  // (credit, drawn by jobs) of every credit that left, and after finish() of all.
  const std::vector<std::pair<event_row, amount_t>>& tallies() const noexcept { return tallies_; }
  void insert(timestamp_t end, timestamp_t start, event_row row, amount_t amount) {
    credit c{};
    c.end = end;
    c.start = start;
    c.row = row;
    c.remaining = amount;
    c.open_begin = start;
    heap_.push_back(c);
    std::push_heap(heap_.begin(), heap_.end(), later_first);
  }
  // The concept detail::live_credit_set.
  bool empty() const noexcept { return heap_.empty(); }
  timestamp_t front_end() const noexcept { return heap_.front().end; }
  amount_t front_remaining() const noexcept { return heap_.front().remaining; }
  void take_from_front(amount_t amount) {
    credit& top = heap_.front();
    // The stretch at the old amount ends at now - 1 (none when it began now: several
    // draws now make one change).
    const bool new_stretch = top.open_begin < now_;
    if (new_stretch) close(top, now_ - 1);
    if constexpr (Jobs) {
      merge_ = merge_ || job_draw_;
      if (job_draw_) top.to_jobs += amount;
      top.open_by_job = new_stretch ? job_draw_ : top.open_by_job && job_draw_;
    }
    top.remaining -= amount;
    if (top.remaining == 0) {
      pop();
    } else {
      top.open_begin = now_;  // the heap key (end, start, row) is unchanged
    }
  }
  void expire_front(amount_t /*balance_left*/) {
    close(heap_.front(), heap_.front().end);
    pop();
  }

  // Job ticks at a, a + 1, ..., a + k - 1 each draw `rate` from the front credit, which
  // holds at least k * rate: one row with slope `rate` (SPEC section 10), ending before
  // the tick that empties the credit.
  void draw_run(timestamp_t a, std::uint64_t k, amount_t rate) requires Jobs {
    merge_ = true;
    credit& top = heap_.front();
    if (top.open_begin < a) close(top, a - 1);
    const amount_t left = top.remaining - static_cast<amount_t>(k) * rate;  // >= 0
    top.to_jobs += static_cast<amount_t>(k) * rate;
    const timestamp_t last_tick = a + static_cast<timestamp_t>(k - 1);
    const timestamp_t row_end = left == 0 ? last_tick - 1 : last_tick;  // a - 1 when k = 1: no row
    if (row_end >= a) {
      metered_row r;
      r.credit = top.row;
      r.begin = a;
      r.end = row_end;
      r.amount = top.remaining - rate;
      r.slope = rate;
      r.job_start = true;
      rows_.push_back(r);
    }
    if (left == 0) {
      pop();
      return;
    }
    top.remaining = left;
    top.open = last_tick != timestamp_max;  // no end + 1 at the last timestamp
    if (top.open) top.open_begin = last_tick + 1;
    top.open_by_job = true;
  }

  // Closes every credit still live at the end of the account's events (at its end), and
  // hands over the rows ordered by (credit, begin), maximal (SPEC section 10).
  std::vector<closed_row>& finish() {
    for (const credit& c : heap_) {
      close(c, c.end);
      if constexpr (Jobs) {
        if (tally_) tallies_.emplace_back(c.row, c.to_jobs);
      }
    }
    std::sort(rows_.begin(), rows_.end(), [](const closed_row& a, const closed_row& b) {
      return std::tie(a.credit, a.begin) < std::tie(b.credit, b.begin);
    });
    if constexpr (Jobs) {
      if (merge_) merge_collinear();
    }
    return rows_;
  }

 private:
  // std::*_heap build max-heaps; "greater" puts the smallest (end, start, row) on top.
  static bool later_first(const credit& a, const credit& b) noexcept {
    return std::tie(a.end, a.start, a.row) > std::tie(b.end, b.start, b.row);
  }
  void pop() {
    if constexpr (Jobs) {
      if (tally_) tallies_.emplace_back(heap_.front().row, heap_.front().to_jobs);
    }
    std::pop_heap(heap_.begin(), heap_.end(), later_first);
    heap_.pop_back();
  }
  // The stretch held since c.open_begin, to `end`.
  void close(const credit& c, timestamp_t end) {
    if constexpr (Jobs) {
      if (!c.open || c.open_begin > end) return;  // nothing held since the last row
      assert(c.remaining > 0);
      metered_row r;
      r.credit = c.row;
      r.begin = c.open_begin;
      r.end = end;
      r.amount = c.remaining;
      r.job_start = c.open_by_job;
      rows_.push_back(r);
    } else {
      assert(c.open_begin <= end && c.remaining > 0);
      rows_.push_back({c.row, c.open_begin, end, c.remaining});
    }
  }
  // Joins a credit's consecutive rows where only job ticks changed its holding and the
  // holding goes on along one line: rows end only where the line changes (SPEC section
  // 10). A use or an add at a row's begin keeps it apart. The rows are taken from the
  // left, each as long as the holding stays on its line, time by time: a row of one time
  // takes its slope from the next time's holding, and when a row's line reaches only the
  // first time of the next row, it takes that time and the next row starts one later.
  // A row of one time has slope 0. So the rows depend on the holding alone, not on how
  // the ticks were grouped into jobs (one job of n ticks, or n jobs of one tick, give
  // the same rows).
  void merge_collinear() requires Jobs {
    std::size_t out = 0;
    for (std::size_t i = 0; i < rows_.size(); ++i) {
      closed_row q = rows_[i];
      if (out > 0) {
        closed_row& p = rows_[out - 1];
        if (q.job_start && p.credit == q.credit && p.end != timestamp_max && q.begin == p.end + 1) {
          const bool p_point = p.begin == p.end;
          const amount_t s = p_point ? p.amount - q.amount : p.slope;
          const total_t at_q = total_t{p.amount} - total_t{s} * (total_t{q.begin} - p.begin);
          if (s >= 0 && at_q == q.amount) {
            p.slope = s;
            if (q.begin == q.end || q.slope == s) {  // all of q is on p's line
              p.end = q.end;
              continue;
            }
            p.end = q.begin;  // q's first time only: the rest of q starts a row
            q.amount -= q.slope;
            q.begin += 1;
          }
        }
      }
      rows_[out++] = q;
    }
    rows_.resize(out);
    // A row of one time draws nothing after its begin: its slope is 0, whichever job drew
    // at that time.
    for (closed_row& r : rows_) {
      if (r.begin == r.end) r.slope = 0;
    }
  }

  std::vector<credit> heap_;
  std::vector<closed_row> rows_;
  std::vector<std::pair<event_row, amount_t>> tallies_;
  bool tally_ = false;
  timestamp_t now_ = 0;
  bool job_draw_ = false;
  bool merge_ = false;  // a job drew: rows may merge
};
static_assert(detail::live_credit_set<heap_credits<false>>);
static_assert(detail::live_credit_set<heap_credits<true>>);

// Replays one account's events, which must be sorted by (timestamp, row), appending its
// interval rows (ordered by credit, then begin) and usage exceptions to `out`. The live
// credits' buffers are reused from account to account. Throws detail::balance_overflow.
class account_replayer {
 public:
  void run(std::span<const account_event> events, account_index account, overdraft_policy policy,
           ledger_result& out);
  // The same for an account with jobs (SPEC section 10), in closed form.
  void run_with_jobs(std::span<const account_event> events, account_index account, overdraft_policy policy,
                     ledger_result& out);
  // The next runs keep each credit's draws by jobs (job_draws()).
  void tally_job_draws() noexcept { metered_.set_tally(true); }
  const std::vector<std::pair<event_row, amount_t>>& job_draws() const noexcept { return metered_.tallies(); }

 private:
  struct job {
    timestamp_t last;  // its last tick
    amount_t rate;
    event_row row;
    timestamp_t first_unpaid = 0;
    amount_t unpaid = 0;  // so far; <= rate * ticks <= int64
    bool paid = true;     // in the run being drawn
  };
  template <bool Jobs>
  static void add_event(heap_credits<Jobs>& live, const account_event& e, amount_t& balance, overdraft_policy policy,
                        ledger_result& out, account_index account);

  heap_credits<false> plain_;   // accounts without jobs
  heap_credits<true> metered_;  // accounts with jobs
  std::vector<job> jobs_;     // active, in arrival order
  std::vector<job> started_;  // jobs starting at the time being applied
};

// An add or a use, applied now.
template <bool Jobs>
void account_replayer::add_event(heap_credits<Jobs>& live, const account_event& e, amount_t& balance,
                                 overdraft_policy policy, ledger_result& out, account_index account) {
  assert(e.amount >= 0);
  if (e.amount == 0) return;  // a zero add is no credit, a zero use draws nothing
  if (e.kind == op::add) {
    detail::add_to_balance(balance, e.amount, e.row, e.timestamp);
    live.insert(e.end, e.timestamp, e.row, e.amount);
    return;
  }
  const detail::use_outcome paid = detail::draw(live, balance, e.amount, policy);
  if (paid.rejected) {
    out.rejections.push(account, e.row, e.timestamp, e.amount);
  } else if (paid.unpaid > 0) {
    out.shortfalls.push(account, e.row, e.timestamp, paid.unpaid);
  }
}

void account_replayer::run(std::span<const account_event> events, account_index account,
                           overdraft_policy policy, ledger_result& out) {
  plain_.clear();
  amount_t balance = 0;  // the sum of the live credits' remaining amounts: the balance now

  std::size_t i = 0;
  while (i < events.size()) {
    const timestamp_t t = events[i].timestamp;
    detail::expire_before(plain_, t, balance);
    plain_.set_now(t);
    for (; i < events.size() && events[i].timestamp == t; ++i) add_event(plain_, events[i], balance, policy, out, account);
    assert(balance >= 0);
  }
  for (const plain_row& r : plain_.finish()) out.intervals.push(account, r.credit, r.begin, r.end, r.amount);
}

// Jobs in closed form. Between two event times the ticks of the active jobs are
// homogeneous: each tick draws the paid jobs' total rate from the front credit. So the
// ticks go in runs, each one row with a slope, and a run ends only at a boundary: a job
// ending, or the front credit expiring or running out (that tick is split across
// credits, or changes which jobs are paid, and is applied exactly). When the balance
// does not cover every job, `drain` drains it in one exact tick and then leaves every
// tick unpaid until an event; `reject` pays the jobs its arrival-order check pays at
// that balance, a set that holds for as long as the run lasts. Ticks at an event time
// are applied exactly, in arrival order with the events there. Cost:
// O((events + boundaries) log n), whatever the number of ticks.
void account_replayer::run_with_jobs(std::span<const account_event> events, account_index account,
                                     overdraft_policy policy, ledger_result& out) {
  metered_.clear();
  jobs_.clear();
  amount_t balance = 0;
  usage_table& unpaid_usage = policy == overdraft_policy::drain ? out.shortfalls : out.rejections;

  // `per_tick` unpaid by job `j` at every tick of [first, last].
  auto unpaid = [&](job& j, timestamp_t first, timestamp_t last, amount_t per_tick) {
    if (per_tick == 0) return;
    if (j.unpaid == 0) j.first_unpaid = first;
    j.unpaid += per_tick * (last - first + 1);  // within the job's rate x ticks
    unpaid_ticks& ticks = out.job_unpaid;
    if (ticks.size() != 0 && ticks.account.back() == account && ticks.row.back() == j.row &&
        ticks.per_tick.back() == per_tick && ticks.last.back() != timestamp_max && ticks.last.back() + 1 == first) {
      ticks.last.back() = last;
    } else {
      ticks.push(account, j.row, first, last, per_tick);
    }
  };
  auto retire_before = [&](timestamp_t t) {  // jobs whose last tick is before t are done
    std::size_t kept = 0;
    for (job& j : jobs_) {
      if (j.last >= t) {
        jobs_[kept++] = j;
      } else if (j.unpaid > 0) {
        unpaid_usage.push(account, j.row, j.first_unpaid, j.unpaid);
      }
    }
    jobs_.resize(kept);
  };
  auto tick = [&](job& j, timestamp_t t) {  // one tick of one job, exactly
    metered_.set_job_draw(true);
    const detail::use_outcome paid = detail::draw(metered_, balance, j.rate, policy);
    metered_.set_job_draw(false);
    unpaid(j, t, t, paid.rejected ? j.rate : paid.unpaid);
  };

  // The ticks of the active jobs at every time of [a, b], no event among them.
  auto run_ticks = [&](timestamp_t a, timestamp_t b) {
    for (;;) {
      detail::expire_before(metered_, a, balance);
      retire_before(a);
      if (jobs_.empty()) return;
      metered_.set_now(a);
      timestamp_t seg_end = b;  // nothing changes but the balance up to here
      total_t all_rates = 0;
      for (const job& j : jobs_) {
        seg_end = std::min(seg_end, j.last);
        all_rates += j.rate;
      }
      if (!metered_.empty()) seg_end = std::min(seg_end, metered_.front_end());
      const auto span = static_cast<std::uint64_t>(seg_end) - static_cast<std::uint64_t>(a);  // ticks - 1
      auto skip = [&] {  // to the tick after seg_end; false past the last timestamp
        if (seg_end == b || seg_end == timestamp_max) return false;
        a = seg_end + 1;
        return true;
      };
      // The paid jobs draw paid_rate a tick from the front credit. A run lasts while the
      // front holds a whole tick's paid_rate; then every tick starts with a balance of at
      // least paid_rate, so every job paid at the run's start is paid throughout (each
      // needs at most the paid total before it plus its rate), and the others, needing
      // more than the balance left them, stay unpaid as the balance falls.
      amount_t paid_rate = 0;
      bool all_paid = true;
      if (all_rates <= balance) {
        paid_rate = static_cast<amount_t>(all_rates);
        for (job& j : jobs_) j.paid = true;
      } else if (policy == overdraft_policy::drain) {
        if (balance == 0) {  // nothing to draw from until the next event
          for (job& j : jobs_) unpaid(j, a, seg_end, j.rate);
          if (!skip()) return;
          continue;
        }
        for (job& j : jobs_) tick(j, a);  // drains what is active
        if (a == b || a == timestamp_max) return;
        ++a;
        continue;
      } else {  // reject: the jobs the arrival-order check pays at this balance
        all_paid = false;
        for (job& j : jobs_) {
          j.paid = j.rate <= balance - paid_rate;
          if (j.paid) paid_rate += j.rate;
        }
        if (paid_rate == 0) {  // every tick rejected until something changes
          for (job& j : jobs_) unpaid(j, a, seg_end, j.rate);
          if (!skip()) return;
          continue;
        }
      }
      std::uint64_t k = static_cast<std::uint64_t>(metered_.front_remaining() / paid_rate);
      if (span != std::numeric_limits<std::uint64_t>::max()) k = std::min(k, span + 1);
      if (k == 0) {  // a tick split across credits, or the paid set changing: exactly
        for (job& j : jobs_) tick(j, a);
        if (a == b || a == timestamp_max) return;
        ++a;
        continue;
      }
      metered_.draw_run(a, k, paid_rate);
      balance -= static_cast<amount_t>(k) * paid_rate;
      const timestamp_t last = a + static_cast<timestamp_t>(k - 1);
      if (!all_paid) {  // reject: the others' ticks are rejected
        for (job& j : jobs_) {
          if (!j.paid) unpaid(j, a, last, j.rate);
        }
      }
      if (last == b || last == timestamp_max) return;
      a = last + 1;
    }
  };

  std::size_t i = 0;
  timestamp_t cursor = events.empty() ? 0 : events.front().timestamp;  // ticks before it are applied
  bool done = false;
  while (i < events.size()) {
    const timestamp_t t = events[i].timestamp;
    if (!jobs_.empty() && cursor < t) run_ticks(cursor, t - 1);
    detail::expire_before(metered_, t, balance);
    retire_before(t);
    metered_.set_now(t);
    // The events at t and the ticks at t of the jobs already running, in arrival order.
    started_.clear();
    std::size_t next_job = 0;
    for (; i < events.size() && events[i].timestamp == t; ++i) {
      const account_event& e = events[i];
      for (; next_job < jobs_.size() && jobs_[next_job].row < e.row; ++next_job) tick(jobs_[next_job], t);
      if (e.kind != op::run) {
        add_event(metered_, e, balance, policy, out, account);
      } else if (e.amount != 0) {  // a job starting now: its first tick is here
        started_.push_back({e.end, e.amount, e.row});
        tick(started_.back(), t);
      }
    }
    for (; next_job < jobs_.size(); ++next_job) tick(jobs_[next_job], t);
    if (!started_.empty()) {
      jobs_.insert(jobs_.end(), started_.begin(), started_.end());
      std::sort(jobs_.begin(), jobs_.end(), [](const job& x, const job& y) { return x.row < y.row; });
    }
    assert(balance >= 0);
    if (t == timestamp_max) {
      done = true;
      break;
    }
    cursor = t + 1;
  }
  if (!done && !jobs_.empty()) {
    timestamp_t until = cursor;
    for (const job& j : jobs_) until = std::max(until, j.last);
    if (cursor <= until) run_ticks(cursor, until);
  }
  retire_before(timestamp_max);  // every job still counted is done: record its unpaid total
  for (const job& j : jobs_) {
    if (j.unpaid > 0) unpaid_usage.push(account, j.row, j.first_unpaid, j.unpaid);
  }
  jobs_.clear();
  for (const metered_row& r : metered_.finish()) {
    out.intervals.push(account, r.credit, r.begin, r.end, r.amount, r.slope);
  }
}

// A row of the events counting-sorted by account, with its kind: the gather reads the
// other columns by row, and what it reads depends on the kind.
struct sorted_row {
  event_row row;
  op kind;
};

// Accounts never interact: a ledger of at least this many events per core is replayed
// on every core.
constexpr std::size_t events_per_part_min = std::size_t{1} << 16;

// Reserves `capacity` interval rows in `out`. An account never has more interval rows
// than events (an add opens one stretch, a use ends at most one partly drawn stretch and
// opens one), and jobs about two an event. A reservation takes address space only, so
// slot 0 can take the others' rows in place.
void reserve_rows(const event_table& events, std::size_t capacity, ledger_result& out) {
  detail::reserve_on_huge_pages(out.intervals.account, capacity);
  detail::reserve_on_huge_pages(out.intervals.credit, capacity);
  detail::reserve_on_huge_pages(out.intervals.begin, capacity);
  detail::reserve_on_huge_pages(out.intervals.end, capacity);
  detail::reserve_on_huge_pages(out.intervals.amount, capacity);
  if (events.has_jobs()) detail::reserve_on_huge_pages(out.intervals.slope, capacity);
}

// Replays accounts [first, last) of the counting-sorted rows into `out`.
void replay_accounts(const event_table& events, overdraft_policy policy, const std::vector<std::size_t>& offsets,
                     std::span<const sorted_row> order, std::size_t first, std::size_t last, ledger_result& out) {
  account_replayer replayer;
  std::vector<account_event> batch;
  // An account's rows lie scattered over the columns (its events interleave with the
  // others' in the log), so gathering them is a cache miss a column. A use's end is its
  // timestamp, so a use costs two (its kind came with its row); and the lines of the
  // rows a few ahead, across accounts, are fetched early so that the misses overlap.
  constexpr std::size_t ahead = 16;
  const std::size_t part_end = offsets[last];
  for (std::size_t a = first; a < last; ++a) {
    batch.clear();
    for (std::size_t i = offsets[a]; i < offsets[a + 1]; ++i) {
      if (i + ahead < part_end) {
        const sorted_row next = order[i + ahead];
        __builtin_prefetch(events.timestamp.data() + next.row);
        __builtin_prefetch(events.amount.data() + next.row);
        if (next.kind != op::use) __builtin_prefetch(events.end.data() + next.row);
      }
      const sorted_row r = order[i];
      const timestamp_t t = events.timestamp[r.row];
      assert(r.kind != op::use || events.end[r.row] == t);
      batch.push_back({t, events.amount[r.row], r.kind == op::use ? t : events.end[r.row], r.row, r.kind});
    }
    // Logs mostly arrive in time order: sort only when needed. Stable, so equal
    // timestamps keep arrival order.
    auto by_time = [](const account_event& x, const account_event& y) {
      return x.timestamp < y.timestamp;
    };
    if (!std::is_sorted(batch.begin(), batch.end(), by_time)) {
      std::stable_sort(batch.begin(), batch.end(), by_time);
    }
    const bool jobs = std::any_of(batch.begin(), batch.end(), [](const account_event& e) { return e.kind == op::run; });
    try {
      if (jobs) {
        replayer.run_with_jobs(batch, static_cast<account_index>(a), policy, out);
      } else {
        replayer.run(batch, static_cast<account_index>(a), policy, out);
      }
    } catch (const detail::balance_overflow& overflow) {
      throw input_error(events.source, events.line[overflow.row],
                        "balance beyond int64 at " + std::to_string(overflow.timestamp) + " (account '" +
                            std::string(events.accounts[static_cast<std::uint32_t>(a)]) + "')");
    }
  }
}

// Where a slot's output stood when a run began: each table's size.
struct ledger_mark {
  std::size_t intervals = 0;
  std::size_t shortfalls = 0;
  std::size_t rejections = 0;
  std::size_t job_unpaid = 0;
};

// One column of the slots' tables laid end to end (detail::gather_runs).
template <class Table, class T>
void gather_column(ledger_result& out, std::vector<ledger_result>& partial, const detail::taken_runs& taken,
                   const std::vector<std::vector<ledger_mark>>& marks, Table ledger_result::*table,
                   std::size_t ledger_mark::*size, std::vector<T> Table::*column) {
  detail::gather_runs(
      out.*table.*column, taken, [&](std::size_t s) -> std::vector<T>& { return partial[s].*table.*column; },
      [&](std::size_t s, std::size_t j) { return marks[s][j].*size; });
}

ledger_mark mark_of(const ledger_result& r) {
  return {r.intervals.size(), r.shortfalls.size(), r.rejections.size(), r.job_unpaid.size()};
}

}  // namespace

std::vector<std::pair<event_row, amount_t>> detail::job_draws_until(const event_table& events, account_index account,
                                                                     timestamp_t t, overdraft_policy policy) {
  // The account's events up to t, jobs cut at t: the state at t, as a replay sees it.
  std::vector<account_event> batch;
  for (std::size_t row = 0; row < events.size(); ++row) {
    if (events.account[row] != account || events.timestamp[row] > t) continue;
    const timestamp_t end = events.kind[row] == op::run ? std::min(events.end[row], t) : events.end[row];
    batch.push_back({events.timestamp[row], events.amount[row], end, static_cast<event_row>(row), events.kind[row]});
  }
  std::stable_sort(batch.begin(), batch.end(),
                   [](const account_event& x, const account_event& y) { return x.timestamp < y.timestamp; });
  account_replayer replayer;
  replayer.tally_job_draws();
  ledger_result scratch;
  replayer.run_with_jobs(batch, account, policy, scratch);
  std::vector<std::pair<event_row, amount_t>> draws = replayer.job_draws();
  std::sort(draws.begin(), draws.end());
  return draws;
}

ledger_result replay(const event_table& events, overdraft_policy policy) {
  const std::size_t event_count = events.size();
  const std::size_t account_count = events.accounts.size();

  // Stable counting sort of rows by account, on every core: each core counts, then
  // places, a run of consecutive rows after the rows of the runs before it, so arrival
  // order survives within an account. The sorted rows are not zero-filled first: each
  // core's writes are their pages' first touch. Each core counts in a slot an account:
  // with fewer than 8 rows an account a core, the counts would cost more than they
  // save (and hold more memory than a byte an event).
  const std::size_t sorters =
      std::min(detail::part_count(event_count, events_per_part_min),
               std::max<std::size_t>(1, event_count / (8 * std::max<std::size_t>(account_count, 1))));
  auto rows_of = [&](std::size_t k) { return std::pair(event_count * k / sorters, event_count * (k + 1) / sorters); };
  std::vector<std::vector<std::size_t>> cursor(sorters);
  detail::run_parts(sorters, [&](std::size_t k) {
    cursor[k].assign(account_count, 0);
    const auto [first, last] = rows_of(k);
    for (std::size_t row = first; row < last; ++row) ++cursor[k][events.account[row]];
  });
  std::vector<std::size_t> offsets(account_count + 1, 0);
  for (std::size_t a = 0, at = 0; a < account_count; ++a) {
    for (std::vector<std::size_t>& counted : cursor) at += std::exchange(counted[a], at);
    offsets[a + 1] = at;
  }
  const std::unique_ptr<sorted_row[]> sorted = std::make_unique_for_overwrite<sorted_row[]>(event_count);
  detail::advise_huge_pages(sorted.get(), event_count * sizeof(sorted_row));
  detail::run_parts(sorters, [&](std::size_t k) {
    const auto [first, last] = rows_of(k);
    for (std::size_t row = first; row < last; ++row) {
      sorted[cursor[k][events.account[row]]++] = {static_cast<event_row>(row), events.kind[row]};
    }
  });
  cursor.clear();
  const std::span<const sorted_row> order(sorted.get(), event_count);

  // Accounts on every core, each core a share of about equal size; a core done with its
  // share takes accounts from the back of another's (a giant account's events cost more
  // each than a small one's, so equal shares of events need not end together). The
  // first error in account order is the one reported, whichever core finds it first.
  const std::size_t workers = account_count == 0 ? 1 : detail::part_count(event_count, events_per_part_min);
  const std::size_t rows_per_event = events.has_jobs() ? 2 : 1;
  if (workers == 1) {
    ledger_result out;
    out.account_count = account_count;
    out.policy = policy;
    reserve_rows(events, rows_per_event * event_count, out);
    replay_accounts(events, policy, offsets, order, 0, account_count, out);
    return out;
  }
  std::vector<ledger_result> partial(2 * workers);
  std::vector<std::vector<ledger_mark>> marks(2 * workers);
  const detail::taken_runs taken = detail::run_with_stealing(
      offsets, workers, [&](const detail::range_slot& slot, std::size_t first, std::size_t last) {
        ledger_result& mine = partial[slot.index];
        if (marks[slot.index].empty()) reserve_rows(events, rows_per_event * (slot.index == 0 ? event_count : slot.room), mine);
        marks[slot.index].push_back(mark_of(mine));
        replay_accounts(events, policy, offsets, order, first, last, mine);
      });

  // Slot 0's runs come first and stay in place; the others' follow in account order.
  // Slopes: a column only where some slot has one (the others' rows are level).
  const bool sloped = std::any_of(partial.begin(), partial.end(),
                                  [](const ledger_result& r) { return r.intervals.has_slopes(); });
  for (std::size_t s = 0; s < partial.size(); ++s) {
    interval_table& iv = partial[s].intervals;
    if (sloped && !iv.has_slopes()) iv.slope.assign(iv.size(), 0);
    marks[s].push_back(mark_of(partial[s]));  // where the last run ends
  }
  ledger_result out = std::move(partial[0]);
  out.account_count = account_count;
  out.policy = policy;
  // A column at a time: at most one column is held twice.
  using iv = interval_table;
  using usage = usage_table;
  using unpaid = unpaid_ticks;
  for (auto column : {&iv::begin, &iv::end, &iv::amount}) {
    gather_column(out, partial, taken, marks, &ledger_result::intervals, &ledger_mark::intervals, column);
  }
  if (sloped) gather_column(out, partial, taken, marks, &ledger_result::intervals, &ledger_mark::intervals, &iv::slope);
  gather_column(out, partial, taken, marks, &ledger_result::intervals, &ledger_mark::intervals, &iv::account);
  gather_column(out, partial, taken, marks, &ledger_result::intervals, &ledger_mark::intervals, &iv::credit);
  for (auto [table, size] : {std::pair(&ledger_result::shortfalls, &ledger_mark::shortfalls),
                             std::pair(&ledger_result::rejections, &ledger_mark::rejections)}) {
    gather_column(out, partial, taken, marks, table, size, &usage::account);
    gather_column(out, partial, taken, marks, table, size, &usage::row);
    gather_column(out, partial, taken, marks, table, size, &usage::timestamp);
    gather_column(out, partial, taken, marks, table, size, &usage::amount);
  }
  const auto unpaid_table = &ledger_result::job_unpaid;
  const auto unpaid_size = &ledger_mark::job_unpaid;
  gather_column(out, partial, taken, marks, unpaid_table, unpaid_size, &unpaid::account);
  gather_column(out, partial, taken, marks, unpaid_table, unpaid_size, &unpaid::row);
  for (auto column : {&unpaid::first, &unpaid::last}) gather_column(out, partial, taken, marks, unpaid_table, unpaid_size, column);
  gather_column(out, partial, taken, marks, unpaid_table, unpaid_size, &unpaid::per_tick);
  return out;
}

}  // namespace gpucredit
