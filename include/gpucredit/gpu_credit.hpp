// The original interface, kept as a compatible class (SPEC section 9): the first
// argument of every call names the account, and balances answer from history.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

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
  /// Returns whether it was paid in full given the calls made so far: false when it
  /// drained what was active and left a shortfall (`drain`) or changed nothing and was
  /// rejected (`reject`). A later late add may still pay it: unpaid() says what stands.
  /// The original calls that ignore the result read as before. An in-order use answers
  /// in O(log n); a late one replays its account. Throws `input_error` for a
  /// negative amount; the ledger is unchanged then.
  bool useCredit(std::string_view creditId, std::int64_t timestamp, std::int64_t amount);

  /// Runs a job on account `creditId`: uses `rate` at every tick `timestamp`,
  /// `timestamp + 1`, ..., `timestamp + ticks - 1` (SPEC section 10), metered in closed
  /// form whatever the number of ticks. Throws `input_error` for a negative rate or tick
  /// count, a last tick beyond int64, rate x ticks beyond int64, or a balance beyond
  /// int64; the ledger is unchanged then. An account that has run a job answers from a
  /// replay of its calls after each change (O(n log n) once, then O(log n) a query).
  void runCredit(std::string_view creditId, std::int64_t timestamp, std::int64_t rate, std::int64_t ticks);

  /// A use (or a job) not paid in full, as the batch ledger records it: under `drain`
  /// `amount` is the shortfall, under `reject` the whole use, which was rejected. A job
  /// is one record: its first tick not paid in full and its total unpaid.
  struct unpaid_use {
    std::string account;
    std::uint64_t call;   ///< which call (1 = the first made on this object)
    std::int64_t timestamp;
    std::int64_t amount;
    bool rejected;        ///< `reject`; else a shortfall under `drain`
  };
  /// Every use and job not paid in full so far, by call. O(n log n) (a replay).
  std::vector<unpaid_use> unpaid() const;

 private:
  struct state;
  std::unique_ptr<state> state_;
};

}  // namespace gpucredit
