// GPU query benchmark: kernel-only throughput of the CUDA engine's query paths on
// resident synthetic step indexes (10^6..10^8 breakpoints) for sorted and random batches
// (10^6..10^9 queries), and the CUDA engine end to end through its public API (host
// spans in, host vector out). Every configuration checks a sample of its answers
// against a host binary search first, and prints a checksum of all answers that
// bench/gpu_peers.py reproduces with CuPy and PyTorch on the same data.
//
// Output: CSV on stdout, one row per measurement:
//   kind,breakpoints,queries,order,method,ms,gqueries_per_s,gbytes_per_s,roofline_share,checksum
// Usage: gpu_bench [--quick]   (--quick: the smallest sizes only, for a dry run)
#include <cuda_runtime.h>
#include <thrust/device_vector.h>
#include <thrust/host_vector.h>
#include <thrust/reduce.h>
#include <thrust/tabulate.h>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "../cuda/device_index.cuh"
#include "gpucredit/engine.hpp"

namespace {

using namespace gpucredit::device;

constexpr double hbm_bytes_per_s = 4.8e12;  // H200
// Bytes each algorithm moves per query, as it moves them (for the roofline share):
// search: account 4 + time 8 + answer 8, the offsets 16, and one 8-byte time per probe
// of the binary search (log2(per) + 1) plus the balance found; merge: its queries and
// answers (20), the breakpoints' keys and balances (4 + 8 + 8 each) and the merge's
// tags and carried indices (8 + 8, each written and read) over breakpoints + queries.
double search_bytes(u64 per) { return 20.0 + 16.0 + 8.0 * (std::ceil(std::log2(static_cast<double>(per))) + 1) + 8.0; }
double merge_bytes(u64 breakpoints, u64 queries) {
  return 20.0 + (20.0 * static_cast<double>(breakpoints) + 32.0 * static_cast<double>(breakpoints + queries)) /
                    static_cast<double>(queries);
}
constexpr int repeats = 5;

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess) throw std::runtime_error(std::string(what) + ": " + cudaGetErrorString(status));
}

// splitmix64: the generator gpu_peers.py reimplements with NumPy's uint64 arithmetic.
__host__ __device__ inline u64 mix(u64 x) {
  x += 0x9E3779B97F4A7C15ULL;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ULL;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBULL;
  return x ^ (x >> 31);
}

// Breakpoint i of `per` per account: account i / per, time (i % per) * 16 + mix(i) % 8.
struct make_account {
  u64 per;
  __host__ __device__ u32 operator()(u64 i) const { return static_cast<u32>(i / per); }
};
struct make_time {
  u64 per;
  __host__ __device__ i64 operator()(u64 i) const { return static_cast<i64>((i % per) * 16 + mix(i) % 8); }
};
struct make_balance {
  __host__ __device__ i64 operator()(u64 i) const { return static_cast<i64>(1 + mix(i ^ 0x5555ULL) % 1000); }
};
// Random query j: account mix(j + 1) % accounts, time in [-8, per * 16 + 8).
struct random_account {
  u64 accounts;
  __host__ __device__ u32 operator()(u64 j) const { return static_cast<u32>(mix(j + 1) % accounts); }
};
struct random_time {
  u64 per;
  __host__ __device__ i64 operator()(u64 j) const { return static_cast<i64>(mix(mix(j + 1)) % (per * 16 + 16)) - 8; }
};
// Sorted query j of q: spread evenly over (account, time).
struct sorted_account {
  u64 accounts, q;
  __host__ __device__ u32 operator()(u64 j) const { return static_cast<u32>(j * accounts / q); }
};
struct sorted_time {
  u64 accounts, q, per;
  __host__ __device__ i64 operator()(u64 j) const {
    return static_cast<i64>(((j * accounts) % q) * (per * 16) / q);
  }
};

struct as_u64 {
  __host__ __device__ u64 operator()(i64 v) const { return static_cast<u64>(v); }
};

// A synthetic step index in device memory (the engine's own index is built from a
// ledger; the kernels only see an index_view).
struct device_index {
  thrust::device_vector<u64> offsets;
  thrust::device_vector<u32> accounts;
  thrust::device_vector<i64> times;
  thrust::device_vector<i64> balances;
  u64 account_count = 0;
  index_view view() const {
    return {thrust::raw_pointer_cast(offsets.data()), thrust::raw_pointer_cast(accounts.data()),
            thrust::raw_pointer_cast(times.data()), thrust::raw_pointer_cast(balances.data()), nullptr, account_count};
  }
};

device_index synthetic_index(u64 breakpoints, u64 per) {
  device_index index;
  index.account_count = breakpoints / per;
  index.accounts.resize(breakpoints);
  index.times.resize(breakpoints);
  index.balances.resize(breakpoints);
  thrust::tabulate(index.accounts.begin(), index.accounts.end(), make_account{per});
  thrust::tabulate(index.times.begin(), index.times.end(), make_time{per});
  thrust::tabulate(index.balances.begin(), index.balances.end(), make_balance{});
  index.offsets.resize(index.account_count + 1);
  thrust::tabulate(index.offsets.begin(), index.offsets.end(), [per] __host__ __device__(u64 a) { return a * per; });
  return index;
}

struct timer {
  cudaEvent_t start{}, stop{};
  timer() {
    check_cuda(cudaEventCreate(&start), "event");
    check_cuda(cudaEventCreate(&stop), "event");
  }
  ~timer() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  template <class F>
  double best_ms(F&& run) {
    run();  // warm up
    check_cuda(cudaDeviceSynchronize(), "warm-up");
    double best = 1e300;
    for (int r = 0; r < repeats; ++r) {
      check_cuda(cudaEventRecord(start), "record");
      run();
      check_cuda(cudaEventRecord(stop), "record");
      check_cuda(cudaEventSynchronize(stop), "sync");
      float ms = 0;
      check_cuda(cudaEventElapsedTime(&ms, start, stop), "elapsed");
      best = std::min(best, static_cast<double>(ms));
    }
    return best;
  }
};

// Checks 4096 answers spread over the batch against a binary search on the host.
void check_sample(const device_index& index, const thrust::device_vector<u32>& accounts,
                  const thrust::device_vector<i64>& times, const thrust::device_vector<i64>& out) {
  const thrust::host_vector<u64> offsets = index.offsets;
  const thrust::host_vector<i64> bp_times = index.times;
  const thrust::host_vector<i64> balances = index.balances;
  const u64 q = accounts.size();
  for (u64 s = 0; s < 4096; ++s) {
    const u64 j = (s * 2654435761ULL) % q;
    const u32 a = accounts[j];
    const i64 t = times[j];
    const auto first = bp_times.begin() + static_cast<std::ptrdiff_t>(offsets[a]);
    const auto last = bp_times.begin() + static_cast<std::ptrdiff_t>(offsets[a + 1]);
    const auto after = std::upper_bound(first, last, t);
    const i64 want = after == first ? 0 : balances[static_cast<u64>(after - bp_times.begin()) - 1];
    if (out[j] != want) {
      throw std::runtime_error("wrong answer at query " + std::to_string(j) + ": " + std::to_string(out[j]) +
                               " instead of " + std::to_string(want));
    }
  }
}

void row(const char* kind, u64 b, u64 q, const char* order, const char* method, double ms, u64 checksum,
         double bytes_per_query) {
  const double qps = static_cast<double>(q) / (ms / 1e3);
  const double bytes = qps * bytes_per_query;
  std::printf("%s,%llu,%llu,%s,%s,%.4f,%.3f,%.1f,%.3f,%llu\n", kind, static_cast<unsigned long long>(b),
              static_cast<unsigned long long>(q), order, method, ms, qps / 1e9, bytes / 1e9, bytes / hbm_bytes_per_s,
              static_cast<unsigned long long>(checksum));
  std::fflush(stdout);
}

void kernel_only(u64 breakpoints, u64 queries, u64 per) {
  const device_index index = synthetic_index(breakpoints, per);
  const index_view view = index.view();
  for (const bool sorted : {true, false}) {
    thrust::device_vector<u32> accounts(queries);
    thrust::device_vector<i64> times(queries);
    thrust::device_vector<i64> out(queries);
    if (sorted) {
      thrust::tabulate(accounts.begin(), accounts.end(), sorted_account{index.account_count, queries});
      thrust::tabulate(times.begin(), times.end(), sorted_time{index.account_count, queries, per});
    } else {
      thrust::tabulate(accounts.begin(), accounts.end(), random_account{index.account_count});
      thrust::tabulate(times.begin(), times.end(), random_time{per});
    }
    timer clock;
    const u32* a = thrust::raw_pointer_cast(accounts.data());
    const i64* t = thrust::raw_pointer_cast(times.data());
    i64* o = thrust::raw_pointer_cast(out.data());
    const double search_ms = clock.best_ms([&] { answer_by_search(thrust::device, view, a, t, queries, o); });
    check_sample(index, accounts, times, out);
    const u64 checksum = thrust::transform_reduce(out.begin(), out.end(), as_u64(), u64{0}, thrust::plus<u64>());
    row("kernel", breakpoints, queries, sorted ? "sorted" : "random", "search", search_ms, checksum,
        search_bytes(per));
    if (sorted) {
      // Each algorithm is checked on its own answers: `out` is cleared first, and the
      // merge's checksum must equal the search's.
      thrust::device_vector<i64> tags(breakpoints + queries);
      thrust::device_vector<i64> last(breakpoints + queries);
      thrust::fill(out.begin(), out.end(), i64{-1});
      const double merge_ms = clock.best_ms([&] {
        answer_by_merge(thrust::device, view, breakpoints, a, t, queries, thrust::raw_pointer_cast(tags.data()),
                        thrust::raw_pointer_cast(last.data()), o);
      });
      check_sample(index, accounts, times, out);
      const u64 merge_checksum = thrust::transform_reduce(out.begin(), out.end(), as_u64(), u64{0}, thrust::plus<u64>());
      if (merge_checksum != checksum) throw std::runtime_error("merge answers differ from search answers");
      row("kernel", breakpoints, queries, "sorted", "merge", merge_ms, merge_checksum, merge_bytes(breakpoints, queries));
    }
  }
}

// The public API end to end: host spans in, host vector out (transfers included).
void end_to_end(u64 breakpoints, u64 queries, u64 per) {
  // One interval per breakpoint: [time_k, time_{k+1} - 1] holding the balance, so the
  // engine builds the synthetic index itself.
  gpucredit::interval_table intervals;
  const u64 accounts_total = breakpoints / per;
  for (u64 i = 0; i < breakpoints; ++i) {
    const bool last_of_account = (i % per) == per - 1;
    const i64 begin = make_time{per}(i);
    const i64 end = last_of_account ? begin : make_time{per}(i + 1) - 1;
    intervals.push(static_cast<u32>(i / per), static_cast<u32>(i), begin, end, make_balance{}(i));
  }
  const gpucredit::engine engine = gpucredit::engine::create(intervals, accounts_total, gpucredit::backend::cuda);
  std::vector<u32> accounts(queries);
  std::vector<i64> times(queries);
  for (u64 j = 0; j < queries; ++j) {
    accounts[j] = random_account{accounts_total}(j);
    times[j] = random_time{per}(j);
  }
  double best = 1e300;
  u64 checksum = 0;
  for (int r = 0; r < 3; ++r) {
    const auto start = std::chrono::steady_clock::now();
    const std::vector<i64> out = engine.balances(accounts, times);
    const auto stop = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double, std::milli>(stop - start).count());
    checksum = 0;
    for (const i64 v : out) checksum += static_cast<u64>(v);
  }
  // Every answer checked against the CPU engine's.
  const gpucredit::engine reference = gpucredit::engine::create(intervals, accounts_total, gpucredit::backend::cpu);
  if (engine.balances(accounts, times) != reference.balances(accounts, times)) {
    throw std::runtime_error("end to end: the device's answers differ from the CPU engine's");
  }
  row("end_to_end", breakpoints, queries, "random", "engine.balances", best, checksum, 20.0);  // host side: in 12, out 8
}

// Sorted batches by search and by merge at several breakpoints per query: where merge
// stops winning is the crossover the engine takes (GPUCREDIT_MERGE_CROSSOVER_PERCENT).
void crossover(u64 breakpoints, u64 per) {
  const device_index index = synthetic_index(breakpoints, per);
  const index_view view = index.view();
  double crossover_ratio = 0;
  for (const u64 divisor_x4 : {1ULL, 4ULL, 16ULL, 64ULL, 256ULL}) {  // queries = breakpoints * 16 / divisor_x4
    const u64 queries = breakpoints * 16 / divisor_x4;
    const double ratio = static_cast<double>(breakpoints) / static_cast<double>(queries);
    thrust::device_vector<u32> accounts(queries);
    thrust::device_vector<i64> times(queries);
    thrust::device_vector<i64> out(queries);
    thrust::device_vector<i64> tags(breakpoints + queries);
    thrust::device_vector<i64> last(breakpoints + queries);
    thrust::tabulate(accounts.begin(), accounts.end(), sorted_account{index.account_count, queries});
    thrust::tabulate(times.begin(), times.end(), sorted_time{index.account_count, queries, per});
    const u32* a = thrust::raw_pointer_cast(accounts.data());
    const i64* t = thrust::raw_pointer_cast(times.data());
    i64* o = thrust::raw_pointer_cast(out.data());
    timer clock;
    const double search_ms = clock.best_ms([&] { answer_by_search(thrust::device, view, a, t, queries, o); });
    check_sample(index, accounts, times, out);
    thrust::fill(out.begin(), out.end(), i64{-1});
    const double merge_ms = clock.best_ms([&] {
      answer_by_merge(thrust::device, view, breakpoints, a, t, queries, thrust::raw_pointer_cast(tags.data()),
                      thrust::raw_pointer_cast(last.data()), o);
    });
    check_sample(index, accounts, times, out);
    row("crossover", breakpoints, queries, "sorted", "search", search_ms, 0, search_bytes(per));
    row("crossover", breakpoints, queries, "sorted", "merge", merge_ms, 0, merge_bytes(breakpoints, queries));
    if (merge_ms < search_ms) crossover_ratio = std::max(crossover_ratio, ratio);
  }
  std::fprintf(stderr, "crossover: merge beat search up to %.4g breakpoints per query (set "
                       "GPUCREDIT_MERGE_CROSSOVER_PERCENT=%d to use it)\n",
               crossover_ratio, static_cast<int>(crossover_ratio * 100));
}

// Pinned host memory to the device and back: the link the cost model assumes 25 GB/s of.
void link(u64 bytes) {
  void* host = nullptr;
  void* dev = nullptr;
  check_cuda(cudaMallocHost(&host, bytes), "pinned");
  check_cuda(cudaMalloc(&dev, bytes), "device");
  std::memset(host, 1, bytes);
  timer clock;
  const double in_ms = clock.best_ms([&] { check_cuda(cudaMemcpy(dev, host, bytes, cudaMemcpyHostToDevice), "in"); });
  const double out_ms = clock.best_ms([&] { check_cuda(cudaMemcpy(host, dev, bytes, cudaMemcpyDeviceToHost), "out"); });
  std::printf("link,%llu,0,pinned,host_to_device,%.4f,0,%.1f,0,0\n", static_cast<unsigned long long>(bytes), in_ms,
              static_cast<double>(bytes) / (in_ms / 1e3) / 1e9);
  std::printf("link,%llu,0,pinned,device_to_host,%.4f,0,%.1f,0,0\n", static_cast<unsigned long long>(bytes), out_ms,
              static_cast<double>(bytes) / (out_ms / 1e3) / 1e9);
  cudaFree(dev);
  cudaFreeHost(host);
}

// A report grid through the public API: `accounts` x `times` balances and the fleet
// totals, on the device (totals only, then with every balance back) and on the CPU
// engine with every host core; the totals must be equal, and sampled balances too.
void grid_vs_cpu(u64 accounts_total, u64 times, u64 per) {
  gpucredit::interval_table intervals;
  for (u64 i = 0; i < accounts_total * per; ++i) {
    const bool last_of_account = (i % per) == per - 1;
    const i64 begin = make_time{per}(i);
    const i64 end = last_of_account ? begin + 64 : make_time{per}(i + 1) - 1;
    intervals.push(static_cast<u32>(i / per), static_cast<u32>(i), begin, end, make_balance{}(i));
  }
  const gpucredit::engine gpu = gpucredit::engine::create(intervals, accounts_total, gpucredit::backend::cuda);
  const gpucredit::engine cpu = gpucredit::engine::create(intervals, accounts_total, gpucredit::backend::cpu);
  intervals = gpucredit::interval_table{};
  std::vector<u32> accounts(accounts_total);
  for (u64 a = 0; a < accounts_total; ++a) accounts[a] = static_cast<u32>(a);
  const gpucredit::time_grid g{-8, static_cast<i64>(std::max<u64>(1, per * 16 / times)), times};
  std::vector<gpucredit::total_t> gpu_fleet(times);
  std::vector<gpucredit::total_t> cpu_fleet(times);
  auto best_of = [](int runs, auto&& fn) {
    double best = 1e300;
    for (int r = 0; r < runs; ++r) {
      const auto start = std::chrono::steady_clock::now();
      fn();
      best = std::min(best, std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count());
    }
    return best;
  };
  const double gpu_totals_ms = best_of(3, [&] { gpu.grid(accounts, g, gpu_fleet); });
  const double cpu_totals_ms = best_of(2, [&] { cpu.grid(accounts, g, cpu_fleet); });
  if (gpu_fleet != cpu_fleet) throw std::runtime_error("grid: device fleet totals differ from the CPU engine's");
  std::vector<i64> balances(accounts_total * times);
  const double gpu_all_ms = best_of(2, [&] { gpu.grid(accounts, g, gpu_fleet, balances); });
  if (gpu_fleet != cpu_fleet) throw std::runtime_error("grid: device fleet totals (with balances) differ");
  for (u64 s = 0; s < 4096; ++s) {
    const u64 cell = (s * 2654435761ULL) % balances.size();
    const auto want = cpu.balance(static_cast<u32>(cell / times), g.at(cell % times)).value_or(0);
    if (balances[cell] != want) throw std::runtime_error("grid: a device balance differs from the CPU engine's");
  }
  const u64 cells = accounts_total * times;
  u64 checksum = 0;
  for (const auto& v : cpu_fleet) checksum += static_cast<u64>(v);
  row("grid", accounts_total * per, cells, "grid", "cuda_totals_only", gpu_totals_ms, checksum, 0.0);
  row("grid", accounts_total * per, cells, "grid", "cuda_with_balances", gpu_all_ms, checksum, 8.0);
  row("grid", accounts_total * per, cells, "grid", "cpu_all_cores_totals_only", cpu_totals_ms, checksum, 0.0);
  std::fprintf(stderr, "grid %llu x %llu: device %.1f ms (totals) / %.1f ms (with balances), CPU engine %.1f ms on %u "
                       "cores: %.1fx / %.1fx\n",
               static_cast<unsigned long long>(accounts_total), static_cast<unsigned long long>(times), gpu_totals_ms,
               gpu_all_ms, cpu_totals_ms, std::thread::hardware_concurrency(), cpu_totals_ms / gpu_totals_ms,
               cpu_totals_ms / gpu_all_ms);
}

}  // namespace

int main(int argc, char** argv) {
  const bool quick = argc > 1 && std::strcmp(argv[1], "--quick") == 0;
  try {
    int devices = 0;
    if (cudaGetDeviceCount(&devices) != cudaSuccess || devices == 0) {
      std::fprintf(stderr, "gpu_bench: no CUDA device\n");
      return 2;
    }
    cudaDeviceProp prop{};
    check_cuda(cudaGetDeviceProperties(&prop, 0), "properties");
    std::fprintf(stderr, "device: %s, %.1f GiB\n", prop.name, static_cast<double>(prop.totalGlobalMem) / (1 << 30));
    std::printf("kind,breakpoints,queries,order,method,ms,gqueries_per_s,gbytes_per_s,roofline_share,checksum\n");
    const u64 per = 100;  // breakpoints per account
    const std::vector<u64> breakpoint_sizes = quick ? std::vector<u64>{1000000} : std::vector<u64>{1000000, 10000000, 100000000};
    const std::vector<u64> query_sizes = quick ? std::vector<u64>{1000000} : std::vector<u64>{1000000, 10000000, 100000000, 1000000000};
    for (const u64 b : breakpoint_sizes) {
      for (const u64 q : query_sizes) kernel_only(b, q, per);
    }
    end_to_end(quick ? 1000000 : 10000000, quick ? 1000000 : 100000000, per);
    link(quick ? (u64{1} << 28) : (u64{1} << 30));
    crossover(quick ? 1000000 : 10000000, per);
    grid_vs_cpu(quick ? 10000 : 1000000, 720, 20);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "gpu_bench: %s\n", e.what());
    return 1;
  }
  return 0;
}
