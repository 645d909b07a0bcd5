// The original interface, kept as a compatible class (SPEC section 9): the first
// argument of every call names the account, and balances answer from history.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string_view>

#include "gpucredit/types.hpp"

namespace gpucredit {

/// Takes calls one at a time, in any time order, and answers any past balance.
/// Calls with an earlier timestamp than the account's last are placed by time; the
/// next query of that account replays it. Not thread-safe.
class GPUCredit {
 public:
  explicit GPUCredit(overdraft_policy policy = overdraft_policy::drain);
  GPUCredit(GPUCredit&&) noexcept;
  GPUCredit& operator=(GPUCredit&&) noexcept;
  ~GPUCredit();

  /// Adds a credit of `amount` to account `creditId`, usable on
  /// [timestamp, timestamp + expiration]. Throws `input_error` for a negative amount or
  /// expiration, `timestamp + expiration` beyond int64, or a balance beyond int64;
  /// the ledger is unchanged then.
  void addCredit(std::string_view creditId, std::int64_t amount, std::int64_t timestamp,
                 std::int64_t expiration);

  /// The balance of account `creditId` at `timestamp`, nullopt when no credit is left
  /// (or the account is unknown). Sees every call with a timestamp <= `timestamp`.
  std::optional<std::int64_t> getBalance(std::string_view creditId, std::int64_t timestamp);

  /// Uses `amount` from account `creditId` at `timestamp`, soonest-expiring credit first.
  /// Throws `input_error` for a negative amount; the ledger is unchanged then.
  void useCredit(std::string_view creditId, std::int64_t timestamp, std::int64_t amount);

  /// Runs a job on account `creditId`: uses `rate` at every tick `timestamp`,
  /// `timestamp + 1`, ..., `timestamp + ticks - 1` (SPEC section 10), metered in closed
  /// form whatever the number of ticks. Throws `input_error` for a negative rate or tick
  /// count, a last tick beyond int64, rate x ticks beyond int64, or a balance beyond
  /// int64; the ledger is unchanged then. An account that has run a job answers from a
  /// replay of its calls after each change (O(n log n) once, then O(log n) a query).
  void runCredit(std::string_view creditId, std::int64_t timestamp, std::int64_t rate, std::int64_t ticks);

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace gpucredit
