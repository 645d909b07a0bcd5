// The query engine: per-account step functions built from the interval table, and
// batches of point-in-time balance queries answered against them (SPEC sections 3, 5).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <span>
#include <string_view>
#include <vector>

#include "gpucredit/ledger.hpp"
#include "gpucredit/types.hpp"

namespace gpucredit {

namespace detail {
struct engine_access;
}  // namespace detail

/// Where queries are answered.
enum class backend : std::uint8_t { cpu, cuda };

/// "cpu" or "cuda".
std::string_view to_string(backend b) noexcept;
/// The backends compiled into this build, CPU first.
std::vector<backend> compiled_backends();
/// Whether `b` was compiled in and can run here (for CUDA: a device is present).
bool backend_available(backend b);
/// Whether `b` can run here and on what, or why not, in words: for CUDA the runtime and
/// driver versions, the device (GPUCREDIT_DEVICE picks one) and its compute capability.
std::string backend_status(backend b);
/// Resolves a request "auto", "cpu" or "cuda". "auto" honours the environment
/// variable GPUCREDIT_BACKEND when it is set, else picks CUDA when available, else CPU.
/// Throws `backend_unavailable` for an unknown name or a backend that cannot run here.
backend select_backend(std::string_view request = "auto");

/// An arithmetic grid of times (SPEC section 11): from, from + every, ..., `count` times,
/// computed in unsigned arithmetic so that no time overflows at the ends of int64
/// (report_grid in report.hpp checks that the last one does not pass `to`).
struct time_grid {
  timestamp_t from = 0;
  timestamp_t every = 1;
  std::size_t count = 0;
  timestamp_t at(std::size_t k) const noexcept {
    return static_cast<timestamp_t>(static_cast<std::uint64_t>(from) + k * static_cast<std::uint64_t>(every));
  }
};

/// Where an engine on the CUDA backend answers each batch.
enum class placement : std::uint8_t {
  device,      ///< always on the device (an explicit `--backend cuda`)
  cost_model,  ///< where it is expected to finish first: the device, or the host's cores
               ///< from the copy of the index kept there (`--backend auto`; cuda/README.md)
};

/// How to build an engine.
struct engine_options {
  backend where = backend::cpu;
  placement place = placement::device;
  /// CUDA devices to shard the accounts over (empty: the environment variable
  /// GPUCREDIT_DEVICE, a list such as "0" or "0,2", else every usable device).
  std::vector<int> devices;
};

/// Resolves a request "auto", "cpu" or "cuda" (as select_backend does) into engine
/// options: "cuda" answers every batch on the device; "auto" uses CUDA where it can run,
/// with the cost model placing each batch (placement::cost_model), else the CPU.
/// `devices` (from --device) restricts CUDA to those devices; under "auto" a device
/// named there that cannot be used is an error, not a fallback. Throws
/// `backend_unavailable` as select_backend does, and for devices with the CPU backend.
engine_options resolve_engine(std::string_view request = "auto", std::vector<int> devices = {});

/// Parses a device list such as "0" or "0,2" (for --device). Throws `backend_unavailable`.
std::vector<int> parse_devices(std::string_view text);

/// Answers batches of balance queries on one backend. Built once from an interval
/// table, then queried any number of times; const methods are safe to call from
/// several threads at once.
class engine {
 public:
  /// Builds the engine's index from `result.intervals` on backend `b`.
  /// Throws `backend_unavailable` when `b` cannot run here, `device_error` when the
  /// device fails.
  static engine create(const ledger_result& result, backend b = backend::cpu);
  static engine create(const interval_table& intervals, std::size_t account_count,
                       backend b = backend::cpu);
  static engine create(const interval_table& intervals, std::size_t account_count, const engine_options& options);

  engine(engine&&) noexcept;
  engine& operator=(engine&&) noexcept;
  ~engine();

  backend kind() const noexcept;
  /// What the engine runs on, in words: "cpu (N cores)", or the CUDA devices and the
  /// placement.
  std::string describe() const;

  /// Balances of the queries (accounts[i], times[i]), in query order; 0 means none
  /// (no credit left, or an unknown account: account_none or out of range). Sorted and
  /// unsorted batches are both fine. The spans must have equal sizes. Blocks.
  std::vector<amount_t> balances(std::span<const account_index> accounts,
                                 std::span<const timestamp_t> times) const;

  /// The same, written into `out` (of the same size), so that a caller answering batch
  /// after batch can reuse one buffer. Throws `error` when the sizes differ. Blocks.
  void balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                std::span<amount_t> out) const;

  /// Balances of `accounts` at every time of `grid`, the grid made where the engine runs
  /// (on the device, no query columns cross to it): `fleet[k]` (size grid.count) is the
  /// exact sum over the accounts at grid.at(k); when `balances` is not empty (it must
  /// then hold accounts.size() * grid.count values), `balances[i * grid.count + k]` is the
  /// balance of accounts[i] at grid.at(k), 0 for none. Only what is asked for comes back.
  /// Throws `error` when a size is wrong. Blocks.
  void grid(std::span<const account_index> accounts, const time_grid& grid, std::span<total_t> fleet,
            std::span<amount_t> balances = {}) const;

  /// One query, as the SPEC reports it: nullopt for none.
  std::optional<amount_t> balance(account_index account, timestamp_t t) const;

  /// The seam a backend implements (internal).
  class impl;

 private:
  friend struct detail::engine_access;  // the index, for tests and benchmarks (internal)
  explicit engine(std::unique_ptr<impl> p);
  std::unique_ptr<impl> impl_;
};

/// Turns the engine's 0-as-none convention into SPEC's optional.
constexpr std::optional<amount_t> as_optional(amount_t balance) noexcept {
  return balance == 0 ? std::nullopt : std::optional<amount_t>(balance);
}

}  // namespace gpucredit
