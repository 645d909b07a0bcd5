// Fork-join over the machine's cores with std::thread: a batch is cut into a few large
// parts (never more than the cores), each run on its own thread, the caller's included.
// Parts are plain ranges of accounts or queries, so no work-stealing pool is needed.
#pragma once

#include <algorithm>
#include <csignal>
#include <cstddef>
#include <exception>
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

}  // namespace gpucredit::detail
