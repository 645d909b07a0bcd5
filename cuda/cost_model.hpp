// Where `--backend auto` answers a batch (internal, plain C++): the device or the host's
// cores, whichever the model expects to finish first. The model is a sum of the costs
// that dominate each side, with the inputs below; cuda/README.md gives the reasoning
// and bench/RESULTS.md what has been measured of them.
#pragma once

#include <algorithm>
#include <cstdint>

namespace gpucredit::device {

/// What the model knows of a batch.
struct batch_shape {
  std::uint64_t queries = 0;           ///< balances to compute
  bool sorted = false;                 ///< by (account, time): the host's forward pass
  bool generated_on_device = false;    ///< a report grid: no query column crosses to the device
  std::uint64_t bytes_back = 0;        ///< what crosses back to the host in all
};

struct cost_model {
  // The host engine, nanoseconds per query on one core (issue figures for this project's
  // fleet on a 2-core machine of the CI class: 29 M q/s unsorted, 96 M q/s sorted).
  double host_random_ns = 69.0;
  double host_sorted_ns = 21.0;
  unsigned host_cores = 1;
  // The device side. Link: PCIe 5.0 x16 moves at most 64 GB/s each way; pinned copies
  // reach about half of it in practice, so the model takes 25 GB/s until the device check
  // measures it. Staging: one core copies about 4 GB/s into pinned memory.
  double link_bytes_per_s = 25e9;
  double staging_bytes_per_core_per_s = 4e9;
  // A chunk costs a few kernel launches and one stream synchronization: 50 us is taken
  // for all of them (launches cost 5-10 us each).
  double chunk_overhead_s = 50e-6;
  std::uint64_t chunk_queries = std::uint64_t{1} << 24;
  // The device's own compute: far above the link, so it only counts for batches that
  // never cross it (the targets: 5 G random, 50 G sorted queries/s on an H200).
  double device_random_per_s = 5e9;
  double device_sorted_per_s = 50e9;

  /// Seconds the host's cores take.
  double host_seconds(const batch_shape& b) const {
    const double per_query = (b.sorted ? host_sorted_ns : host_random_ns) * 1e-9;
    return static_cast<double>(b.queries) * per_query / std::max(1U, host_cores);
  }
  /// Seconds the device path takes: staging and the copy in (12 bytes a query: account
  /// and time) unless the grid is generated there, compute, the copy back, and the
  /// fixed cost of each chunk. Copies and compute overlap across chunks, so the longest
  /// of them bounds the whole.
  double device_seconds(const batch_shape& b) const {
    const double q = static_cast<double>(b.queries);
    const double in_bytes = b.generated_on_device ? 0.0 : 12.0 * q;
    const double staging = (in_bytes + static_cast<double>(b.bytes_back)) /
                           (staging_bytes_per_core_per_s * std::max(1U, host_cores));
    const double link = (in_bytes + static_cast<double>(b.bytes_back)) / link_bytes_per_s;
    const double compute = q / (b.sorted ? device_sorted_per_s : device_random_per_s);
    const std::uint64_t chunks = (b.queries + chunk_queries - 1) / chunk_queries;
    return std::max({staging, link, compute}) + static_cast<double>(std::max<std::uint64_t>(chunks, 1)) * chunk_overhead_s;
  }
  bool prefer_device(const batch_shape& b) const { return device_seconds(b) < host_seconds(b); }
};

}  // namespace gpucredit::device
