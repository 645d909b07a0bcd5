// Device logic of the CUDA query engine, as Thrust algorithms and __host__ __device__
// functors only, so that the same source runs on a GPU (nvcc, THRUST_DEVICE_SYSTEM_CUDA)
// and on the CPU (a host compiler with THRUST_DEVICE_SYSTEM_OMP) for the device-logic
// tests. Answers queries, and report grids, against the step index
// (cpu/query/step_index.hpp) uploaded. Every function takes raw pointers and a Thrust
// execution policy; what lives where is engine.cu's business.
#pragma once

#include <thrust/binary_search.h>
#include <thrust/copy.h>
#include <thrust/execution_policy.h>
#include <thrust/for_each.h>
#include <thrust/functional.h>
#include <thrust/gather.h>
#include <thrust/iterator/counting_iterator.h>
#include <thrust/iterator/discard_iterator.h>
#include <thrust/iterator/transform_iterator.h>
#include <thrust/iterator/zip_iterator.h>
#include <thrust/merge.h>
#include <thrust/reduce.h>
#include <thrust/remove.h>
#include <thrust/scan.h>
#include <thrust/sequence.h>
#include <thrust/sort.h>
#include <thrust/transform.h>
#include <thrust/tuple.h>

#include <cstdint>
#include <limits>

#if defined(__CUDACC__)
#define GPUCREDIT_HD __host__ __device__
#else
#define GPUCREDIT_HD
#endif

namespace gpucredit::device {

using u32 = std::uint32_t;
using u64 = std::uint64_t;
using i64 = std::int64_t;

inline constexpr i64 time_max = std::numeric_limits<i64>::max();
inline constexpr u64 sign_bit = u64{1} << 63;

// int64 -> uint64 preserving order (for radix sorts of signed keys).
GPUCREDIT_HD inline u64 ordered(i64 t) { return static_cast<u64>(t) ^ sign_bit; }
GPUCREDIT_HD inline i64 unordered(u64 k) { return static_cast<i64>(k ^ sign_bit); }

// (account, time) order for queries and breakpoints.
struct key_less {
  template <class A, class B>
  GPUCREDIT_HD bool operator()(const A& a, const B& b) const {
    if (thrust::get<0>(a) != thrust::get<0>(b)) return thrust::get<0>(a) < thrust::get<0>(b);
    return thrust::get<1>(a) < thrust::get<1>(b);
  }
};

/// Raw pointers to a step index, for functors.
struct index_view {
  const u64* offsets;    // account_count + 1
  const u32* accounts;   // per breakpoint
  const i64* times;
  const i64* balances;
  const i64* slopes;     // per breakpoint; null when every slope is 0 (no jobs)
  u64 account_count;

  /// The balance breakpoint i gives at t: one multiply where jobs draw (SPEC section 10;
  /// exact in int64, see cpu/query/step_index.hpp).
  GPUCREDIT_HD i64 value_at(u64 i, i64 t) const {
    if (slopes == nullptr || slopes[i] == 0) return balances[i];  // a level stretch may outlast int64
    return balances[i] - slopes[i] * (t - times[i]);
  }
};

/// The balance of account `a` at `t` by binary search in its breakpoints (0 = none; an
/// account at or past the index's count answers 0).
GPUCREDIT_HD inline i64 balance_of(const index_view& index, u32 a, i64 t) {
  if (a >= index.account_count) return 0;
  const u64 first = index.offsets[a];
  u64 lo = first;
  u64 hi = index.offsets[a + 1];
  while (lo < hi) {  // first breakpoint later than t
    const u64 mid = lo + (hi - lo) / 2;
    if (index.times[mid] <= t) {
      lo = mid + 1;
    } else {
      hi = mid;
    }
  }
  return lo == first ? 0 : index.value_at(lo - 1, t);
}

/// Balance of one query by binary search in its account's breakpoints (0 = none).
struct search_balance {
  index_view index;
  GPUCREDIT_HD i64 operator()(const thrust::tuple<u32, i64>& query) const {
    return balance_of(index, thrust::get<0>(query), thrust::get<1>(query));
  }
};

// Merge path for sorted batches: breakpoints and queries merged by (account, time),
// breakpoints first on ties. Breakpoint i is tagged i >= 0, query q is tagged -(q + 1).
struct query_tag {
  GPUCREDIT_HD i64 operator()(u64 q) const { return -static_cast<i64>(q) - 1; }
};
struct breakpoint_or_none {
  GPUCREDIT_HD i64 operator()(i64 tag) const { return tag >= 0 ? tag : -1; }
};
// Carries the last breakpoint seen (associative: the right operand wins unless none).
struct carry_last {
  GPUCREDIT_HD i64 operator()(i64 left, i64 right) const { return right >= 0 ? right : left; }
};
struct scatter_answer {
  index_view index;
  const i64* tags;
  const i64* last_breakpoint;
  const u32* query_accounts;
  const i64* query_times;
  i64* out;
  GPUCREDIT_HD void operator()(u64 i) const {
    const i64 tag = tags[i];
    if (tag >= 0) return;
    const auto q = static_cast<u64>(-(tag + 1));
    const i64 b = last_breakpoint[i];
    const bool same_account = b >= 0 && index.accounts[static_cast<u64>(b)] == query_accounts[q];
    out[q] = same_account ? index.value_at(static_cast<u64>(b), query_times[q]) : 0;
  }
};

/// Answers `count` queries by binary search; `out[i]` answers query i. `Policy` is the
/// Thrust execution policy (a stream on CUDA).
template <class Policy>
void answer_by_search(const Policy& policy, const index_view& index, const u32* accounts, const i64* times,
                      u64 count, i64* out) {
  auto queries = thrust::make_zip_iterator(thrust::make_tuple(accounts, times));
  thrust::transform(policy, queries, queries + static_cast<std::ptrdiff_t>(count), out, search_balance{index});
}

/// Answers a batch sorted by (account, time) in one merge of breakpoints and queries,
/// a scan that carries the last breakpoint, and a scatter to query order. `tags` and
/// `last` are scratch of at least breakpoints + count elements.
template <class Policy>
void answer_by_merge(const Policy& policy, const index_view& index, u64 breakpoint_count, const u32* accounts,
                     const i64* times, u64 count, i64* tags, i64* last, i64* out) {
  auto bp_keys = thrust::make_zip_iterator(thrust::make_tuple(index.accounts, index.times));
  auto q_keys = thrust::make_zip_iterator(thrust::make_tuple(accounts, times));
  auto q_tags = thrust::make_transform_iterator(thrust::counting_iterator<u64>(0), query_tag());
  thrust::merge_by_key(policy, bp_keys, bp_keys + static_cast<std::ptrdiff_t>(breakpoint_count), q_keys,
                       q_keys + static_cast<std::ptrdiff_t>(count), thrust::counting_iterator<i64>(0), q_tags,
                       thrust::make_discard_iterator(), tags, key_less());
  const u64 merged = breakpoint_count + count;
  auto candidates = thrust::make_transform_iterator(tags, breakpoint_or_none());
  thrust::inclusive_scan(policy, candidates, candidates + static_cast<std::ptrdiff_t>(merged), last, carry_last());
  thrust::for_each(policy, thrust::counting_iterator<u64>(0), thrust::counting_iterator<u64>(merged),
                   scatter_answer{index, tags, last, accounts, times, out});
}

// ---- report grids (SPEC section 11) --------------------------------------------------

/// An arithmetic grid of times: from + k * every for k < count, in unsigned arithmetic
/// (no overflow at the ends of int64; see gpucredit::time_grid).
struct grid_view {
  i64 from;
  i64 every;
  u64 count;
  GPUCREDIT_HD i64 at(u64 k) const { return static_cast<i64>(static_cast<u64>(from) + k * static_cast<u64>(every)); }
};

/// A 128-bit two's-complement sum in two words, for fleet totals that may pass int64
/// (SPEC section 11); the host reads it back as total_t.
struct wide {
  u64 lo;
  u64 hi;
};
GPUCREDIT_HD inline wide add(wide a, wide b) {
  const u64 lo = a.lo + b.lo;
  return {lo, a.hi + b.hi + (lo < a.lo ? 1U : 0U)};
}
GPUCREDIT_HD inline wide widen(i64 v) { return {static_cast<u64>(v), v < 0 ? ~u64{0} : u64{0}}; }

/// Balance i of a grid chunk, account-major: account accounts[i / grid.count] at
/// grid.at(i % grid.count). Consecutive threads share an account and step forward in
/// time, so a warp's searches read the same breakpoints.
struct grid_balance {
  index_view index;
  const u32* accounts;
  grid_view grid;
  GPUCREDIT_HD i64 operator()(u64 i) const { return balance_of(index, accounts[i / grid.count], grid.at(i % grid.count)); }
};

/// Accounts summed by one thread of the fleet reduction.
inline constexpr u64 grid_block_accounts = 256;

/// Partial fleet sum j: grid time j % count over the accounts of block j / count.
/// Consecutive threads take consecutive times of the same accounts: their reads of the
/// account-major balances are coalesced.
struct grid_partial {
  const i64* balances;  // accounts x grid.count, account-major
  u64 accounts;
  u64 times;
  GPUCREDIT_HD wide operator()(u64 j) const {
    const u64 k = j % times;
    const u64 first = (j / times) * grid_block_accounts;
    const u64 last = first + grid_block_accounts < accounts ? first + grid_block_accounts : accounts;
    wide sum{0, 0};
    for (u64 a = first; a < last; ++a) sum = add(sum, widen(balances[a * times + k]));
    return sum;
  }
};

/// Fleet total at grid time k: the partial sums of every block.
struct grid_total {
  const wide* partials;  // blocks x times
  u64 blocks;
  u64 times;
  GPUCREDIT_HD wide operator()(u64 k) const {
    wide sum{0, 0};
    for (u64 b = 0; b < blocks; ++b) sum = add(sum, partials[b * times + k]);
    return sum;
  }
};

/// The balances of `account_count` accounts at every time of `grid` into `balances`
/// (account-major), and their fleet totals per time into `totals` (grid.count values);
/// `partials` is scratch of blocks x grid.count, blocks = ceil(accounts / 256). All
/// asynchronous on a non-blocking policy.
template <class Policy>
void answer_grid(const Policy& policy, const index_view& index, const u32* accounts, u64 account_count,
                 const grid_view& grid, i64* balances, wide* partials, wide* totals) {
  const u64 cells = account_count * grid.count;
  thrust::transform(policy, thrust::counting_iterator<u64>(0), thrust::counting_iterator<u64>(cells), balances,
                    grid_balance{index, accounts, grid});
  const u64 blocks = (account_count + grid_block_accounts - 1) / grid_block_accounts;
  thrust::transform(policy, thrust::counting_iterator<u64>(0), thrust::counting_iterator<u64>(blocks * grid.count),
                    partials, grid_partial{balances, account_count, grid.count});
  thrust::transform(policy, thrust::counting_iterator<u64>(0), thrust::counting_iterator<u64>(grid.count), totals,
                    grid_total{partials, blocks, grid.count});
}

}  // namespace gpucredit::device
