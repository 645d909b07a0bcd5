// The memory the CUDA engine runs on (internal, cuda/ only): device arrays, pinned host
// staging, streams, and a stream-ordered pool for Thrust's temporary storage. Nothing
// here throws from a destructor: after a sticky CUDA error every release is attempted
// and its error ignored, so a failed device never terminates the process (Thrust's own
// containers would). Included by engine.cu in both of its builds: on Thrust's OpenMP
// system a device array is host memory and the CUDA-only types do not exist.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "gpucredit/error.hpp"

#if THRUST_DEVICE_SYSTEM == THRUST_DEVICE_SYSTEM_CUDA
#include <cuda_runtime.h>
#define GPUCREDIT_DEVICE_IS_CUDA 1
#else
#define GPUCREDIT_DEVICE_IS_CUDA 0
#endif

namespace gpucredit::device {

#if GPUCREDIT_DEVICE_IS_CUDA

inline void cuda_check(cudaError_t status, const char* what) {
  if (status != cudaSuccess) {
    cudaGetLastError();  // a non-sticky error is cleared; a sticky one stays, and says so next time
    throw device_error(std::string("CUDA: ") + what + ": " + cudaGetErrorString(status));
  }
}
#define GPUCREDIT_CUDA_TRY(call) ::gpucredit::device::cuda_check((call), #call)

/// An array in device memory that only grows (`reserve` keeps nothing), so that the hot
/// path reuses it; freed without throwing.
template <class T>
class device_array {
 public:
  device_array() = default;
  device_array(const device_array&) = delete;
  device_array& operator=(const device_array&) = delete;
  device_array(device_array&& o) noexcept : data_(std::exchange(o.data_, nullptr)), size_(std::exchange(o.size_, 0)) {}
  device_array& operator=(device_array&& o) noexcept {
    std::swap(data_, o.data_);
    std::swap(size_, o.size_);
    return *this;
  }
  ~device_array() {
    if (data_ != nullptr) cudaFree(data_);  // its error, if any, is ignored
  }
  /// At least `count` elements, contents undefined.
  void reserve(std::uint64_t count) {
    if (count <= size_) return;
    if (data_ != nullptr) cudaFree(data_);
    data_ = nullptr;
    size_ = 0;
    GPUCREDIT_CUDA_TRY(cudaMalloc(&data_, count * sizeof(T)));
    size_ = count;
  }
  /// Exactly the `count` elements at `host` (blocks).
  void upload(const T* host, std::uint64_t count) {
    reserve(count);
    if (count != 0) GPUCREDIT_CUDA_TRY(cudaMemcpy(data_, host, count * sizeof(T), cudaMemcpyHostToDevice));
  }
  /// The first `count` elements into `host` (blocks).
  void download(T* host, std::uint64_t count) const {
    if (count != 0) GPUCREDIT_CUDA_TRY(cudaMemcpy(host, data_, count * sizeof(T), cudaMemcpyDeviceToHost));
  }
  T* data() const noexcept { return data_; }
  std::uint64_t size() const noexcept { return size_; }

 private:
  T* data_ = nullptr;
  std::uint64_t size_ = 0;
};

/// Page-locked host memory, for copies the device runs on its own; only grows.
template <class T>
class pinned_array {
 public:
  pinned_array() = default;
  pinned_array(const pinned_array&) = delete;
  pinned_array& operator=(const pinned_array&) = delete;
  ~pinned_array() {
    if (data_ != nullptr) cudaFreeHost(data_);
  }
  void reserve(std::uint64_t count) {
    if (count <= size_) return;
    if (data_ != nullptr) cudaFreeHost(data_);
    data_ = nullptr;
    size_ = 0;
    GPUCREDIT_CUDA_TRY(cudaMallocHost(&data_, count * sizeof(T)));
    size_ = count;
  }
  T* data() const noexcept { return data_; }

 private:
  T* data_ = nullptr;
  std::uint64_t size_ = 0;
};

/// A non-blocking stream, destroyed without throwing.
class stream {
 public:
  stream() { GPUCREDIT_CUDA_TRY(cudaStreamCreateWithFlags(&s_, cudaStreamNonBlocking)); }
  stream(const stream&) = delete;
  stream& operator=(const stream&) = delete;
  ~stream() {
    if (s_ != nullptr) cudaStreamDestroy(s_);
  }
  cudaStream_t get() const noexcept { return s_; }
  void synchronize() const { GPUCREDIT_CUDA_TRY(cudaStreamSynchronize(s_)); }

 private:
  cudaStream_t s_ = nullptr;
};

/// A memory pool of one device that keeps what is freed into it (release threshold: all
/// of it), so that after the first batches Thrust's temporaries cost no cudaMalloc.
class memory_pool {
 public:
  explicit memory_pool(int device) {
    cudaMemPoolProps props{};
    props.allocType = cudaMemAllocationTypePinned;
    props.location.type = cudaMemLocationTypeDevice;
    props.location.id = device;
    GPUCREDIT_CUDA_TRY(cudaMemPoolCreate(&pool_, &props));
    std::uint64_t keep_all = UINT64_MAX;
    GPUCREDIT_CUDA_TRY(cudaMemPoolSetAttribute(pool_, cudaMemPoolAttrReleaseThreshold, &keep_all));
  }
  memory_pool(const memory_pool&) = delete;
  memory_pool& operator=(const memory_pool&) = delete;
  ~memory_pool() {
    if (pool_ != nullptr) cudaMemPoolDestroy(pool_);
  }
  cudaMemPool_t get() const noexcept { return pool_; }

 private:
  cudaMemPool_t pool_ = nullptr;
};

/// Thrust's temporary storage, allocated and freed in stream order from a pool: an
/// algorithm run with `thrust::cuda::par_nosync(allocator).on(stream)` neither
/// allocates from the driver nor waits for its stream.
class stream_allocator {
 public:
  using value_type = char;
  stream_allocator(cudaMemPool_t pool, cudaStream_t s) noexcept : pool_(pool), stream_(s) {}
  char* allocate(std::ptrdiff_t bytes) {
    void* p = nullptr;
    GPUCREDIT_CUDA_TRY(cudaMallocFromPoolAsync(&p, static_cast<std::size_t>(bytes), pool_, stream_));
    return static_cast<char*>(p);
  }
  void deallocate(char* p, std::size_t) noexcept { cudaFreeAsync(p, stream_); }

 private:
  cudaMemPool_t pool_;
  cudaStream_t stream_;
};

#else  // Thrust's OpenMP system: device memory is host memory.

template <class T>
class device_array {
 public:
  void reserve(std::uint64_t count) {
    if (count > v_.size()) v_.resize(count);
  }
  void upload(const T* host, std::uint64_t count) { v_.assign(host, host + count); }
  void download(T* host, std::uint64_t count) const { std::copy(v_.begin(), v_.begin() + static_cast<std::ptrdiff_t>(count), host); }
  T* data() noexcept { return v_.data(); }
  const T* data() const noexcept { return v_.data(); }
  std::uint64_t size() const noexcept { return v_.size(); }

 private:
  std::vector<T> v_;
};

#endif  // GPUCREDIT_DEVICE_IS_CUDA

}  // namespace gpucredit::device
