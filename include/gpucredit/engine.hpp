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

  engine(engine&&) noexcept;
  engine& operator=(engine&&) noexcept;
  ~engine();

  backend kind() const noexcept;

  /// Balances of the queries (accounts[i], times[i]), in query order; 0 means none
  /// (no credit left, or an unknown account: account_none or out of range). Sorted and
  /// unsorted batches are both fine. The spans must have equal sizes. Blocks.
  std::vector<amount_t> balances(std::span<const account_index> accounts,
                                 std::span<const timestamp_t> times) const;

  /// The same, written into `out` (of the same size), so that a caller answering batch
  /// after batch can reuse one buffer. Throws `error` when the sizes differ. Blocks.
  void balances(std::span<const account_index> accounts, std::span<const timestamp_t> times,
                std::span<amount_t> out) const;

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
