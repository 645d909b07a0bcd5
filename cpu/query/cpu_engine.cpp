// The CPU query engine: batches of queries answered against the step index on every
// core.
#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "cpu/parallel.hpp"
#include "cpu/query/engine_impl.hpp"
#include "cpu/query/step_index.hpp"

namespace gpucredit::detail {

namespace {

// Queries are answered in blocks. A block sorted by (account, time) is one forward pass
// per account over its breakpoints, galloping over long gaps; any other block runs its
// binary searches interleaved, a group at a time, prefetching the next probe of each,
// so that the cache misses of the group overlap instead of queueing.
constexpr std::size_t block_queries = 4096;
constexpr std::size_t search_group = 128;
constexpr std::size_t queries_per_thread_min = std::size_t{1} << 16;
static_assert(block_queries % search_group == 0, "blocks hold whole groups");

// Accounts of at least `tree_min` breakpoints get a static search tree for queries in
// random order (a B+-tree without pointers, its nodes one cache line of 8 keys): level 1
// holds the first time of every cache line of the account's times, each level above it
// every 8th key of the one below, up to a top of at most 8 keys. A search reads one node
// a level, top down, and ends in one line of times, whose balance line it fetches at
// the same time. The upper levels stay in cache; a plain binary search over the same
// times touches a new cache line at every step until the span fits in one. Which
// accounts get a tree is decided by the data (their size), never by a flag.
constexpr std::size_t node_keys = 8;
constexpr std::size_t tree_min = 4096;

class cpu_engine final : public engine::impl {
 public:
  explicit cpu_engine(step_index index) : index_(std::move(index)) { build_trees(); }
  cpu_engine(const cpu_engine&) = delete;  // the trees follow the addresses of the index
  cpu_engine& operator=(const cpu_engine&) = delete;
  backend kind() const noexcept override { return backend::cpu; }

  void balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                std::span<amount_t> out) const override {
    const std::size_t n = accounts.size();
    // Large batches are split between the cores, each part answered independently.
    const std::size_t parts = detail::part_count(n, queries_per_thread_min);
    detail::run_parts(parts, [&](std::size_t k) {
      const std::size_t first = n * k / parts;
      const std::size_t last = n * (k + 1) / parts;
      split_block split;
      for (std::size_t b = first; b < last; b += block_queries) {
        const std::size_t end = std::min(last, b + block_queries);
        answer_block(accounts.subspan(b, end - b), times.subspan(b, end - b), out.data() + b, split);
      }
    });
  }
  step_index index() const override { return index_; }
  const step_index* cpu_index() const noexcept override { return &index_; }
  std::string describe() const override {
    return "cpu (" + std::to_string(std::max(1U, std::thread::hardware_concurrency())) + " cores)";
  }

  // Each account walks the grid forward beside its breakpoints (the sorted pass, with the
  // times generated instead of read); the cores take runs of accounts, each summing its
  // own fleet column, and the columns are added at the end (integers: the same bytes
  // whatever the split).
  void grid(std::span<const account_index> accounts, const time_grid& grid, std::span<total_t> fleet,
            std::span<amount_t> balances) const override {
    const std::size_t times = grid.count;
    const std::size_t parts = detail::part_count(accounts.size() * times, queries_per_thread_min);
    std::vector<std::vector<total_t>> columns(parts);
    detail::run_parts(parts, [&](std::size_t k) {
      std::vector<total_t>& column = columns[k];
      column.assign(times, 0);
      std::vector<amount_t> row(times);
      const std::size_t first = accounts.size() * k / parts;
      const std::size_t last = accounts.size() * (k + 1) / parts;
      for (std::size_t i = first; i < last; ++i) {
        amount_t* out = balances.empty() ? row.data() : balances.data() + i * times;
        if (index_.has_slopes()) {
          grid_row<true>(accounts[i], grid, out);
        } else {
          grid_row<false>(accounts[i], grid, out);
        }
        for (std::size_t t = 0; t < times; ++t) column[t] += out[t];
      }
    });
    std::fill(fleet.begin(), fleet.end(), total_t{0});
    for (const std::vector<total_t>& column : columns) {
      for (std::size_t t = 0; t < times; ++t) fleet[t] += column[t];
    }
  }

 private:
  // A random-order block whose queries name both accounts with a search tree and
  // accounts without is answered as two: each kind gathered, answered in groups of its
  // own, and put back in place. Mixed in one group, the tree searches and the plain
  // binary searches over small accounts compete for the cache (`BM_QueriesMixed`: 0.87x
  // the time split; the skewed fleet's query phase 0.31-0.33 s mixed, 0.28-0.29 s split).
  // Room for one block, kept for a part's blocks, made when first needed and not
  // zero-filled (a batch of a few queries pays nothing).
  struct split_block {
    std::unique_ptr<std::uint16_t[]> at;  // the block's queries, those with a tree first
    std::unique_ptr<account_index[]> accounts;
    std::unique_ptr<timestamp_t[]> times;
    std::unique_ptr<amount_t[]> answers;
    void make_room() {
      if (at) return;
      at = std::make_unique_for_overwrite<std::uint16_t[]>(block_queries);
      accounts = std::make_unique_for_overwrite<account_index[]>(block_queries);
      times = std::make_unique_for_overwrite<timestamp_t[]>(block_queries);
      answers = std::make_unique_for_overwrite<amount_t[]>(block_queries);
    }
  };
  static_assert(block_queries <= std::size_t{1} << 16, "a block's positions fit 16 bits");

  void answer_block(std::span<const account_index> accounts, std::span<const timestamp_t> times, amount_t* out,
                    split_block& split) const {
    bool sorted = true;
    for (std::size_t i = 1; i < accounts.size() && sorted; ++i) {
      sorted = accounts[i - 1] < accounts[i] || (accounts[i - 1] == accounts[i] && times[i - 1] <= times[i]);
    }
    // Ledgers without jobs read no slope: the choice is made once a block, not a query.
    if (index_.has_slopes()) {
      sorted ? answer_sorted<true>(accounts, times, out) : answer_mixed<true>(accounts, times, out, split);
    } else {
      sorted ? answer_sorted<false>(accounts, times, out) : answer_mixed<false>(accounts, times, out, split);
    }
  }

  bool has_tree(account_index a) const noexcept {
    return a < index_.account_count() && tree_begin_[a] != tree_begin_[a + 1];
  }

  template <bool Sloped>
  void answer_mixed(std::span<const account_index> accounts, std::span<const timestamp_t> times, amount_t* out,
                    split_block& split) const {
    const std::size_t n = accounts.size();
    std::size_t treed = 0;
    if (!tree_begin_.empty()) {
      split.make_room();
      std::size_t plain = n;
      for (std::size_t i = 0; i < n; ++i) split.at[has_tree(accounts[i]) ? treed++ : --plain] = static_cast<std::uint16_t>(i);
    }
    if (treed == 0 || treed == n) {
      answer_unsorted<Sloped>(accounts, times, out);
      return;
    }
    for (std::size_t k = 0; k < n; ++k) {
      split.accounts[k] = accounts[split.at[k]];
      split.times[k] = times[split.at[k]];
    }
    const std::span<const account_index> a(split.accounts.get(), n);
    const std::span<const timestamp_t> t(split.times.get(), n);
    answer_unsorted<Sloped>(a.first(treed), t.first(treed), split.answers.get());
    answer_unsorted<Sloped>(a.subspan(treed), t.subspan(treed), split.answers.get() + treed);
    for (std::size_t k = 0; k < n; ++k) out[split.at[k]] = split.answers[k];
  }

  // The balance breakpoint i gives at t: one multiply where jobs draw.
  template <bool Sloped>
  amount_t value(std::size_t i, timestamp_t t) const noexcept {
    if constexpr (Sloped) {
      return index_.value_at(i, t);
    } else {
      return index_.balances[i];
    }
  }

  // One forward pass per account; `pos` is the first breakpoint later than the last query.
  template <bool Sloped>
  void answer_sorted(std::span<const account_index> accounts, std::span<const timestamp_t> times, amount_t* out) const {
    const std::size_t count = index_.account_count();
    const timestamp_t* bp = index_.times.data();
    std::size_t i = 0;
    while (i < accounts.size()) {
      const account_index a = accounts[i];
      if (a >= count) {  // unknown accounts (account_none sorts last)
        for (; i < accounts.size() && accounts[i] == a; ++i) out[i] = 0;
        continue;
      }
      const std::size_t lo = index_.account_offsets[a];
      const std::size_t hi = index_.account_offsets[a + 1];
      std::size_t pos = lo;
      for (; i < accounts.size() && accounts[i] == a; ++i) {
        const timestamp_t t = times[i];
        if (pos < hi && bp[pos] <= t) {
          // Gallop: double the step while still at or before t, then search that span.
          std::size_t step = 1;
          while (pos + step < hi && bp[pos + step] <= t) step *= 2;
          pos = static_cast<std::size_t>(std::upper_bound(bp + pos + step / 2, bp + std::min(hi, pos + step), t) - bp);
        }
        out[i] = pos == lo ? 0 : value<Sloped>(pos - 1, t);
      }
    }
  }

  // The levels above the times of every account with tree_min breakpoints or more, each
  // level starting on a cache line (keys_ is over-allocated by a line and read from the
  // first 64-byte boundary), padded to whole nodes.
  void build_trees() {
    const std::size_t accounts = index_.account_count();
    tree_begin_.assign(accounts + 1, 0);
    std::size_t keys = 0;
    for (std::size_t a = 0; a < accounts; ++a) {
      std::size_t size = index_.account_offsets[a + 1] - index_.account_offsets[a];
      std::size_t levels = 0;
      if (size >= tree_min) {
        size += lead(index_.account_offsets[a]);
        for (; size > node_keys; ++levels) {
          size = nodes(size);
          keys += nodes(size) * node_keys;
        }
      }
      tree_begin_[a + 1] = tree_begin_[a] + levels;
    }
    if (tree_begin_.back() == 0) {
      tree_begin_.clear();  // no account is large: no trees
      return;
    }
    levels_.resize(tree_begin_.back());
    keys_.assign(keys + node_keys, timestamp_max);
    const auto misalign = reinterpret_cast<std::uintptr_t>(keys_.data()) % 64;
    keys_shift_ = misalign == 0 ? 0 : (64 - misalign) / sizeof(timestamp_t);
    timestamp_t* base = keys_.data() + keys_shift_;
    std::size_t next = 0;
    for (std::size_t a = 0; a < accounts; ++a) {
      // Each level holds the first key of each node of the level below. Below level 1
      // the nodes are the cache lines of the account's times, whose first may start with
      // the account before it (`skip` times): that node's key is the account's own first.
      const std::size_t first = index_.account_offsets[a];
      const timestamp_t* below = index_.times.data() + first;
      std::size_t below_size = index_.account_offsets[a + 1] - first;
      std::size_t skip = tree_begin_[a] == tree_begin_[a + 1] ? 0 : lead(first);
      for (std::uint64_t l = tree_begin_[a]; l < tree_begin_[a + 1]; ++l) {
        const std::size_t size = nodes(skip + below_size);
        levels_[l] = {next, size, skip};
        for (std::size_t j = 0; j < size; ++j) base[next + j] = below[j == 0 ? 0 : j * node_keys - skip];
        below = base + next;
        below_size = size;
        skip = 0;
        next += nodes(size) * node_keys;
      }
    }
  }

  static constexpr std::size_t nodes(std::size_t keys) noexcept { return (keys + node_keys - 1) / node_keys; }

  // The balances of account a at every grid time, into out[0, grid.count).
  template <bool Sloped>
  void grid_row(account_index a, const time_grid& grid, amount_t* out) const {
    if (a >= index_.account_count()) {
      std::fill(out, out + grid.count, amount_t{0});
      return;
    }
    const timestamp_t* bp = index_.times.data();
    const std::size_t lo = index_.account_offsets[a];
    const std::size_t hi = index_.account_offsets[a + 1];
    std::size_t pos = lo;
    for (std::size_t k = 0; k < grid.count; ++k) {
      const timestamp_t t = grid.at(k);
      if (pos < hi && bp[pos] <= t) {
        std::size_t step = 1;
        while (pos + step < hi && bp[pos + step] <= t) step *= 2;
        pos = static_cast<std::size_t>(std::upper_bound(bp + pos + step / 2, bp + std::min(hi, pos + step), t) - bp);
      }
      out[k] = pos == lo ? 0 : value<Sloped>(pos - 1, t);
    }
  }

  // Branch-free upper bounds of `size` searches in lock step: search k narrows
  // [base[k], base[k] + length[k]) of `keys` to the last key <= t[k] (or the first, when
  // none is), prefetching each next probe so that the cache misses of the group overlap.
  // (Local arrays and __restrict: nothing the loop writes can alias what it reads.)
  [[gnu::always_inline]] static inline void search_in_step(const timestamp_t* __restrict keys,
                                                           const timestamp_t* __restrict t, std::size_t size,
                                                           std::size_t* __restrict base,
                                                           std::size_t* __restrict length) {
    for (bool busy = true; busy;) {
      busy = false;
      for (std::size_t k = 0; k < size; ++k) {
        if (length[k] <= 1) continue;
        const std::size_t half = length[k] / 2;
        base[k] = keys[base[k] + half] <= t[k] ? base[k] + half : base[k];
        length[k] -= half;
        __builtin_prefetch(keys + base[k] + length[k] / 2);
        busy = busy || length[k] > 1;
      }
    }
  }

  template <bool Sloped>
  void answer_unsorted(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                       amount_t* out) const {
    const std::size_t count = index_.account_count();
    const timestamp_t* bp = index_.times.data();
    const amount_t* values = index_.balances.data();
    const timestamp_t* keys = keys_.data() + keys_shift_;
    for (std::size_t g = 0; g < accounts.size(); g += search_group) {
      const std::size_t size = std::min(search_group, accounts.size() - g);
      const timestamp_t* t = times.data() + g;
      std::size_t base[search_group];
      std::size_t length[search_group];
      std::size_t first[search_group];
      std::uint64_t level[search_group];  // the next tree level to read, into levels_
      std::uint64_t top[search_group];    // the account's first level (0 below)
      std::size_t node[search_group];     // the node to read in that level
      bool treed = false;
      for (std::size_t k = 0; k < size; ++k) {
        const account_index a = accounts[g + k];
        const bool known = a < count;
        first[k] = known ? index_.account_offsets[a] : 0;
        length[k] = known ? index_.account_offsets[a + 1] - first[k] : 0;
        base[k] = first[k];
        if (length[k] >= tree_min) {  // the search starts at the tree's top node
          top[k] = tree_begin_[a];
          level[k] = tree_begin_[a + 1];
          node[k] = 0;
          treed = true;
          __builtin_prefetch(keys + levels_[level[k] - 1].begin);
        } else {
          level[k] = top[k] = 0;
          __builtin_prefetch(bp + base[k] + length[k] / 2);
        }
      }
      if (treed) {
        // The trees, a level a round for the whole group; a search leaves its tree for the
        // times with the node of at most 8 breakpoints it leads to.
        for (bool busy = true; busy;) {
          busy = false;
          for (std::size_t k = 0; k < size; ++k) {
            if (level[k] == top[k]) continue;
            const tree_level& at = levels_[level[k] - 1];
            const timestamp_t* n = keys + at.begin + node[k] * node_keys;
            const std::size_t valid = std::min(node_keys, at.size - node[k] * node_keys);
            node[k] = node[k] * node_keys + last_at_most(n, valid - 1, t[k]);
            --level[k];
            if (level[k] != top[k]) {
              __builtin_prefetch(keys + levels_[level[k] - 1].begin + node[k] * node_keys);
              busy = true;
            } else {
              // The node is one cache line of the times (the account's first and last
              // may be shared with its neighbours), searched with the others below.
              const std::size_t skip = levels_[top[k]].skip;
              const std::size_t begin = node[k] == 0 ? 0 : node[k] * node_keys - skip;
              base[k] = first[k] + begin;
              length[k] = std::min(node[k] * node_keys + node_keys - skip, length[k]) - begin;
              __builtin_prefetch(bp + base[k]);
              __builtin_prefetch(values + base[k]);
              __builtin_prefetch(values + base[k] + length[k] - 1);
              if constexpr (Sloped) __builtin_prefetch(index_.slopes.data() + base[k]);
            }
          }
        }
      }
      search_in_step(bp, t, size, base, length);
      // The balances the group will read (beside the times, in an array of their own),
      // fetched together rather than one miss after another.
      for (std::size_t k = 0; k < size; ++k) {
        __builtin_prefetch(values + base[k]);
        if constexpr (Sloped) __builtin_prefetch(index_.slopes.data() + base[k]);
      }
      for (std::size_t k = 0; k < size; ++k) {
        if (length[k] == 0) {
          out[g + k] = 0;
          continue;
        }
        const std::size_t after = base[k] + (bp[base[k]] <= t[k] ? 1 : 0);  // first breakpoint > t
        out[g + k] = after == first[k] ? 0 : value<Sloped>(after - 1, t[k]);
      }
    }
  }

  // In a node of keys [0, last] (at most 8), the last one <= t, or 0 when none is:
  // three branch-free steps, reading no key past `last`. (A time before an account's
  // first breakpoint thus leads to its first, which the final search finds later than t.)
  [[gnu::always_inline]] static inline std::size_t last_at_most(const timestamp_t* keys, std::size_t last,
                                                                timestamp_t t) noexcept {
    std::size_t p = keys[std::min<std::size_t>(4, last)] <= t ? 4U : 0U;
    p += keys[std::min(p + 2, last)] <= t ? 2U : 0U;
    p += keys[std::min(p + 1, last)] <= t ? 1U : 0U;
    return std::min(p, last);
  }

  // How many times of other accounts precede breakpoint i in its cache line.
  std::size_t lead(std::size_t i) const noexcept {
    return (reinterpret_cast<std::uintptr_t>(index_.times.data() + i) % 64) / sizeof(timestamp_t);
  }

  struct tree_level {
    std::size_t begin;  // into the aligned keys
    std::size_t size;   // keys (the last node padded)
    std::size_t skip;   // level 1: lead() of the account's first breakpoint (above: 0)
  };

  step_index index_;
  std::vector<std::uint64_t> tree_begin_;  // per account, its levels in levels_, lowest first (empty: none)
  std::vector<tree_level> levels_;
  std::vector<timestamp_t> keys_;  // every level, read from keys_shift_ on
  std::size_t keys_shift_ = 0;
};

}  // namespace

std::unique_ptr<engine::impl> make_cpu_engine(const interval_table& intervals, std::size_t account_count) {
  return std::make_unique<cpu_engine>(step_index::build(intervals, account_count));
}

std::unique_ptr<engine::impl> make_cpu_engine(step_index index) {
  return std::make_unique<cpu_engine>(std::move(index));
}

}  // namespace gpucredit::detail
