// The CUDA query engine (backend::cuda). The step index is built on the host's cores
// (cpu/query/step_index.cpp), crosses to the device once and stays there
// (cuda/device_index.cuh), and batches of queries
// are answered in chunks of at most `chunk_queries_max`: sorted chunks by a merge
// with the breakpoints of the accounts they touch, other chunks by binary search.
//
// Compiled twice: by nvcc into the library (THRUST_DEVICE_SYSTEM_CUDA: two streams,
// pinned staging buffers, host-to-device copies overlapped with compute, a caching
// allocator for Thrust's temporary storage), and by the host compiler with
// THRUST_DEVICE_SYSTEM_OMP into the device-logic test library (the same algorithms on
// the CPU, chunks one after another).
#include <algorithm>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "device_index.cuh"
#include "device_resources.cuh"
#include "cpu/query/engine_impl.hpp"
#include "gpucredit/error.hpp"

#if GPUCREDIT_DEVICE_IS_CUDA
#include <thrust/system/cuda/execution_policy.h>
#endif

namespace gpucredit {
namespace {

using device::buffer_set;
using device::i64;
using device::raw;
using device::reserve_at_least;
using device::u32;
using device::u64;

#if GPUCREDIT_DEVICE_IS_CUDA
// The lowest compute capability this build has code for (CMake passes the lowest of
// CMAKE_CUDA_ARCHITECTURES; its PTX runs on that and later).
#ifndef GPUCREDIT_CUDA_ARCH_MIN
#define GPUCREDIT_CUDA_ARCH_MIN 90
#endif

std::string version_of(int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); }

// The device the engine uses: GPUCREDIT_DEVICE (an index) when set, else 0. Checked once:
// the runtime and driver answer, the device exists, and this build has code for it.
struct device_choice {
  bool usable = false;
  int device = 0;
  std::string description;  // what it is, or why it cannot be used
};

const device_choice& chosen_device() {
  static const device_choice choice = [] {
    device_choice c;
    int runtime = 0;
    int driver = 0;
    cudaRuntimeGetVersion(&runtime);
    cudaDriverGetVersion(&driver);
    const std::string versions = "CUDA runtime " + version_of(runtime) + ", driver " +
                                 (driver == 0 ? std::string("none") : version_of(driver));
    int count = 0;
    if (const cudaError_t e = cudaGetDeviceCount(&count); e != cudaSuccess || count == 0) {
      c.description = versions + ": no usable CUDA device (" +
                       (e != cudaSuccess ? std::string(cudaGetErrorString(e)) : std::string("none found")) + ")";
      cudaGetLastError();  // clear it: the CPU engine goes on
      return c;
    }
    if (const char* env = std::getenv("GPUCREDIT_DEVICE"); env != nullptr && *env != '\0') {
      const auto [ptr, ec] = std::from_chars(env, env + std::strlen(env), c.device);
      if (ec != std::errc() || *ptr != '\0' || c.device < 0 || c.device >= count) {
        c.description = versions + ": GPUCREDIT_DEVICE='" + env + "' is not a device index below " +
                        std::to_string(count);
        return c;
      }
    }
    cudaDeviceProp props{};
    if (cudaGetDeviceProperties(&props, c.device) != cudaSuccess) {
      cudaGetLastError();
      c.description = versions + ": device " + std::to_string(c.device) + " does not answer";
      return c;
    }
    const int capability = props.major * 10 + props.minor;
    c.description = versions + ", device " + std::to_string(c.device) + " of " + std::to_string(count) + ": " +
                    props.name + " (sm_" + std::to_string(capability) + ", " +
                    std::to_string(props.totalGlobalMem >> 20) + " MiB)";
    if (capability < GPUCREDIT_CUDA_ARCH_MIN) {
      c.description += "; this build has code for sm_" + std::to_string(GPUCREDIT_CUDA_ARCH_MIN) +
                       " and later only (rebuild with CMAKE_CUDA_ARCHITECTURES=" + std::to_string(capability) + ")";
      return c;
    }
    c.usable = true;
    return c;
  }();
  return choice;
}
#endif


/// The most queries one chunk holds: 16 Mi queries, 320 MiB of buffers per stream.
constexpr u64 chunk_queries_max = u64{1} << 24;
static_assert(chunk_queries_max % 32 == 0, "chunks are whole warps");

step_index to_host(const device::device_index& d) {
  step_index s;
  s.account_offsets.resize(d.offsets.size());
  s.times.resize(d.times.size());
  s.balances.resize(d.balances.size());
  s.slopes.resize(d.slopes.size());
  thrust::copy(d.offsets.begin(), d.offsets.end(), s.account_offsets.begin());
  thrust::copy(d.times.begin(), d.times.end(), s.times.begin());
  thrust::copy(d.balances.begin(), d.balances.end(), s.balances.begin());
  thrust::copy(d.slopes.begin(), d.slopes.end(), s.slopes.begin());
  return s;
}

// Uploads the index the host built; the account of each breakpoint is added for the
// merge path. Peak device memory: the index itself.
device::device_index upload(const step_index& host) {
  device::device_index d;
  d.account_count = host.account_count();
  d.offsets.assign(host.account_offsets.begin(), host.account_offsets.end());
  d.times.assign(host.times.begin(), host.times.end());
  d.balances.assign(host.balances.begin(), host.balances.end());
  d.slopes.assign(host.slopes.begin(), host.slopes.end());
  std::vector<u32> accounts(host.size());
  for (u64 a = 0; a < d.account_count; ++a) {
    std::fill(accounts.begin() + static_cast<std::ptrdiff_t>(host.account_offsets[a]),
              accounts.begin() + static_cast<std::ptrdiff_t>(host.account_offsets[a + 1]), static_cast<u32>(a));
  }
  d.accounts.assign(accounts.begin(), accounts.end());
  return d;
}

class device_engine final : public engine::impl {
 public:
  device_engine(const interval_table& intervals, std::size_t account_count) {
#if GPUCREDIT_DEVICE_IS_CUDA
    device_ = chosen_device().device;  // every call sets it again: threads share no current device
    GPUCREDIT_CUDA_TRY(cudaSetDevice(device_));
#endif
    index_ = upload(step_index::build(intervals, account_count));
    // GPUCREDIT_DEVICE_BATCH lowers the chunk size (tests use it to exercise chunking).
    if (const char* env = std::getenv("GPUCREDIT_DEVICE_BATCH"); env != nullptr) {
      u64 wanted = 0;
      const auto [ptr, ec] = std::from_chars(env, env + std::strlen(env), wanted);
      if (ec == std::errc() && *ptr == '\0' && wanted > 0) batch_ = std::min(wanted, chunk_queries_max);
    }
#if GPUCREDIT_DEVICE_IS_CUDA
    // Two buffer sets must fit in what is free once the index is resident: 20 bytes a
    // query (account, time, answer) and 16 more of merge scratch, with half kept spare.
    std::size_t free_bytes = 0;
    std::size_t total_bytes = 0;
    GPUCREDIT_CUDA_TRY(cudaMemGetInfo(&free_bytes, &total_bytes));
    const u64 fit = free_bytes / (2 * 2 * (20 + 16));
    if (fit < 1024) throw device_error("CUDA: too little device memory left for query buffers");
    batch_ = std::min(batch_, fit);
#endif
    host_offsets_.resize(index_.offsets.size());
    thrust::copy(index_.offsets.begin(), index_.offsets.end(), host_offsets_.begin());
#if GPUCREDIT_DEVICE_IS_CUDA
    for (buffer_set& set : sets_) GPUCREDIT_CUDA_TRY(cudaStreamCreateWithFlags(&set.stream, cudaStreamNonBlocking));
#endif
  }
  ~device_engine() override {
#if GPUCREDIT_DEVICE_IS_CUDA
    for (buffer_set& set : sets_) {
      if (set.stream != nullptr) cudaStreamDestroy(set.stream);
    }
#endif
  }
  device_engine(const device_engine&) = delete;
  device_engine& operator=(const device_engine&) = delete;

  backend kind() const noexcept override { return backend::cuda; }
  step_index index() const override { return to_host(index_); }

  void balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                std::span<amount_t> out) const override {
    try {
      answer(accounts, times, out);
    } catch (const error&) {
      throw;
    } catch (const std::bad_alloc&) {
      throw;
    } catch (const std::exception& e) {  // thrust::system_error and the like: typed
      throw device_error(std::string("CUDA engine: ") + e.what());
    }
  }

 private:
  void answer(std::span<const account_index> accounts, std::span<const timestamp_t> times,
              std::span<amount_t> out) const {
    const std::lock_guard<std::mutex> lock(mutex_);  // the buffers are shared
    const u64 n = accounts.size();
    if (n == 0) return;
#if GPUCREDIT_DEVICE_IS_CUDA
    GPUCREDIT_CUDA_TRY(cudaSetDevice(device_));
#endif
#if GPUCREDIT_DEVICE_IS_CUDA
    answer_overlapped(accounts, times, out);
#else
    buffer_set& set = sets_[0];
    for (u64 offset = 0; offset < n; offset += batch_) {
      const u64 count = std::min(batch_, n - offset);
      reserve_at_least(set.accounts, count);
      reserve_at_least(set.times, count);
      reserve_at_least(set.out, count);
      thrust::copy(accounts.data() + offset, accounts.data() + offset + count, set.accounts.begin());
      thrust::copy(times.data() + offset, times.data() + offset + count, set.times.begin());
      answer_chunk(thrust::device, set, accounts.subspan(offset, count));
      thrust::copy(set.out.begin(), set.out.begin() + static_cast<std::ptrdiff_t>(count), out.data() + offset);
    }
#endif
  }

  // Answers the chunk already in set.accounts / set.times into set.out. `host_accounts`
  // is the same chunk in host memory (its first and last account bound the merge).
  template <class Policy>
  void answer_chunk(const Policy& policy, buffer_set& set, std::span<const account_index> host_accounts) const {
    const u64 count = host_accounts.size();
    const device::index_view view = index_.view();
    if (!device::queries_sorted(policy, raw(set.accounts), raw(set.times), count)) {
      device::answer_by_search(policy, view, raw(set.accounts), raw(set.times), count, raw(set.out));
      return;
    }
    // Sorted: only the breakpoints of the accounts from the first query's to the last's.
    const u64 accounts_total = index_.account_count;
    const u64 first = std::min<u64>(host_accounts.front(), accounts_total);
    const u64 last = std::min<u64>(u64{host_accounts.back()} + 1, accounts_total);
    const u64 slice_begin = host_offsets_[first];
    const u64 slice_end = std::max(slice_begin, host_offsets_[last]);
    device::index_view slice = view;
    slice.accounts += slice_begin;
    slice.times += slice_begin;
    slice.balances += slice_begin;
    if (slice.slopes != nullptr) slice.slopes += slice_begin;
    const u64 merged = slice_end - slice_begin + count;
    reserve_at_least(set.tags, merged);
    reserve_at_least(set.last, merged);
    device::answer_by_merge(policy, slice, slice_end - slice_begin, raw(set.accounts), raw(set.times), count,
                            raw(set.tags), raw(set.last), raw(set.out));
  }

#if GPUCREDIT_DEVICE_IS_CUDA
  // Two streams take chunks in turn: while one computes, the other's next input is on
  // its way to the device and its last answers on their way back.
  void answer_overlapped(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                         std::span<amount_t> out) const {
    const u64 n = accounts.size();
    const u64 chunk = std::min(batch_, n);
    for (buffer_set& set : sets_) {
      // A call that threw midway may have left copies in flight into the staging buffers.
      GPUCREDIT_CUDA_TRY(cudaStreamSynchronize(set.stream));
      reserve_at_least(set.accounts, chunk);
      reserve_at_least(set.times, chunk);
      reserve_at_least(set.out, chunk);
      set.staged_accounts.reserve(chunk);
      set.staged_times.reserve(chunk);
      set.staged_out.reserve(chunk);
      set.pending_count = 0;
    }
    auto collect = [&](buffer_set& set) {  // waits for the set's answers and keeps them
      GPUCREDIT_CUDA_TRY(cudaStreamSynchronize(set.stream));
      std::memcpy(out.data() + set.pending_offset, set.staged_out.data(), set.pending_count * sizeof(i64));
      set.pending_count = 0;
    };
    auto send = [&](buffer_set& set, u64 offset, u64 count) {  // stages a chunk and starts its copy in
      std::memcpy(set.staged_accounts.data(), accounts.data() + offset, count * sizeof(u32));
      std::memcpy(set.staged_times.data(), times.data() + offset, count * sizeof(i64));
      GPUCREDIT_CUDA_TRY(cudaMemcpyAsync(raw(set.accounts), set.staged_accounts.data(), count * sizeof(u32),
                                         cudaMemcpyHostToDevice, set.stream));
      GPUCREDIT_CUDA_TRY(cudaMemcpyAsync(raw(set.times), set.staged_times.data(), count * sizeof(i64),
                                         cudaMemcpyHostToDevice, set.stream));
    };
    const u64 chunks = (n + chunk - 1) / chunk;
    send(sets_[0], 0, std::min(chunk, n));
    for (u64 k = 0; k < chunks; ++k) {
      buffer_set& set = sets_[k % 2];
      buffer_set& other = sets_[(k + 1) % 2];
      const u64 offset = k * chunk;
      const u64 count = std::min(chunk, n - offset);
      if (k + 1 < chunks) {
        if (other.pending_count != 0) collect(other);
        send(other, offset + chunk, std::min(chunk, n - offset - chunk));
      }
      answer_chunk(thrust::cuda::par(set.temporary).on(set.stream), set, accounts.subspan(offset, count));
      GPUCREDIT_CUDA_TRY(cudaMemcpyAsync(set.staged_out.data(), raw(set.out), count * sizeof(i64),
                                         cudaMemcpyDeviceToHost, set.stream));
      set.pending_offset = offset;
      set.pending_count = count;
    }
    for (buffer_set& set : sets_) {
      if (set.pending_count != 0) collect(set);
    }
  }
  static constexpr int stream_count = 2;
#else
  static constexpr int stream_count = 1;
#endif

  device::device_index index_;
  int device_ = 0;  // the CUDA device the index lives on
  std::vector<u64> host_offsets_;
  u64 batch_ = chunk_queries_max;  // queries per chunk
  mutable std::mutex mutex_;
  mutable buffer_set sets_[stream_count];
};

}  // namespace

namespace detail {

bool device_engine_built() noexcept { return true; }

bool device_engine_available() {
#if GPUCREDIT_DEVICE_IS_CUDA
  return chosen_device().usable;
#else
  return true;  // the OMP build runs the device logic on the CPU
#endif
}

std::string device_engine_status() {
#if GPUCREDIT_DEVICE_IS_CUDA
  return chosen_device().description;
#else
  return "the device logic on the CPU (Thrust's OpenMP system; a test build)";
#endif
}

std::unique_ptr<engine::impl> make_device_engine(const interval_table& intervals, std::size_t account_count) {
  try {
    return std::make_unique<device_engine>(intervals, account_count);
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
