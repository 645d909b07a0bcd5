// The device resources the CUDA engine runs on (internal, cuda/ only): Thrust's
// temporary storage from a caching pool, pinned host staging buffers, and the buffer
// set of one stream. engine.cu decides what runs where; this file only owns memory.
// Included by engine.cu in both of its builds (nvcc, and the host compiler with
// Thrust's OpenMP system, where only the device vectors exist).
#pragma once

#include <map>
#include <string>

#include "device_index.cuh"
#include "gpucredit/error.hpp"

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#include <cuda_runtime.h>
#define GPUCREDIT_DEVICE_IS_CUDA 1
#else
#define GPUCREDIT_DEVICE_IS_CUDA 0
#endif

namespace gpucredit::device {

template <class T>
T* raw(thrust::device_vector<T>& v) {
  return thrust::raw_pointer_cast(v.data());
}

// Grows `v` to at least `count` elements; never shrinks, so the hot path reuses it.
template <class T>
void reserve_at_least(thrust::device_vector<T>& v, u64 count) {
  if (v.size() < count) v.resize(count);
}

#if GPUCREDIT_DEVICE_IS_CUDA

inline void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw device_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
}
#define GPUCREDIT_CUDA_TRY(call) ::gpucredit::device::cuda_check((call), #call)

// Thrust's temporary storage from a pool: blocks are kept and reused, so a steady
// stream of batches allocates nothing after the first ones. One per stream; used from
// the calling thread only, and every algorithm run with it synchronizes its stream
// before returning, so a freed block is idle.
class cached_allocator {
 public:
  using value_type = char;
  cached_allocator() = default;
  cached_allocator(const cached_allocator&) = delete;
  cached_allocator& operator=(const cached_allocator&) = delete;
  ~cached_allocator() {
    for (auto& [size, p] : free_) cudaFree(p);
    for (auto& [p, size] : used_) cudaFree(p);
  }
  char* allocate(std::ptrdiff_t bytes) {
    const auto want = static_cast<std::size_t>(bytes);
    auto found = free_.lower_bound(want);
    char* p = nullptr;
    std::size_t size = want;
    if (found != free_.end()) {
      size = found->first;
      p = found->second;
      free_.erase(found);
    } else {
      GPUCREDIT_CUDA_TRY(cudaMalloc(&p, want));
    }
    used_.emplace(p, size);
    return p;
  }
  void deallocate(char* p, std::size_t) {
    auto found = used_.find(p);
    free_.emplace(found->second, p);
    used_.erase(found);
  }

 private:
  std::multimap<std::size_t, char*> free_;
  std::map<char*, std::size_t> used_;
};

template <class T>
class pinned_buffer {
 public:
  pinned_buffer() = default;
  pinned_buffer(const pinned_buffer&) = delete;
  pinned_buffer& operator=(const pinned_buffer&) = delete;
  ~pinned_buffer() {
    if (data_ != nullptr) cudaFreeHost(data_);
  }
  void reserve(u64 count) {
    if (count <= size_) return;
    if (data_ != nullptr) cudaFreeHost(data_);
    data_ = nullptr;
    GPUCREDIT_CUDA_TRY(cudaMallocHost(&data_, count * sizeof(T)));
    size_ = count;
  }
  T* data() const noexcept { return data_; }

 private:
  T* data_ = nullptr;
  u64 size_ = 0;
};

#endif  // GPUCREDIT_DEVICE_IS_CUDA

// Buffers of one stream (on the OMP build, the only set).
struct buffer_set {
  thrust::device_vector<u32> accounts;
  thrust::device_vector<i64> times;
  thrust::device_vector<i64> out;
  thrust::device_vector<i64> tags;  // merge path scratch
  thrust::device_vector<i64> last;
#if GPUCREDIT_DEVICE_IS_CUDA
  cudaStream_t stream = nullptr;
  cached_allocator temporary;
  pinned_buffer<u32> staged_accounts;
  pinned_buffer<i64> staged_times;
  pinned_buffer<i64> staged_out;
  u64 pending_offset = 0;  // where the answers in flight go
  u64 pending_count = 0;
#endif
};


}  // namespace gpucredit::device
