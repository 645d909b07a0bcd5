// Device logic of the CUDA query engine, as Thrust algorithms and __host__ __device__
// functors only, so that the same source runs on a GPU (nvcc, THRUST_DEVICE_SYSTEM_CUDA)
// and on the CPU (a host compiler with THRUST_DEVICE_SYSTEM_OMP) for the device-logic
// tests. Builds the same step index as cpu/engine.cpp and answers queries against it.
#pragma once

#include <thrust/binary_search.h>
#include <thrust/copy.h>
#include <thrust/device_vector.h>
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

// Interval row i becomes two deltas: +amount at begin (slot 2i) and -amount at end + 1
// (slot 2i + 1). At the largest timestamp there is no end + 1: the slot gets a zero
// change at `end`, which the build drops with every other zero change.
struct emit_deltas {
  const u32* account;
  const i64* begin;
  const i64* end;
  const i64* amount;
  u32* key_account;
  u64* key_time;
  u64* change;
  GPUCREDIT_HD void operator()(u64 i) const {
    const u64 open = 2 * i;
    const u64 close = open + 1;
    const u64 value = static_cast<u64>(amount[i]);
    key_account[open] = account[i];
    key_account[close] = account[i];
    key_time[open] = ordered(begin[i]);
    change[open] = value;
    if (end[i] == time_max) {
      key_time[close] = ordered(end[i]);
      change[close] = 0;
    } else {
      key_time[close] = ordered(end[i] + 1);
      change[close] = u64{0} - value;  // two's complement: sums wrap, results fit int64
    }
  }
};

struct is_zero_change {
  template <class Tuple>
  GPUCREDIT_HD bool operator()(const Tuple& t) const {
    return thrust::get<2>(t) == 0;
  }
};

struct to_time {
  GPUCREDIT_HD i64 operator()(u64 k) const { return unordered(k); }
};

struct to_balance {
  GPUCREDIT_HD i64 operator()(u64 sum) const { return static_cast<i64>(sum); }
};

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
  u64 account_count;
};

/// Balance of one query by binary search in its account's breakpoints (0 = none).
struct search_balance {
  index_view index;
  GPUCREDIT_HD i64 operator()(const thrust::tuple<u32, i64>& query) const {
    const u32 a = thrust::get<0>(query);
    const i64 t = thrust::get<1>(query);
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
    return lo == first ? 0 : index.balances[lo - 1];
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
  i64* out;
  GPUCREDIT_HD void operator()(u64 i) const {
    const i64 tag = tags[i];
    if (tag >= 0) return;
    const auto q = static_cast<u64>(-(tag + 1));
    const i64 b = last_breakpoint[i];
    const bool same_account = b >= 0 && index.accounts[static_cast<u64>(b)] == query_accounts[q];
    out[q] = same_account ? index.balances[static_cast<u64>(b)] : 0;
  }
};

/// The step index in device memory, the same arrays as gpucredit::step_index plus the
/// account of every breakpoint (for the merge path).
struct device_index {
  thrust::device_vector<u64> offsets;
  thrust::device_vector<u32> accounts;
  thrust::device_vector<i64> times;
  thrust::device_vector<i64> balances;
  u64 account_count = 0;

  index_view view() const {
    return {thrust::raw_pointer_cast(offsets.data()), thrust::raw_pointer_cast(accounts.data()),
            thrust::raw_pointer_cast(times.data()), thrust::raw_pointer_cast(balances.data()), account_count};
  }
};

/// Builds the index from interval columns already in device memory: deltas, a stable
/// LSD radix sort by (account, time), equal keys reduced, zero changes dropped, and a
/// prefix sum per account. Blocks.
inline device_index build_index(const thrust::device_vector<u32>& account, const thrust::device_vector<i64>& begin,
                                const thrust::device_vector<i64>& end, const thrust::device_vector<i64>& amount,
                                u64 account_count) {
  const u64 n = account.size();
  const u64 m = 2 * n;
  thrust::device_vector<u32> key_account(m);
  thrust::device_vector<u64> key_time(m);
  thrust::device_vector<u64> change(m);
  thrust::for_each(thrust::device, thrust::counting_iterator<u64>(0), thrust::counting_iterator<u64>(n),
                   emit_deltas{thrust::raw_pointer_cast(account.data()), thrust::raw_pointer_cast(begin.data()),
                               thrust::raw_pointer_cast(end.data()), thrust::raw_pointer_cast(amount.data()),
                               thrust::raw_pointer_cast(key_account.data()), thrust::raw_pointer_cast(key_time.data()),
                               thrust::raw_pointer_cast(change.data())});

  // Least significant key first: a stable sort by time, then a stable sort by account.
  thrust::device_vector<u64> order(m);
  thrust::sequence(thrust::device, order.begin(), order.end());
  {
    thrust::device_vector<u64> time_sorted = key_time;
    thrust::stable_sort_by_key(thrust::device, time_sorted.begin(), time_sorted.end(), order.begin());
  }
  thrust::device_vector<u32> account_sorted(m);
  thrust::gather(thrust::device, order.begin(), order.end(), key_account.begin(), account_sorted.begin());
  thrust::stable_sort_by_key(thrust::device, account_sorted.begin(), account_sorted.end(), order.begin());
  thrust::device_vector<u64> time_final(m);
  thrust::device_vector<u64> change_final(m);
  thrust::gather(thrust::device, order.begin(), order.end(), key_time.begin(), time_final.begin());
  thrust::gather(thrust::device, order.begin(), order.end(), change.begin(), change_final.begin());

  // Equal (account, time) merged; then the breakpoints without a change dropped.
  thrust::device_vector<u32> bp_account(m);
  thrust::device_vector<u64> bp_time(m);
  thrust::device_vector<u64> bp_change(m);
  auto keys_in = thrust::make_zip_iterator(thrust::make_tuple(account_sorted.begin(), time_final.begin()));
  auto keys_out = thrust::make_zip_iterator(thrust::make_tuple(bp_account.begin(), bp_time.begin()));
  const auto reduced = thrust::reduce_by_key(thrust::device, keys_in, keys_in + static_cast<std::ptrdiff_t>(m),
                                             change_final.begin(), keys_out, bp_change.begin(),
                                             thrust::equal_to<thrust::tuple<u32, u64>>(), thrust::plus<u64>());
  const auto unique_count = static_cast<u64>(reduced.second - bp_change.begin());
  auto rows = thrust::make_zip_iterator(thrust::make_tuple(bp_account.begin(), bp_time.begin(), bp_change.begin()));
  const auto kept_end =
      thrust::remove_if(thrust::device, rows, rows + static_cast<std::ptrdiff_t>(unique_count), is_zero_change());
  const auto k = static_cast<u64>(kept_end - rows);

  device_index index;
  index.account_count = account_count;
  index.accounts.assign(bp_account.begin(), bp_account.begin() + static_cast<std::ptrdiff_t>(k));
  index.times.resize(k);
  thrust::transform(thrust::device, bp_time.begin(), bp_time.begin() + static_cast<std::ptrdiff_t>(k),
                    index.times.begin(), to_time());
  thrust::device_vector<u64> running(k);
  thrust::inclusive_scan_by_key(thrust::device, index.accounts.begin(), index.accounts.end(), bp_change.begin(),
                                running.begin());
  index.balances.resize(k);
  thrust::transform(thrust::device, running.begin(), running.end(), index.balances.begin(), to_balance());
  index.offsets.resize(account_count + 1);
  thrust::lower_bound(thrust::device, index.accounts.begin(), index.accounts.end(),
                      thrust::counting_iterator<u32>(0),
                      thrust::counting_iterator<u32>(static_cast<u32>(account_count)),
                      index.offsets.begin());
  index.offsets[account_count] = k;
  return index;
}

/// Answers `count` queries by binary search; `out[i]` answers query i. `Policy` is the
/// Thrust execution policy (a stream on CUDA).
template <class Policy>
void answer_by_search(const Policy& policy, const index_view& index, const u32* accounts, const i64* times,
                      u64 count, i64* out) {
  auto queries = thrust::make_zip_iterator(thrust::make_tuple(accounts, times));
  thrust::transform(policy, queries, queries + static_cast<std::ptrdiff_t>(count), out, search_balance{index});
}

/// Whether the queries are sorted by (account, time).
template <class Policy>
bool queries_sorted(const Policy& policy, const u32* accounts, const i64* times, u64 count) {
  auto queries = thrust::make_zip_iterator(thrust::make_tuple(accounts, times));
  return thrust::is_sorted(policy, queries, queries + static_cast<std::ptrdiff_t>(count), key_less());
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
                   scatter_answer{index, tags, last, accounts, out});
}

}  // namespace gpucredit::device
