// The CPU query engine: batches of queries answered against the step index on every
// core.
#include <algorithm>
#include <cassert>
#include <cstdlib>
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

// Accounts of at least `fence_min` breakpoints get a second, small level for searches in
// random order: every `fence_step`-th breakpoint time, contiguous (one cache line holds 8),
// so that a search first narrows to one block of fence_step breakpoints in the level
// that stays in cache and then touches only that block. Which accounts get one is
// decided by the data (their size), never by a flag.
constexpr std::size_t fence_step = 64;
constexpr std::size_t fence_min = 4096;

class cpu_engine final : public engine::impl {
 public:
  explicit cpu_engine(step_index index) : index_(std::move(index)) { build_fences(); }
  backend kind() const noexcept override { return backend::cpu; }

  void balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                std::span<amount_t> out) const override {
    const std::size_t n = accounts.size();
    // Large batches are split between the cores, each part answered independently.
    const std::size_t parts = detail::part_count(n, queries_per_thread_min);
    detail::run_parts(parts, [&](std::size_t k) {
      const std::size_t first = n * k / parts;
      const std::size_t last = n * (k + 1) / parts;
      for (std::size_t b = first; b < last; b += block_queries) {
        const std::size_t end = std::min(last, b + block_queries);
        answer_block(accounts.subspan(b, end - b), times.subspan(b, end - b), out.data() + b);
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
  void answer_block(std::span<const account_index> accounts, std::span<const timestamp_t> times, amount_t* out) const {
    bool sorted = true;
    for (std::size_t i = 1; i < accounts.size() && sorted; ++i) {
      sorted = accounts[i - 1] < accounts[i] || (accounts[i - 1] == accounts[i] && times[i - 1] <= times[i]);
    }
    // Ledgers without jobs read no slope: the choice is made once a block, not a query.
    if (index_.has_slopes()) {
      sorted ? answer_sorted<true>(accounts, times, out) : answer_unsorted<true>(accounts, times, out);
    } else {
      sorted ? answer_sorted<false>(accounts, times, out) : answer_unsorted<false>(accounts, times, out);
    }
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

  void build_fences() {
    const std::size_t accounts = index_.account_count();
    fence_begin_.assign(accounts + 1, 0);
    for (std::size_t a = 0; a < accounts; ++a) {
      const std::size_t length = index_.account_offsets[a + 1] - index_.account_offsets[a];
      fence_begin_[a + 1] = fence_begin_[a] + (length >= fence_min ? (length + fence_step - 1) / fence_step : 0);
    }
    if (fence_begin_.back() == 0) {
      fence_begin_.clear();  // no account is large: no second level
      return;
    }
    fences_.resize(fence_begin_.back());
    for (std::size_t a = 0; a < accounts; ++a) {
      const std::size_t first = index_.account_offsets[a];
      for (std::size_t j = fence_begin_[a]; j < fence_begin_[a + 1]; ++j) {
        fences_[j] = index_.times[first + (j - fence_begin_[a]) * fence_step];
      }
    }
  }

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
    for (std::size_t g = 0; g < accounts.size(); g += search_group) {
      const std::size_t size = std::min(search_group, accounts.size() - g);
      std::size_t base[search_group];
      std::size_t length[search_group];
      std::size_t first[search_group];
      std::size_t fence_base[search_group];
      std::size_t fence_length[search_group];
      bool fenced = false;
      for (std::size_t k = 0; k < size; ++k) {
        const account_index a = accounts[g + k];
        const bool known = a < count;
        first[k] = known ? index_.account_offsets[a] : 0;
        length[k] = known ? index_.account_offsets[a + 1] - first[k] : 0;
        base[k] = first[k];
        if (length[k] >= fence_min) {  // the account's fences are searched first
          fence_base[k] = fence_begin_[a];
          fence_length[k] = fence_begin_[a + 1] - fence_begin_[a];
          fenced = true;
          __builtin_prefetch(fences_.data() + fence_base[k] + fence_length[k] / 2);
        } else {
          fence_length[k] = 0;
          __builtin_prefetch(bp + base[k] + length[k] / 2);
        }
      }
      if (fenced) {
        // The fences of the group's large accounts, searched the same interleaved way;
        // then each search goes on in the one block its fence leads to.
        search_in_step(fences_.data(), times.data() + g, size, fence_base, fence_length);
        for (std::size_t k = 0; k < size; ++k) {
          if (fence_length[k] == 0) continue;
          const account_index a = accounts[g + k];
          // The block of the last fence <= t (or the first, when none is: its search
          // then finds no breakpoint <= t).
          const std::size_t block = fence_base[k] - fence_begin_[a];
          const std::size_t skipped = block * fence_step;
          base[k] = first[k] + skipped;
          length[k] = std::min(fence_step, length[k] - skipped);
          __builtin_prefetch(bp + base[k] + length[k] / 2);
        }
      }
      search_in_step(bp, times.data() + g, size, base, length);
      for (std::size_t k = 0; k < size; ++k) {
        if (length[k] == 0) {
          out[g + k] = 0;
          continue;
        }
        const std::size_t after = base[k] + (bp[base[k]] <= times[g + k] ? 1 : 0);  // first breakpoint > t
        out[g + k] = after == first[k] ? 0 : value<Sloped>(after - 1, times[g + k]);
      }
    }
  }

  step_index index_;
  std::vector<std::uint64_t> fence_begin_;  // per account, into fences_ (empty: none)
  std::vector<timestamp_t> fences_;
};

}  // namespace

std::unique_ptr<engine::impl> make_cpu_engine(const interval_table& intervals, std::size_t account_count) {
  return std::make_unique<cpu_engine>(step_index::build(intervals, account_count));
}

std::unique_ptr<engine::impl> make_cpu_engine(step_index index) {
  return std::make_unique<cpu_engine>(std::move(index));
}

}  // namespace gpucredit::detail
