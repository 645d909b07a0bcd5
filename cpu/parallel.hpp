// Fork-join over the machine's cores with std::thread: a batch is cut into a few large
// parts (never more than the cores), each run on its own thread, the caller's included.
// Parts are plain ranges of accounts or queries, so no work-stealing pool is needed.
#pragma once

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <exception>
#include <mutex>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

#if defined(__unix__) || defined(__APPLE__)
#include <pthread.h>
#endif

namespace gpucredit::detail {

/// While alive, the calling thread blocks the signals that ask a process to stop
/// (SIGINT, SIGTERM, SIGHUP, SIGQUIT); threads started meanwhile inherit the block and
/// keep it. So helper threads never run a handler for them: the thread that called
/// into the library does, and a program's handler (the CLI's removes its unfinished
/// output file) sees that thread stopped where it was, not running on beside it.
class stop_signals_blocked {
 public:
  stop_signals_blocked() noexcept {
#if defined(__unix__) || defined(__APPLE__)
    sigset_t stop;
    sigemptyset(&stop);
    for (const int signal_number : {SIGINT, SIGTERM, SIGHUP, SIGQUIT}) sigaddset(&stop, signal_number);
    restore_ = pthread_sigmask(SIG_BLOCK, &stop, &before_) == 0;
#endif
  }
  ~stop_signals_blocked() {
#if defined(__unix__) || defined(__APPLE__)
    if (restore_) pthread_sigmask(SIG_SETMASK, &before_, nullptr);
#endif
  }
  stop_signals_blocked(const stop_signals_blocked&) = delete;
  stop_signals_blocked& operator=(const stop_signals_blocked&) = delete;

 private:
#if defined(__unix__) || defined(__APPLE__)
  sigset_t before_{};
  bool restore_ = false;
#endif
};

/// A std::thread running fn, started with the stop signals blocked (above).
template <class F>
std::thread start_helper(F&& fn) {
  const stop_signals_blocked blocked;
  return std::thread(std::forward<F>(fn));
}

/// How many parts to cut `items` into: one per core, but none smaller than `part_min`.
inline std::size_t part_count(std::size_t items, std::size_t part_min) {
  if (items < 2 * part_min) return 1;
  // hardware_concurrency() reads /sys on every call: ask once.
  static const std::size_t cores = std::max(1U, std::thread::hardware_concurrency());
  return std::clamp<std::size_t>(items / std::max<std::size_t>(part_min, 1), 1, cores);
}

/// Runs fn(k) for every k in [0, parts), in parallel, and waits for all. When some throw,
/// rethrows the exception of the lowest k, so the error reported does not depend on
/// timing.
template <class F>
void run_parts(std::size_t parts, F&& fn) {
  std::vector<std::exception_ptr> errors(parts);
  auto guarded = [&](std::size_t k) {
    try {
      fn(k);
    } catch (...) {
      errors[k] = std::current_exception();
    }
  };
  std::vector<std::thread> helpers;
  helpers.reserve(parts);
  std::size_t k = 1;
  try {
    const stop_signals_blocked blocked;  // in the helpers, not in the caller's parts
    for (; k < parts; ++k) helpers.emplace_back(guarded, k);
  } catch (const std::system_error&) {
    // No thread to be had (a memory limit, a process limit): the caller's thread runs
    // the parts left, so a starved machine is slower, never wrong.
  }
  for (std::size_t left = k; left < parts; ++left) guarded(left);
  guarded(0);
  for (std::thread& h : helpers) h.join();
  for (const std::exception_ptr& e : errors) {
    if (e) std::rethrow_exception(e);
  }
}

/// Cuts the ranges [offsets[i], offsets[i + 1]) into `parts` runs of consecutive ranges
/// of about equal total size; returns parts + 1 indices into the ranges.
inline std::vector<std::size_t> balanced_cuts(const std::vector<std::size_t>& offsets, std::size_t parts) {
  const std::size_t ranges = offsets.size() - 1;
  const std::size_t total = offsets.back();
  std::vector<std::size_t> cuts(parts + 1, ranges);
  cuts[0] = 0;
  std::size_t r = 0;
  for (std::size_t k = 1; k < parts; ++k) {
    const std::size_t target = total * k / parts;
    while (r < ranges && offsets[r] < target) ++r;
    cuts[k] = r;
  }
  return cuts;
}

/// Where run_with_stealing puts a call's output. Each worker has two slots: its own
/// share's runs go to slot `index`, runs it takes from another worker's share to slot
/// `workers + index`.
struct range_slot {
  std::size_t index = 0;  ///< the slot, in [0, 2 * workers)
  std::size_t room = 0;   ///< for a worker's own slot, the items of its share; else 0
};

/// Consecutive ranges [first, last) taken in one go.
struct range_run {
  std::size_t first = 0;
  std::size_t last = 0;
};

/// What run_with_stealing did: each slot's runs in the order they were done, and every
/// run as (slot, its index among that slot's runs) in ascending order of ranges.
struct taken_runs {
  std::vector<std::vector<range_run>> by_slot;
  std::vector<std::pair<std::size_t, std::size_t>> in_order;
};

/// Calls fn(slot, first, last) on `workers` threads so that every range
/// [offsets[i], offsets[i + 1]) is in exactly one call, and the workers end within
/// about a run of each other (or one range, where a single range outweighs that) even
/// when a range's cost is not its size (a giant account's events cost more each than a
/// small one's: longer sorts, larger heaps). Each worker owns a share of consecutive
/// ranges of about equal size and takes it from the front, in runs of about 1/128 of
/// the share (at least one range). A worker done with its share takes runs from the
/// back of the share with the most left. Where the sizes tell the cost, little or
/// nothing is taken and the work is laid out much as by equal shares alone. The caller
/// keeps each slot's outputs in the order of its calls, and lays them end to end in the
/// order of `in_order`; slot 0's runs come first.
///
/// When fn throws, its worker stops (the others take what it leaves), and once all
/// have stopped the error of the lowest range is rethrown, so the error reported does
/// not depend on timing: a run stops at its first error and runs do not overlap, so the
/// lowest run with an error holds the lowest range with one; and every range left
/// untaken lies above an error of the worker that owned it.
template <class F>
taken_runs run_with_stealing(const std::vector<std::size_t>& offsets, std::size_t workers, F&& fn) {
  workers = std::max<std::size_t>(workers, 1);
  const std::vector<std::size_t> cuts = balanced_cuts(offsets, workers);
  struct share {
    std::mutex claim;
    std::size_t front = 0;  // the ranges not yet taken are [front, back)
    std::size_t back = 0;
    std::size_t run_size = 1;
    std::vector<std::pair<std::size_t, std::size_t>> taken_from_back;  // (slot, run), in the order taken
  };
  std::vector<share> shares(workers);
  for (std::size_t k = 0; k < workers; ++k) {
    shares[k].front = cuts[k];
    shares[k].back = cuts[k + 1];
    shares[k].run_size = std::max<std::size_t>((offsets[cuts[k + 1]] - offsets[cuts[k]]) / 128, 1);
  }
  const auto at = [&](std::size_t i) { return offsets.begin() + static_cast<std::ptrdiff_t>(i); };
  taken_runs taken;
  taken.by_slot.resize(2 * workers);
  std::vector<std::pair<std::size_t, std::exception_ptr>> errors(workers, {0, nullptr});
  run_parts(workers, [&](std::size_t w) {
    // Runs of the worker's own share, from its front; then runs of the others', from
    // their backs, the share with the most left first.
    for (bool own = true;;) {
      range_run run;
      std::size_t slot = w;
      if (own) {
        share& mine = shares[w];
        const std::lock_guard<std::mutex> lock(mine.claim);
        if (mine.front >= mine.back) {
          own = false;
          continue;
        }
        // Up to the first range whose end reaches run_size past the front.
        const auto reach = std::lower_bound(at(mine.front + 1), at(mine.back), offsets[mine.front] + mine.run_size);
        run = {mine.front, static_cast<std::size_t>(reach - offsets.begin())};
        mine.front = run.last;
        taken.by_slot[slot].push_back(run);
      } else {
        std::size_t most = 0;
        share* victim = nullptr;
        for (share& other : shares) {
          const std::lock_guard<std::mutex> lock(other.claim);
          const std::size_t left = other.front < other.back ? offsets[other.back] - offsets[other.front] + 1 : 0;
          if (left > most) {
            most = left;
            victim = &other;
          }
        }
        if (victim == nullptr) return;
        const std::lock_guard<std::mutex> lock(victim->claim);
        if (victim->front >= victim->back) continue;
        // From the last range that starts run_size before the back.
        const std::size_t to = offsets[victim->back];
        const auto after = std::upper_bound(at(victim->front), at(victim->back), to - std::min(to, victim->run_size));
        const std::size_t from = static_cast<std::size_t>(after - offsets.begin());
        run = {from > victim->front ? from - 1 : victim->front, victim->back};
        victim->back = run.first;
        slot = workers + w;
        victim->taken_from_back.emplace_back(slot, taken.by_slot[slot].size());
        taken.by_slot[slot].push_back(run);
      }
      try {
        fn(range_slot{slot, own ? offsets[cuts[w + 1]] - offsets[cuts[w]] : 0}, run.first, run.last);
      } catch (...) {
        errors[w] = {run.first, std::current_exception()};
        return;
      }
    }
  });
  const std::exception_ptr* lowest = nullptr;
  std::size_t lowest_range = 0;
  for (const auto& [range, error] : errors) {
    if (error && (lowest == nullptr || range < lowest_range)) {
      lowest = &error;
      lowest_range = range;
    }
  }
  if (lowest != nullptr) std::rethrow_exception(*lowest);
  for (std::size_t k = 0; k < workers; ++k) {
    for (std::size_t j = 0; j < taken.by_slot[k].size(); ++j) taken.in_order.emplace_back(k, j);
    const auto& back = shares[k].taken_from_back;
    taken.in_order.insert(taken.in_order.end(), back.rbegin(), back.rend());
  }
  return taken;
}

/// After run_with_stealing: appends one column of the slots' outputs to `out` in range
/// order, where `out` already holds slot 0's (its runs come first, in place), then frees
/// the column in the other slots. column_of(s) is slot s's column; mark_of(s, j) where
/// its run j begins there, and mark_of(s, j + 1) where it ends.
template <class T, class ColumnOf, class MarkOf>
void gather_runs(std::vector<T>& out, const taken_runs& taken, ColumnOf&& column_of, MarkOf&& mark_of) {
  for (const auto& [s, j] : taken.in_order) {
    if (s == 0) continue;
    const std::vector<T>& from = column_of(s);
    out.insert(out.end(), from.begin() + static_cast<std::ptrdiff_t>(mark_of(s, j)),
               from.begin() + static_cast<std::ptrdiff_t>(mark_of(s, j + 1)));
  }
  for (std::size_t s = 1; s < taken.by_slot.size(); ++s) std::vector<T>().swap(column_of(s));
}

}  // namespace gpucredit::detail
