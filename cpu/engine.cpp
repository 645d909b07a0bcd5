// The CPU query engine and the backend seam. The step index is built per account from
// the interval table (deltas at begin and after end, sorted, merged, prefix-summed) and
// queries are binary searches over one account's breakpoint times.
#include "gpucredit/engine.hpp"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <string>

#include "gpucredit/detail/engine_impl.hpp"
#include "gpucredit/detail/parallel.hpp"
#include "gpucredit/error.hpp"

namespace gpucredit {

std::string_view to_string(backend b) noexcept { return b == backend::cpu ? "cpu" : "cuda"; }

std::vector<backend> compiled_backends() {
  if (detail::device_engine_built()) return {backend::cpu, backend::cuda};
  return {backend::cpu};
}

bool backend_available(backend b) { return b == backend::cpu || detail::device_engine_available(); }

namespace {

// Throws backend_error saying why the CUDA backend cannot be used, if it cannot.
void require_device_engine() {
  if (!detail::device_engine_built()) {
    throw backend_error("the CUDA backend is not compiled into this build of gpucredit");
  }
  if (!detail::device_engine_available()) throw backend_error("no CUDA device was found");
}

}  // namespace

backend select_backend(std::string_view request) {
  std::string_view chosen = request;
  if (chosen == "auto") {
    if (const char* env = std::getenv("GPUCREDIT_BACKEND"); env != nullptr && *env != '\0') {
      chosen = env;
    }
  }
  if (chosen == "auto") return backend_available(backend::cuda) ? backend::cuda : backend::cpu;
  if (chosen == "cpu") return backend::cpu;
  if (chosen == "cuda") {
    require_device_engine();
    return backend::cuda;
  }
  throw backend_error("unknown backend '" + std::string(chosen) + "' (expected auto, cpu or cuda)");
}

namespace {

// Interval rows per core below which the index is built on one core.
constexpr std::size_t intervals_per_part_min = std::size_t{1} << 16;

struct delta {
  timestamp_t time;
  std::uint64_t change;  // two's complement: sums wrap, and every final balance fits int64
};

// Sorts deltas by time. The ledger lists each credit's stretches one after another, so
// the deltas come as a few ascending runs (one per credit): those are merged pairwise
// in linear passes; many short runs are sorted instead.
void sort_deltas(std::vector<delta>& deltas, std::vector<delta>& scratch, std::vector<std::size_t>& runs) {
  constexpr std::size_t runs_merged_max = 16;
  auto earlier = [](const delta& a, const delta& b) { return a.time < b.time; };
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

  // Accounts are independent: parts of consecutive accounts build their breakpoints on
  // their own cores, then the parts are laid end to end.
  const std::size_t parts = account_count == 0 ? 1 : detail::part_count(n, intervals_per_part_min);
  const std::vector<std::size_t> cuts = detail::balanced_cuts(offsets, parts);
  std::vector<step_index> partial(parts);
  detail::run_parts(parts, [&](std::size_t k) {
    step_index& part = partial[k];
    const std::size_t rows = offsets[cuts[k + 1]] - offsets[cuts[k]];
    part.account_offsets.resize(cuts[k + 1] - cuts[k]);
    part.times.reserve(2 * rows);
    part.balances.reserve(2 * rows);
    std::vector<delta> deltas;
    std::vector<delta> scratch;
    std::vector<std::size_t> runs;
    for (std::size_t a = cuts[k]; a < cuts[k + 1]; ++a) {
      part.account_offsets[a - cuts[k]] = part.times.size();
      deltas.clear();
      for (std::size_t i = offsets[a]; i < offsets[a + 1]; ++i) {
        const std::size_t row = grouped ? i : order[i];
        const auto amount = static_cast<std::uint64_t>(intervals.amount[row]);
        deltas.push_back({intervals.begin[row], amount});
        // The credit stops counting at end + 1; at the largest timestamp it never stops.
        if (intervals.end[row] != timestamp_max) deltas.push_back({intervals.end[row] + 1, 0 - amount});
      }
      sort_deltas(deltas, scratch, runs);
      append_account(deltas, part);
    }
  });
  if (parts == 1) {
    step_index index = std::move(partial[0]);
    index.account_offsets.push_back(index.times.size());
    return index;
  }
  std::vector<std::size_t> at(parts + 1, 0);
  for (std::size_t k = 0; k < parts; ++k) at[k + 1] = at[k] + partial[k].times.size();
  step_index index;
  index.account_offsets.resize(account_count + 1);
  index.times.resize(at[parts]);
  index.balances.resize(at[parts]);
  detail::run_parts(parts, [&](std::size_t k) {
    const step_index& part = partial[k];
    std::copy(part.times.begin(), part.times.end(), index.times.begin() + static_cast<std::ptrdiff_t>(at[k]));
    std::copy(part.balances.begin(), part.balances.end(), index.balances.begin() + static_cast<std::ptrdiff_t>(at[k]));
    for (std::size_t a = cuts[k]; a < cuts[k + 1]; ++a) index.account_offsets[a] = at[k] + part.account_offsets[a - cuts[k]];
  });
  index.account_offsets[account_count] = at[parts];
  return index;
}

amount_t step_index::balance(account_index account, timestamp_t t) const noexcept {
  if (account >= account_count()) return 0;
  const auto first = times.begin() + static_cast<std::ptrdiff_t>(account_offsets[account]);
  const auto last = times.begin() + static_cast<std::ptrdiff_t>(account_offsets[account + 1]);
  const auto after = std::upper_bound(first, last, t);  // first breakpoint later than t
  if (after == first) return 0;
  return balances[static_cast<std::size_t>(after - times.begin()) - 1];
}

namespace {

// Queries are answered in blocks. A block sorted by (account, time) is one forward pass
// per account over its breakpoints, galloping over long gaps; any other block runs its
// binary searches interleaved, a group at a time, prefetching the next probe of each,
// so that the cache misses of the group overlap instead of queueing.
constexpr std::size_t block_queries = 4096;
constexpr std::size_t search_group = 128;
constexpr std::size_t queries_per_thread_min = std::size_t{1} << 16;
static_assert(block_queries % search_group == 0, "blocks hold whole groups");

class cpu_engine final : public engine::impl {
 public:
  explicit cpu_engine(step_index index) : index_(std::move(index)) {}
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

 private:
  void answer_block(std::span<const account_index> accounts, std::span<const timestamp_t> times, amount_t* out) const {
    bool sorted = true;
    for (std::size_t i = 1; i < accounts.size() && sorted; ++i) {
      sorted = accounts[i - 1] < accounts[i] || (accounts[i - 1] == accounts[i] && times[i - 1] <= times[i]);
    }
    if (sorted) {
      answer_sorted(accounts, times, out);
    } else {
      answer_unsorted(accounts, times, out);
    }
  }

  // One forward pass per account; `pos` is the first breakpoint later than the last query.
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
        out[i] = pos == lo ? 0 : index_.balances[pos - 1];
      }
    }
  }

  void answer_unsorted(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                       amount_t* out) const {
    const std::size_t count = index_.account_count();
    const timestamp_t* bp = index_.times.data();
    for (std::size_t g = 0; g < accounts.size(); g += search_group) {
      const std::size_t size = std::min(search_group, accounts.size() - g);
      std::size_t base[search_group];
      std::size_t length[search_group];
      std::size_t first[search_group];
      for (std::size_t k = 0; k < size; ++k) {
        const account_index a = accounts[g + k];
        const bool known = a < count;
        first[k] = known ? index_.account_offsets[a] : 0;
        length[k] = known ? index_.account_offsets[a + 1] - first[k] : 0;
        base[k] = first[k];
        __builtin_prefetch(bp + base[k] + length[k] / 2);
      }
      // Branch-free upper bound, all searches of the group one step at a time.
      for (bool busy = true; busy;) {
        busy = false;
        for (std::size_t k = 0; k < size; ++k) {
          if (length[k] <= 1) continue;
          const std::size_t half = length[k] / 2;
          base[k] = bp[base[k] + half] <= times[g + k] ? base[k] + half : base[k];
          length[k] -= half;
          __builtin_prefetch(bp + base[k] + length[k] / 2);
          busy = busy || length[k] > 1;
        }
      }
      for (std::size_t k = 0; k < size; ++k) {
        if (length[k] == 0) {
          out[g + k] = 0;
          continue;
        }
        const std::size_t after = base[k] + (bp[base[k]] <= times[g + k] ? 1 : 0);  // first breakpoint > t
        out[g + k] = after == first[k] ? 0 : index_.balances[after - 1];
      }
    }
  }

  step_index index_;
};

}  // namespace

engine::engine(std::unique_ptr<impl> p) : impl_(std::move(p)) {}
engine::engine(engine&&) noexcept = default;
engine& engine::operator=(engine&&) noexcept = default;
engine::~engine() = default;

engine engine::create(const ledger_result& result, backend b) {
  return create(result.intervals, result.account_count, b);
}

engine engine::create(const interval_table& intervals, std::size_t account_count, backend b) {
  if (b == backend::cuda) {
    require_device_engine();
    return engine(detail::make_device_engine(intervals, account_count));
  }
  return engine(std::make_unique<cpu_engine>(step_index::build(intervals, account_count)));
}

backend engine::kind() const noexcept { return impl_->kind(); }

std::vector<amount_t> engine::balances(std::span<const account_index> accounts,
                                       std::span<const timestamp_t> times) const {
  std::vector<amount_t> out(accounts.size());
  balances(accounts, times, out);
  return out;
}

void engine::balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                      std::span<amount_t> out) const {
  if (accounts.size() != times.size() || out.size() != accounts.size()) {
    throw error("engine::balances: accounts, times and out differ in length");
  }
  impl_->balances(accounts, times, out);
}

std::optional<amount_t> engine::balance(account_index account, timestamp_t t) const {
  amount_t out = 0;
  impl_->balances({&account, 1}, {&t, 1}, {&out, 1});
  return as_optional(out);
}

const step_index* engine::cpu_index() const noexcept { return impl_->cpu_index(); }

step_index engine::index() const { return impl_->index(); }

#ifndef GPUCREDIT_HAVE_DEVICE_ENGINE
// Without the device engine, the factories say so.
namespace detail {
bool device_engine_built() noexcept { return false; }
bool device_engine_available() { return false; }
std::unique_ptr<engine::impl> make_device_engine(const interval_table&, std::size_t) {
  throw backend_error("the CUDA backend is not compiled into this build of gpucredit");
}
}  // namespace detail
#endif

}  // namespace gpucredit
