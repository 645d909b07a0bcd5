// The step index: built per account from the interval table (deltas at begin and after
// end, each credit's runs of deltas merged, equal times merged, prefix-summed), on every
// core.
#include "cpu/query/step_index.hpp"

#include <algorithm>
#include <cassert>
#include <type_traits>

#include "cpu/memory.hpp"
#include "cpu/parallel.hpp"

namespace gpucredit {

namespace {

// Interval rows per core below which the index is built on one core.
constexpr std::size_t intervals_per_part_min = std::size_t{1} << 16;

struct delta {
  timestamp_t time;
  std::uint64_t change;  // two's complement: sums wrap, and every final balance fits int64
};

// A delta of a ledger with jobs: the balance's value and slope change at `time`.
struct sloped_delta {
  timestamp_t time;
  std::uint64_t change;        // of the value at `time` (wrapping, as above)
  std::uint64_t slope_change;  // of the slope from `time` on
};

// Sorts deltas by time. The ledger lists each credit's stretches one after another, so
// the deltas come as a few ascending runs (one per credit): those are merged pairwise
// in linear passes; many short runs are sorted instead.
template <class Delta>
void sort_deltas(std::vector<Delta>& deltas, std::vector<Delta>& scratch, std::vector<std::size_t>& runs) {
  constexpr std::size_t runs_merged_max = 16;
  auto earlier = [](const Delta& a, const Delta& b) { return a.time < b.time; };
  runs.clear();
  runs.push_back(0);
  for (std::size_t i = 1; i < deltas.size() && runs.size() <= runs_merged_max; ++i) {
    if (deltas[i].time < deltas[i - 1].time) runs.push_back(i);
  }
  if (runs.size() > runs_merged_max) {
    std::sort(deltas.begin(), deltas.end(), earlier);
    return;
  }
  runs.push_back(deltas.size());
  while (runs.size() > 2) {  // merge neighbouring runs until one is left
    scratch.resize(deltas.size());
    std::size_t kept = 0;
    for (std::size_t r = 0; r + 1 < runs.size(); r += 2) {
      const auto first = deltas.begin() + static_cast<std::ptrdiff_t>(runs[r]);
      const auto middle = deltas.begin() + static_cast<std::ptrdiff_t>(runs[r + 1]);
      const auto last = r + 2 < runs.size() ? deltas.begin() + static_cast<std::ptrdiff_t>(runs[r + 2]) : middle;
      std::merge(first, middle, middle, last, scratch.begin() + static_cast<std::ptrdiff_t>(runs[r]), earlier);
      runs[kept++] = runs[r];
    }
    runs[kept++] = deltas.size();
    runs.resize(kept);
    deltas.swap(scratch);
  }
}

// Appends the breakpoints of one account, given the deltas of its intervals in time order.
void append_account(const std::vector<delta>& deltas, step_index& index) {
  std::uint64_t running = 0;
  for (std::size_t i = 0; i < deltas.size();) {
    const timestamp_t t = deltas[i].time;
    std::uint64_t change = 0;
    for (; i < deltas.size() && deltas[i].time == t; ++i) change += deltas[i].change;
    if (change == 0) continue;  // equal times merged; no breakpoint without a change
    running += change;
    assert(static_cast<amount_t>(running) >= 0);
    index.times.push_back(t);
    index.balances.push_back(static_cast<amount_t>(running));
  }
}

// The same with slopes: between breakpoints the balance follows its line, so each
// breakpoint's value is the line's value there plus the changes; a time whose changes
// cancel leaves the line as it is and makes no breakpoint.
void append_account(const std::vector<sloped_delta>& deltas, step_index& index) {
  std::uint64_t value = 0;  // at `at`
  std::uint64_t slope = 0;
  timestamp_t at = 0;
  for (std::size_t i = 0; i < deltas.size();) {
    const timestamp_t t = deltas[i].time;
    std::uint64_t change = 0;
    std::uint64_t slope_change = 0;
    for (; i < deltas.size() && deltas[i].time == t; ++i) {
      change += deltas[i].change;
      slope_change += deltas[i].slope_change;
    }
    if (change == 0 && slope_change == 0) continue;
    value = value - slope * (static_cast<std::uint64_t>(t) - static_cast<std::uint64_t>(at)) + change;
    slope += slope_change;
    at = t;
    assert(static_cast<amount_t>(value) >= 0 && static_cast<amount_t>(slope) >= 0);
    index.times.push_back(t);
    index.balances.push_back(static_cast<amount_t>(value));
    index.slopes.push_back(static_cast<amount_t>(slope));
  }
}

template <class Delta>
void add_deltas(const interval_table& intervals, std::size_t row, std::vector<Delta>& deltas) {
  const auto amount = static_cast<std::uint64_t>(intervals.amount[row]);
  const timestamp_t end = intervals.end[row];
  if constexpr (std::is_same_v<Delta, delta>) {
    deltas.push_back({intervals.begin[row], amount});
    // The credit stops counting at end + 1; at the largest timestamp it never stops.
    if (end != timestamp_max) deltas.push_back({end + 1, 0 - amount});
  } else {
    const auto slope = static_cast<std::uint64_t>(intervals.slope_of(row));
    deltas.push_back({intervals.begin[row], amount, slope});
    if (end != timestamp_max) {  // the line's value at end + 1 comes off (wrapping: it may be <= 0)
      const std::uint64_t span = static_cast<std::uint64_t>(end) + 1 - static_cast<std::uint64_t>(intervals.begin[row]);
      deltas.push_back({end + 1, 0 - (amount - slope * span), 0 - slope});
    }
  }
}

// What building keeps from one account to the next (its buffers' room). One a core,
// each on its own cache lines: the cores update them all the time.
template <class Delta>
struct alignas(64) build_scratch {
  std::vector<Delta> deltas;
  std::vector<Delta> scratch;
  std::vector<std::size_t> runs;
};

// Appends the breakpoints of accounts [first, last) to `part`, and where each begins.
template <class Delta>
void build_accounts(const interval_table& intervals, const std::vector<std::size_t>& offsets,
                    const std::vector<std::size_t>& order, bool grouped, std::size_t first, std::size_t last,
                    build_scratch<Delta>& room, step_index& part) {
  std::vector<Delta>& deltas = room.deltas;
  std::vector<Delta>& scratch = room.scratch;
  std::vector<std::size_t>& runs = room.runs;
  for (std::size_t a = first; a < last; ++a) {
    part.account_offsets.push_back(part.times.size());
    deltas.clear();
    for (std::size_t i = offsets[a]; i < offsets[a + 1]; ++i) add_deltas(intervals, grouped ? i : order[i], deltas);
    sort_deltas(deltas, scratch, runs);
    append_account(deltas, part);
  }
}

}  // namespace

step_index step_index::build(const interval_table& intervals, std::size_t account_count) {
  const std::size_t n = intervals.size();
  // Group rows by account (a stable counting sort of row numbers), unless they already are.
  std::vector<std::size_t> offsets(account_count + 1, 0);
  for (const account_index a : intervals.account) {
    assert(a < account_count);
    ++offsets[a + 1];
  }
  for (std::size_t a = 0; a < account_count; ++a) offsets[a + 1] += offsets[a];
  std::vector<std::size_t> order;
  const bool grouped = std::is_sorted(intervals.account.begin(), intervals.account.end());
  if (!grouped) {
    order.resize(n);
    std::vector<std::size_t> cursor(offsets.begin(), offsets.end() - 1);
    for (std::size_t row = 0; row < n; ++row) order[cursor[intervals.account[row]]++] = row;
  }

  const bool sloped = intervals.has_slopes();
  // At most two breakpoints a row. A reservation is address space until written, so the
  // first worker reserves room for every row and takes the others' runs in place: the
  // index is written once and copied at most once, never zero-filled.
  auto reserve = [&](step_index& part, std::size_t accounts, std::size_t rows) {
    part.account_offsets.reserve(accounts);
    detail::reserve_on_huge_pages(part.times, 2 * rows);
    detail::reserve_on_huge_pages(part.balances, 2 * rows);
    if (sloped) detail::reserve_on_huge_pages(part.slopes, 2 * rows);
  };
  const std::size_t workers = account_count == 0 ? 1 : detail::part_count(n, intervals_per_part_min);
  std::vector<build_scratch<sloped_delta>> sloped_scratch(sloped ? 2 * workers : 0);
  std::vector<build_scratch<delta>> level_scratch(sloped ? 0 : 2 * workers);
  auto build_run = [&](std::size_t slot, step_index& part, std::size_t first, std::size_t last) {
    if (sloped) {
      build_accounts(intervals, offsets, order, grouped, first, last, sloped_scratch[slot], part);
    } else {
      build_accounts(intervals, offsets, order, grouped, first, last, level_scratch[slot], part);
    }
  };
  if (workers == 1) {
    step_index index;
    reserve(index, account_count + 1, n);
    build_run(0, index, 0, account_count);
    index.account_offsets.push_back(index.times.size());
    return index;
  }

  // Accounts are independent: every core builds breakpoints, each core a share of about
  // equal size; a core done with its share takes accounts from the back of another's (a
  // giant account's rows cost more each: longer sorts). Then the slots' runs are laid
  // end to end in account order.
  std::vector<step_index> partial(2 * workers);
  // Where each run's breakpoints and account offsets begin in its slot.
  struct mark {
    std::size_t breakpoints;
    std::size_t accounts;
  };
  std::vector<std::vector<mark>> marks(2 * workers);
  const detail::taken_runs taken = detail::run_with_stealing(
      offsets, workers, [&](const detail::range_slot& slot, std::size_t first, std::size_t last) {
        step_index& part = partial[slot.index];
        if (marks[slot.index].empty()) {
          if (slot.index == 0) {
            reserve(part, account_count + 1, n);
          } else if (slot.room != 0) {
            reserve(part, 0, slot.room);
          }
        }
        marks[slot.index].push_back({part.times.size(), part.account_offsets.size()});
        build_run(slot.index, part, first, last);
      });
  for (std::size_t s = 0; s < partial.size(); ++s) {
    marks[s].push_back({partial[s].times.size(), partial[s].account_offsets.size()});  // where the last run ends
  }

  // Each account's offset, shifted to where its run lands; then the breakpoints, a column
  // at a time (at most one is held twice).
  step_index index = std::move(partial[0]);
  std::size_t at = index.times.size();
  for (const auto& [s, j] : taken.in_order) {
    if (s == 0) continue;
    const mark& from = marks[s][j];
    const mark& to = marks[s][j + 1];
    for (std::size_t a = from.accounts; a < to.accounts; ++a) {
      index.account_offsets.push_back(at + partial[s].account_offsets[a] - from.breakpoints);
    }
    at += to.breakpoints - from.breakpoints;
  }
  auto mark_of = [&](std::size_t s, std::size_t j) { return marks[s][j].breakpoints; };
  detail::gather_runs(index.times, taken, [&](std::size_t s) -> auto& { return partial[s].times; }, mark_of);
  detail::gather_runs(index.balances, taken, [&](std::size_t s) -> auto& { return partial[s].balances; }, mark_of);
  if (sloped) detail::gather_runs(index.slopes, taken, [&](std::size_t s) -> auto& { return partial[s].slopes; }, mark_of);
  index.account_offsets.push_back(index.times.size());
  return index;
}

amount_t step_index::balance(account_index account, timestamp_t t) const noexcept {
  if (account >= account_count()) return 0;
  const auto first = times.begin() + static_cast<std::ptrdiff_t>(account_offsets[account]);
  const auto last = times.begin() + static_cast<std::ptrdiff_t>(account_offsets[account + 1]);
  const auto after = std::upper_bound(first, last, t);  // first breakpoint later than t
  if (after == first) return 0;
  return value_at(static_cast<std::size_t>(after - times.begin()) - 1, t);
}

}  // namespace gpucredit
