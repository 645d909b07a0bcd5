// The CUDA query engine (backend::cuda). The step index is built on the host's cores
// (cpu/query/step_index.cpp), cut into shards of consecutive accounts, one per device
// used, and each shard crosses to its device once and stays there. Batches go through
// the chunk scheduler (pipeline.hpp) with three buffer sets per device: queries are
// staged on every host core into pinned memory (their order checked on the way), copied
// in, answered and copied back on the set's stream, so that copies and compute of
// successive chunks overlap. A sorted chunk is answered by a merge with the breakpoints
// it spans when those are few enough per query (the crossover, cuda/README.md), any
// other by binary search. Report grids are generated and reduced on the device: only
// the fleet totals, and the balances when asked for, come back.
//
// Compiled twice: by nvcc into the library (THRUST_DEVICE_SYSTEM_CUDA), and by the host
// compiler with THRUST_DEVICE_SYSTEM_OMP into the device-logic test library, where the
// same scheduler, transports and sharding run with "devices" that are host memory
// (GPUCREDIT_OMP_DEVICES of them, 2 by default, so every suite runs sharded).
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "cost_model.hpp"
#include "device_index.cuh"
#include "device_memory.cuh"
#include "pipeline.hpp"
#include "cpu/env.hpp"
#include "cpu/parallel.hpp"
#include "cpu/query/engine_impl.hpp"
#include "gpucredit/error.hpp"

#if GPUCREDIT_DEVICE_IS_CUDA
#include <thrust/system/cuda/execution_policy.h>
#endif

namespace gpucredit {
namespace {

using device::chunk;
using device::device_array;
using device::grid_view;
using device::i64;
using device::index_view;
using device::u32;
using device::u64;
using device::wide;

/// The most queries (or grid balances) one chunk holds: 16 Mi.
constexpr u64 chunk_queries_max = u64{1} << 24;
/// Buffer sets per device: copy in, compute and copy back of three chunks at once.
constexpr unsigned slot_count = 3;
/// Device bytes a chunk's query costs in one buffer set: account 4, time 8, answer 8,
/// and the merge's two scratch columns of 8 over at most twice the queries (32).
constexpr u64 slot_bytes_per_query = 4 + 8 + 8 + 32;

unsigned host_cores() {
  static const unsigned cores = std::max(1U, std::thread::hardware_concurrency());
  return cores;
}

// ---- devices ------------------------------------------------------------------------

#if GPUCREDIT_DEVICE_IS_CUDA
// The lowest compute capability this build has code for (CMake passes the lowest of
// CMAKE_CUDA_ARCHITECTURES; its PTX runs on that and later).
#ifndef GPUCREDIT_CUDA_ARCH_MIN
#define GPUCREDIT_CUDA_ARCH_MIN 90
#endif
std::string version_of(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }
#endif

struct device_info {
  bool usable = false;
  std::string description;  // what it is, and why it cannot be used if it cannot
};

// Every device visible to this process, checked once.
struct device_census {
  std::string versions;  // runtime and driver (CUDA); the system (OpenMP)
  std::string problem;   // why there is no device at all
  std::vector<device_info> devices;
};

const device_census& census() {
  static const device_census found = [] {
    device_census c;
#if GPUCREDIT_DEVICE_IS_CUDA
    int runtime = 0;
    int driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    c.versions = "CUDA runtime " + version_of(runtime) + ", driver " +
                 (driver == 0 ? std::string("none") : version_of(driver));
    int count = 0;
    if (const cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || count == 0) {
      c.problem = "no usable CUDA device (" +
                  (e != cudaSuccess ? std::string(cudaGetErrorString(e)) : std::string("none found")) + ")";
      cudaGetLastError();  // clear it: the CPU engine goes on
      return c;
    }
    for (int d = 0; d < count; ++d) {
      device_info info;
      cudaDeviceProp props{};
      if (cudaGetDeviceProperties(&props, d) != cudaSuccess) {
        cudaGetLastError();
        info.description = "device " + std::to_string(d) + " does not answer";
        c.devices.push_back(info);
        continue;
      }
      const int capability = props.major * 10 + props.minor;
      info.description = "device " + std::to_string(d) + ": " + props.name + " (sm_" + std::to_string(capability) +
                         ", " + std::to_string(props.totalGlobalMem >> 20) + " MiB)";
      if (capability < GPUCREDIT_CUDA_ARCH_MIN) {
        info.description += "; this build has code for sm_" + std::to_string(GPUCREDIT_CUDA_ARCH_MIN) +
                            " and later only (rebuild with CMAKE_CUDA_ARCHITECTURES=" + std::to_string(capability) +
                            ")";
      } else {
        info.usable = true;
      }
      c.devices.push_back(info);
    }
#else
    c.versions = "Thrust's OpenMP system (a test build)";
    const u64 count = std::min<u64>(detail::env_positive("GPUCREDIT_OMP_DEVICES", 2), 64);
    for (u64 d = 0; d < count; ++d) {
      c.devices.push_back({true, "device " + std::to_string(d) + ": host memory"});
    }
#endif
    return c;
  }();
  return found;
}

// The devices a request names: `wanted` (from --device), else GPUCREDIT_DEVICE (a list
// such as "1" or "0,2"), else every usable device. Throws backend_unavailable naming the
// device and the reason when one cannot be used.
std::vector<int> choose_devices(const std::vector<int>& wanted) {
  const device_census& c = census();
  if (c.devices.empty()) throw backend_unavailable("the CUDA backend cannot run here: " + c.versions + ": " + c.problem);
  std::vector<int> chosen = wanted;
  std::string source = "--device";
  if (chosen.empty()) {
    if (const char* env = std::getenv("GPUCREDIT_DEVICE"); env != nullptr && *env != '\0') {
      source = "GPUCREDIT_DEVICE";
      try {
        chosen = parse_devices(env);
      } catch (const backend_unavailable& e) {
        throw backend_unavailable(std::string("GPUCREDIT_DEVICE: ") + e.what());
      }
    } else {
      for (std::size_t d = 0; d < c.devices.size(); ++d) {
        if (c.devices[d].usable) chosen.push_back(static_cast<int>(d));
      }
      if (chosen.empty()) {
        throw backend_unavailable("the CUDA backend cannot run here: " + c.versions + ": no device is usable: " +
                                  c.devices.front().description);
      }
    }
  }
  std::vector<int> unique;
  for (const int d : chosen) {
    if (d < 0 || static_cast<std::size_t>(d) >= c.devices.size()) {
      throw backend_unavailable(source + " names device " + std::to_string(d) + ", but " +
                                std::to_string(c.devices.size()) + " device(s) are visible (" + c.versions + ")");
    }
    if (!c.devices[static_cast<std::size_t>(d)].usable) {
      throw backend_unavailable("the CUDA backend cannot use " + c.devices[static_cast<std::size_t>(d)].description);
    }
    if (std::find(unique.begin(), unique.end(), d) == unique.end()) unique.push_back(d);
  }
  return unique;
}

// ---- host staging -------------------------------------------------------------------

// Copies n queries from the caller's columns into the staging columns on every core and
// says whether they are sorted by (account, time): the host reads each query once.
bool stage_queries(const u32* accounts, const i64* times, u64 n, u32* to_accounts, i64* to_times) {
  const std::size_t parts = detail::part_count(n, std::size_t{1} << 18);
  std::vector<char> sorted(parts, 1);
  detail::run_parts(parts, [&](std::size_t k) {
    const u64 first = n * k / parts;
    const u64 last = n * (k + 1) / parts;
    std::memcpy(to_accounts + first, accounts + first, (last - first) * sizeof(u32));
    std::memcpy(to_times + first, times + first, (last - first) * sizeof(i64));
    bool ok = true;
    for (u64 i = first == 0 ? 1 : first; i < last && ok; ++i) {
      ok = accounts[i - 1] < accounts[i] || (accounts[i - 1] == accounts[i] && times[i - 1] <= times[i]);
    }
    sorted[k] = ok ? 1 : 0;
  });
  return std::all_of(sorted.begin(), sorted.end(), [](char s) { return s != 0; });
}

// Copies `bytes` on every core (answers from pinned staging to the caller).
void copy_on_cores(void* to, const void* from, u64 bytes) {
  const std::size_t parts = detail::part_count(bytes, std::size_t{1} << 22);
  detail::run_parts(parts, [&](std::size_t k) {
    const u64 first = bytes * k / parts;
    const u64 last = bytes * (k + 1) / parts;
    std::memcpy(static_cast<char*>(to) + first, static_cast<const char*>(from) + first, last - first);
  });
}

__extension__ typedef unsigned __int128 u128;
total_t to_total(const wide& w) { return static_cast<total_t>((static_cast<u128>(w.hi) << 64) | w.lo); }

// Runs fn(k) for every shard k: on CUDA each on its own host thread, so that the devices
// work at once; on the OpenMP build one after another (Thrust's OpenMP teams would be
// created anew on every fresh thread).
template <class F>
void for_each_shard(std::size_t shards, F&& fn) {
#if GPUCREDIT_DEVICE_IS_CUDA
  detail::run_parts(shards, fn);
#else
  for (std::size_t k = 0; k < shards; ++k) fn(k);
#endif
}

// ---- one device's share -------------------------------------------------------------

// One buffer set: a stream with its device columns and, on CUDA, its pinned staging.
struct slot {
  device_array<u32> accounts;
  device_array<i64> times;
  device_array<i64> out;
  device_array<i64> tags;  // merge scratch
  device_array<i64> last;
  device_array<wide> partials;  // grid scratch
  device_array<wide> totals;
  bool sorted = false;  // the chunk staged, as the host read it
#if GPUCREDIT_DEVICE_IS_CUDA
  explicit slot(cudaMemPool_t pool) : allocator(pool, s.get()) {}
  device::stream s;
  device::stream_allocator allocator;
  device::pinned_array<u32> staged_accounts;
  device::pinned_array<i64> staged_times;
  device::pinned_array<i64> staged_out;
  device::pinned_array<wide> staged_totals;
  auto policy() { return thrust::cuda::par_nosync(allocator).on(s.get()); }
#else
  auto policy() { return thrust::device; }
#endif
};

// The accounts [first, first + count) of the step index on one device, and what answers
// batches there. Accounts handed to it are local (0 = its first account).
class shard {
 public:
  shard(int device, const step_index& host, u64 first, u64 count, u64 chunk)
      : device_(device), first_(first), count_(count), chunk_(chunk)
#if GPUCREDIT_DEVICE_IS_CUDA
        ,
        pool_((GPUCREDIT_CUDA_TRY(cudaSetDevice(device)), device))
#endif
  {
    enter();
    const u64 begin = host.account_offsets[first];
    const u64 end = host.account_offsets[first + count];
    breakpoints_ = end - begin;
    offsets_.resize(count + 1);
    for (u64 a = 0; a <= count; ++a) offsets_[a] = host.account_offsets[first + a] - begin;
    std::vector<u32> owner(breakpoints_);  // the account of each breakpoint, for the merge
    for (u64 a = 0; a < count; ++a) {
      std::fill(owner.begin() + static_cast<std::ptrdiff_t>(offsets_[a]),
                owner.begin() + static_cast<std::ptrdiff_t>(offsets_[a + 1]), static_cast<u32>(a));
    }
    d_offsets_.upload(offsets_.data(), offsets_.size());
    d_accounts_.upload(owner.data(), owner.size());
    d_times_.upload(host.times.data() + begin, breakpoints_);
    d_balances_.upload(host.balances.data() + begin, breakpoints_);
    sloped_ = host.has_slopes();
    if (sloped_) d_slopes_.upload(host.slopes.data() + begin, breakpoints_);
#if GPUCREDIT_DEVICE_IS_CUDA
    // Three buffer sets must fit in what is free once the index is resident, with half
    // of it kept spare.
    std::size_t free_bytes = 0;
    std::size_t total_bytes = 0;
    GPUCREDIT_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
    const u64 fit = free_bytes / (2 * slot_count * slot_bytes_per_query);
    if (fit < 1024) throw device_error("CUDA: too little memory left on device " + std::to_string(device) + " for query buffers");
    chunk_ = std::min(chunk_, fit);
    for (unsigned k = 0; k < slot_count; ++k) slots_.push_back(std::make_unique<slot>(pool_.get()));
#else
    for (unsigned k = 0; k < slot_count; ++k) slots_.push_back(std::make_unique<slot>());
#endif
    merge_crossover_ = static_cast<double>(detail::env_positive("GPUCREDIT_MERGE_CROSSOVER_PERCENT", 100)) / 100.0;
  }
  shard(const shard&) = delete;
  shard& operator=(const shard&) = delete;

  u64 first() const noexcept { return first_; }
  int device() const noexcept { return device_; }

  // Answers n queries (local accounts; an account >= count() answers 0) into out.
  void balances(const u32* accounts, const i64* times, u64 n, i64* out) {
    const std::lock_guard<std::mutex> lock(mutex_);
    enter();
    const u64 size = std::min(chunk_, n);
    active_chunk_ = size;
    for (const auto& s : slots_) {
      s->accounts.reserve(size);
      s->times.reserve(size);
      s->out.reserve(size);
#if GPUCREDIT_DEVICE_IS_CUDA
      s->staged_accounts.reserve(size);
      s->staged_times.reserve(size);
      s->staged_out.reserve(size);
#endif
    }
    query_transport t{*this, accounts, times, out};
    device::run_pipeline(t, n, size);
  }

  // The grid over n local accounts: fleet totals added into fleet[0, g.count), balances
  // (account-major) into `balances` unless it is null. g.count <= chunk_.
  void grid(const u32* accounts, u64 n, const grid_view& g, total_t* fleet, i64* balances) {
    const std::lock_guard<std::mutex> lock(mutex_);
    enter();
    const u64 per_chunk = std::max<u64>(1, chunk_ / g.count);
    const u64 accounts_max = std::min(per_chunk, n);
    const u64 blocks = (accounts_max + device::grid_block_accounts - 1) / device::grid_block_accounts;
    for (const auto& s : slots_) {
      s->accounts.reserve(accounts_max);
      s->out.reserve(accounts_max * g.count);
      s->partials.reserve(blocks * g.count);
      s->totals.reserve(g.count);
#if GPUCREDIT_DEVICE_IS_CUDA
      s->staged_accounts.reserve(accounts_max);
      s->staged_totals.reserve(g.count);
      if (balances != nullptr) s->staged_out.reserve(accounts_max * g.count);
#endif
    }
    grid_transport t{*this, accounts, g, fleet, balances};
    device::run_pipeline(t, n, per_chunk);
  }

  u64 chunk_size() const noexcept { return chunk_; }

  // This shard's part of the step index, read back from the device.
  void download(step_index& into) {
    const std::lock_guard<std::mutex> lock(mutex_);
    enter();
    const u64 base = into.times.size();
    std::vector<u64> offsets(count_ + 1);
    d_offsets_.download(offsets.data(), offsets.size());
    for (u64 a = 1; a <= count_; ++a) into.account_offsets.push_back(base + offsets[a]);
    into.times.resize(base + breakpoints_);
    into.balances.resize(base + breakpoints_);
    d_times_.download(into.times.data() + base, breakpoints_);
    d_balances_.download(into.balances.data() + base, breakpoints_);
    if (sloped_) {
      into.slopes.resize(base + breakpoints_);
      d_slopes_.download(into.slopes.data() + base, breakpoints_);
    }
  }

 private:
  // Makes this shard's device current (threads share none) and waits for what a call
  // that threw midway may have left in flight.
  void enter() {
#if GPUCREDIT_DEVICE_IS_CUDA
    GPUCREDIT_CUDA_TRY(cudaSetDevice(device_));
    for (const auto& s : slots_) s->s.synchronize();
#endif
  }

  index_view view() const {
    return {d_offsets_.data(), d_accounts_.data(), d_times_.data(),   d_balances_.data(),
            sloped_ ? d_slopes_.data() : nullptr, count_};
  }

  // Point queries through the scheduler: staged on the host's cores, copied in, answered
  // by search or merge, copied back.
  struct query_transport {
    shard& sh;
    const u32* accounts;
    const i64* times;
    i64* out;

    unsigned slots() const { return static_cast<unsigned>(sh.slots_.size()); }
    void stage(const chunk& c) {
      slot& s = *sh.slots_[c.slot];
#if GPUCREDIT_DEVICE_IS_CUDA
      s.sorted = stage_queries(accounts + c.offset, times + c.offset, c.count, s.staged_accounts.data(),
                               s.staged_times.data());
      GPUCREDIT_CUDA_TRY(cudaMemcpyAsync(s.accounts.data(), s.staged_accounts.data(), c.count * sizeof(u32),
                                         cudaMemcpyHostToDevice, s.s.get()));
      GPUCREDIT_CUDA_TRY(cudaMemcpyAsync(s.times.data(), s.staged_times.data(), c.count * sizeof(i64),
                                         cudaMemcpyHostToDevice, s.s.get()));
#else
      s.sorted = stage_queries(accounts + c.offset, times + c.offset, c.count, s.accounts.data(), s.times.data());
#endif
    }
    void launch(const chunk& c) {
      slot& s = *sh.slots_[c.slot];
      sh.answer_chunk(s, accounts + c.offset, c.count);
#if GPUCREDIT_DEVICE_IS_CUDA
      GPUCREDIT_CUDA_TRY(cudaMemcpyAsync(s.staged_out.data(), s.out.data(), c.count * sizeof(i64),
                                         cudaMemcpyDeviceToHost, s.s.get()));
#endif
    }
    void finish(const chunk& c) {
      slot& s = *sh.slots_[c.slot];
#if GPUCREDIT_DEVICE_IS_CUDA
      s.s.synchronize();
      copy_on_cores(out + c.offset, s.staged_out.data(), c.count * sizeof(i64));
#else
      copy_on_cores(out + c.offset, s.out.data(), c.count * sizeof(i64));
#endif
    }
  };

  // Grid chunks (a run of accounts each): the account ids go in, the grid is generated
  // and reduced on the device, the totals (and balances when asked for) come back.
  struct grid_transport {
    shard& sh;
    const u32* accounts;
    grid_view g;
    total_t* fleet;
    i64* balances;

    unsigned slots() const { return static_cast<unsigned>(sh.slots_.size()); }
    void stage(const chunk& c) {
      slot& s = *sh.slots_[c.slot];
#if GPUCREDIT_DEVICE_IS_CUDA
      std::memcpy(s.staged_accounts.data(), accounts + c.offset, c.count * sizeof(u32));
      GPUCREDIT_CUDA_TRY(cudaMemcpyAsync(s.accounts.data(), s.staged_accounts.data(), c.count * sizeof(u32),
                                         cudaMemcpyHostToDevice, s.s.get()));
#else
      std::memcpy(s.accounts.data(), accounts + c.offset, c.count * sizeof(u32));
#endif
    }
    void launch(const chunk& c) {
      slot& s = *sh.slots_[c.slot];
      device::answer_grid(s.policy(), sh.view(), s.accounts.data(), c.count, g, s.out.data(), s.partials.data(),
                          s.totals.data());
#if GPUCREDIT_DEVICE_IS_CUDA
      GPUCREDIT_CUDA_TRY(cudaMemcpyAsync(s.staged_totals.data(), s.totals.data(), g.count * sizeof(wide),
                                         cudaMemcpyDeviceToHost, s.s.get()));
      if (balances != nullptr) {
        GPUCREDIT_CUDA_TRY(cudaMemcpyAsync(s.staged_out.data(), s.out.data(), c.count * g.count * sizeof(i64),
                                           cudaMemcpyDeviceToHost, s.s.get()));
      }
#endif
    }
    void finish(const chunk& c) {
      slot& s = *sh.slots_[c.slot];
#if GPUCREDIT_DEVICE_IS_CUDA
      s.s.synchronize();
      const wide* totals = s.staged_totals.data();
      const i64* values = s.staged_out.data();
#else
      const wide* totals = s.totals.data();
      const i64* values = s.out.data();
#endif
      for (u64 k = 0; k < g.count; ++k) fleet[k] += to_total(totals[k]);
      if (balances != nullptr) copy_on_cores(balances + c.offset * g.count, values, c.count * g.count * sizeof(i64));
    }
  };

  // Answers the chunk in s.accounts / s.times into s.out. A sorted chunk whose accounts
  // span few enough breakpoints per query is merged with them; any other is searched.
  void answer_chunk(slot& s, const u32* host_accounts, u64 count) {
    const index_view v = view();
    if (s.sorted) {
      const u64 first = std::min<u64>(host_accounts[0], count_);
      const u64 last = std::min<u64>(u64{host_accounts[count - 1]} + 1, count_);
      const u64 begin = offsets_[first];
      const u64 end = std::max(begin, offsets_[last]);
      const u64 spanned = end - begin;
      if (static_cast<double>(spanned) <= merge_crossover_ * static_cast<double>(count) && spanned <= count) {
        index_view slice = v;
        slice.accounts += begin;
        slice.times += begin;
        slice.balances += begin;
        if (slice.slopes != nullptr) slice.slopes += begin;
        s.tags.reserve(2 * active_chunk_);  // a merge never spans more than twice a chunk
        s.last.reserve(2 * active_chunk_);
        device::answer_by_merge(s.policy(), slice, spanned, s.accounts.data(), s.times.data(), count, s.tags.data(),
                                s.last.data(), s.out.data());
        return;
      }
    }
    device::answer_by_search(s.policy(), v, s.accounts.data(), s.times.data(), count, s.out.data());
  }

  int device_;
  u64 first_;
  u64 count_;
  u64 breakpoints_ = 0;
  u64 chunk_;
  u64 active_chunk_ = 0;  // the chunk size of the batch in progress
  double merge_crossover_ = 1.0;
  bool sloped_ = false;
  std::vector<u64> offsets_;  // local, on the host too (the merge's slice bounds)
#if GPUCREDIT_DEVICE_IS_CUDA
  device::memory_pool pool_;
#endif
  device_array<u64> d_offsets_;
  device_array<u32> d_accounts_;
  device_array<i64> d_times_;
  device_array<i64> d_balances_;
  device_array<i64> d_slopes_;
  std::vector<std::unique_ptr<slot>> slots_;
  std::mutex mutex_;
};

// ---- the engine ---------------------------------------------------------------------

class device_engine final : public engine::impl {
 public:
  device_engine(const interval_table& intervals, std::size_t account_count, const engine_options& options)
      : place_(options.place), account_count_(account_count) {
    const std::vector<int> devices = choose_devices(options.devices);
    step_index host = step_index::build(intervals, account_count);
    const u64 chunk = std::min(detail::env_positive("GPUCREDIT_DEVICE_BATCH", chunk_queries_max), chunk_queries_max);
    // Shards of consecutive accounts of about equal breakpoints plus accounts (a grid
    // costs per account, a point batch per breakpoint searched).
    const std::size_t shards = std::max<std::size_t>(1, std::min<std::size_t>(devices.size(), account_count));
    std::vector<std::size_t> weight(account_count + 1);
    for (std::size_t a = 0; a <= account_count; ++a) weight[a] = host.account_offsets[a] + a;
    const std::vector<std::size_t> cuts = detail::balanced_cuts(weight, shards);
    for (std::size_t k = 0; k < shards; ++k) {
      if (cuts[k + 1] == cuts[k] && k + 1 < shards) continue;  // an empty shard would idle
      shards_.push_back(std::make_unique<shard>(devices[k], host, cuts[k], cuts[k + 1] - cuts[k], chunk));
    }
    model_.host_cores = host_cores();
    model_.chunk_queries = shards_.front()->chunk_size();
    for (const auto& sh : shards_) model_.chunk_queries = std::min(model_.chunk_queries, sh->chunk_size());
    if (place_ == placement::cost_model) host_ = detail::make_cpu_engine(std::move(host));
  }

  backend kind() const noexcept override { return backend::cuda; }

  std::string describe() const override {
    std::string text = "cuda (";
    for (std::size_t k = 0; k < shards_.size(); ++k) {
      text += (k == 0 ? "" : "; ") + census().devices[static_cast<std::size_t>(shards_[k]->device())].description;
    }
    text += place_ == placement::cost_model ? "; each batch where the cost model expects it to finish first, the device "
                                              "or " + std::to_string(host_cores()) + " host cores)"
                                            : ")";
    return text;
  }

  step_index index() const override {
    step_index s;
    s.account_offsets.push_back(0);
    for (const auto& sh : shards_) sh->download(s);
    s.account_offsets.resize(account_count_ + 1, s.times.size());
    return s;
  }

  void balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                std::span<amount_t> out) const override {
    typed([&] {
      if (host_ != nullptr && !model_.prefer_device(point_shape(accounts, times))) {
        host_->balances(accounts, times, out);
        return;
      }
      answer(accounts, times, out);
    });
  }

  void grid(std::span<const account_index> accounts, const time_grid& g, std::span<total_t> fleet,
            std::span<amount_t> balances) const override {
    typed([&] {
      device::batch_shape shape;
      shape.queries = accounts.size() * g.count;
      shape.sorted = true;
      shape.generated_on_device = true;
      shape.bytes_back = balances.empty() ? g.count * 16 : shape.queries * 8;
      if (host_ != nullptr && !model_.prefer_device(shape)) {
        host_->grid(accounts, g, fleet, balances);
        return;
      }
      answer_grid(accounts, g, fleet, balances);
    });
  }

 private:
  // Runs fn, turning what CUDA and Thrust throw into the library's typed errors.
  template <class F>
  static void typed(F&& fn) {
    try {
      fn();
    } catch (const error&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {  // thrust::system_error and the like
      throw device_error(std::string("CUDA engine: ") + e.what());
    }
  }

  // The model's view of a point batch: its order is judged from 1,024 evenly spaced
  // neighbours (a guess for the model only; the answers never depend on it).
  device::batch_shape point_shape(std::span<const account_index> accounts, std::span<const timestamp_t> times) const {
    device::batch_shape shape;
    shape.queries = accounts.size();
    shape.bytes_back = accounts.size() * 8;
    shape.sorted = true;
    const std::size_t n = accounts.size();
    for (std::size_t s = 0; s < 1024 && n > 1 && shape.sorted; ++s) {
      const std::size_t i = 1 + (n - 1) * s / 1024;
      shape.sorted = accounts[i - 1] < accounts[i] || (accounts[i - 1] == accounts[i] && times[i - 1] <= times[i]);
    }
    return shape;
  }

  // Which shard holds account a (a < account_count_).
  std::size_t shard_of(u64 a) const {
    std::size_t k = 0;
    while (k + 1 < shards_.size() && shards_[k + 1]->first() <= a) ++k;
    return k;
  }

  void answer(std::span<const account_index> accounts, std::span<const timestamp_t> times,
              std::span<amount_t> out) const {
    const u64 n = accounts.size();
    if (n == 0) return;
    if (shards_.size() == 1) {
      shards_[0]->balances(accounts.data(), times.data(), n, out.data());
      return;
    }
    // Several devices: the queries are partitioned by shard (order kept within each),
    // answered on every device at once, and scattered back. Unknown accounts answer 0 here.
    const std::size_t shard_count = shards_.size();
    std::vector<std::vector<u32>> local_accounts(shard_count);
    std::vector<std::vector<i64>> local_times(shard_count);
    std::vector<std::vector<u64>> position(shard_count);
    for (u64 i = 0; i < n; ++i) {
      const u64 a = accounts[i];
      if (a >= account_count_) {
        out[i] = 0;
        continue;
      }
      const std::size_t k = shard_of(a);
      local_accounts[k].push_back(static_cast<u32>(a - shards_[k]->first()));
      local_times[k].push_back(times[i]);
      position[k].push_back(i);
    }
    std::vector<std::vector<i64>> local_out(shard_count);
    for_each_shard(shard_count, [&](std::size_t k) {
      local_out[k].resize(local_accounts[k].size());
      shards_[k]->balances(local_accounts[k].data(), local_times[k].data(), local_accounts[k].size(),
                           local_out[k].data());
    });
    for (std::size_t k = 0; k < shard_count; ++k) {
      for (std::size_t j = 0; j < position[k].size(); ++j) out[position[k][j]] = local_out[k][j];
    }
  }

  void answer_grid(std::span<const account_index> accounts, const time_grid& g, std::span<total_t> fleet,
                   std::span<amount_t> balances) const {
    std::fill(fleet.begin(), fleet.end(), total_t{0});
    // A grid longer than a chunk goes through in slices of times.
    u64 slice_max = chunk_queries_max;
    for (const auto& sh : shards_) slice_max = std::min(slice_max, sh->chunk_size());
    std::vector<amount_t> slice_balances;
    for (u64 k0 = 0; k0 < g.count; k0 += slice_max) {
      const u64 times = std::min(slice_max, g.count - k0);
      const grid_view slice{g.at(k0), g.every, times};
      if (times == g.count) {
        grid_slice(accounts, slice, fleet.data(), balances.empty() ? nullptr : balances.data());
        return;
      }
      if (!balances.empty()) slice_balances.resize(accounts.size() * times);
      grid_slice(accounts, slice, fleet.data() + k0, balances.empty() ? nullptr : slice_balances.data());
      for (std::size_t i = 0; i < accounts.size() && !balances.empty(); ++i) {
        std::copy_n(slice_balances.data() + i * times, times, balances.data() + i * g.count + k0);
      }
    }
  }

  // One slice of times (at most a chunk): fleet totals added into fleet[0, g.count).
  void grid_slice(std::span<const account_index> accounts, const grid_view& g, total_t* fleet,
                  i64* balances) const {
    if (shards_.size() == 1) {
      shards_[0]->grid(accounts.data(), accounts.size(), g, fleet, balances);
      return;
    }
    const std::size_t shard_count = shards_.size();
    std::vector<std::vector<u32>> local(shard_count);
    std::vector<std::vector<u64>> row(shard_count);
    for (std::size_t i = 0; i < accounts.size(); ++i) {
      const u64 a = accounts[i];
      if (a >= account_count_) {  // a row of zeros, nothing to the fleet
        if (balances != nullptr) std::fill_n(balances + i * g.count, g.count, i64{0});
        continue;
      }
      const std::size_t k = shard_of(a);
      local[k].push_back(static_cast<u32>(a - shards_[k]->first()));
      row[k].push_back(i);
    }
    std::vector<std::vector<total_t>> part_fleet(shard_count);
    std::vector<std::vector<i64>> part_balances(shard_count);
    for_each_shard(shard_count, [&](std::size_t k) {
      part_fleet[k].assign(g.count, 0);
      if (balances != nullptr) part_balances[k].resize(local[k].size() * g.count);
      shards_[k]->grid(local[k].data(), local[k].size(), g, part_fleet[k].data(),
                       balances != nullptr ? part_balances[k].data() : nullptr);
    });
    for (std::size_t k = 0; k < shard_count; ++k) {
      for (u64 t = 0; t < g.count; ++t) fleet[t] += part_fleet[k][t];
      for (std::size_t j = 0; j < row[k].size() && balances != nullptr; ++j) {
        std::copy_n(part_balances[k].data() + j * g.count, g.count, balances + row[k][j] * g.count);
      }
    }
  }

  placement place_;
  u64 account_count_;
  std::vector<std::unique_ptr<shard>> shards_;
  std::unique_ptr<engine::impl> host_;  // the CPU engine over the same index (cost model only)
  device::cost_model model_;
};

}  // namespace

namespace detail {

bool device_engine_built() noexcept { return true; }

bool device_engine_available() {
  try {
    return !choose_devices({}).empty();
  } catch (const backend_unavailable&) {
    return false;
  }
}

std::string device_engine_status() {
  const device_census& c = census();
  if (c.devices.empty()) return c.versions + ": " + c.problem;
  std::string text = c.versions;
  for (const device_info& d : c.devices) text += "; " + d.description + (d.usable ? "" : " (not usable)");
  try {
    const std::vector<int> chosen = choose_devices({});
    text += "; uses device";
    text += chosen.size() > 1 ? "s " : " ";
    for (std::size_t k = 0; k < chosen.size(); ++k) text += (k == 0 ? "" : ",") + std::to_string(chosen[k]);
  } catch (const backend_unavailable& e) {
    text += std::string("; ") + e.what();
  }
  return text;
}

std::unique_ptr<engine::impl> make_device_engine(const interval_table& intervals, std::size_t account_count,
                                                 const engine_options& options) {
  try {
    return std::make_unique<device_engine>(intervals, account_count, options);
  } catch (const error&) {
    throw;
  } catch (const std::bad_alloc&) {
    throw;
  } catch (const std::exception& e) {  // thrust::system_error and the like
    throw device_error(std::string("CUDA engine: ") + e.what());
  }
}

}  // namespace detail
}  // namespace gpucredit
