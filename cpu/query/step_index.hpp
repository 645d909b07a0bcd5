// The step index (internal): what every query backend answers from.
#pragma once

#include <cstdint>
#include <vector>

#include "gpucredit/ledger.hpp"
#include "gpucredit/types.hpp"

namespace gpucredit {

/// A per-account piecewise-linear balance in CSR form: the breakpoints of account a are
/// [account_offsets[a], account_offsets[a + 1]); `times` strictly increase within an
/// account, and from `times[i]` until the next breakpoint the balance at t is
/// `balances[i] - slopes[i] * (t - times[i])` (SPEC section 10: jobs draw at a rate).
/// Before an account's first breakpoint its balance is 0. Searches touch only `times`.
///
/// The product never overflows and the result is exact in int64: within one breakpoint's
/// stretch every interval row covering [times[i], t] holds a positive amount at t, and
/// its part of the slope times (t - times[i]) is what it lost since times[i], less than
/// what it held at times[i]. Summed over the rows: slopes[i] * (t - times[i]) <
/// balances[i] <= int64 max whenever the slope is not 0 (engine_test proves it on
/// ledgers with jobs up to the int64 ends).
struct step_index {
  std::vector<std::uint64_t> account_offsets;  ///< account_count + 1 entries
  std::vector<timestamp_t> times;
  std::vector<amount_t> balances;
  std::vector<amount_t> slopes;  ///< empty when every slope is 0 (ledgers without jobs)

  bool has_slopes() const noexcept { return !slopes.empty(); }
  /// The balance the breakpoint at `i` gives at t (>= times[i], before the next one).
  amount_t value_at(std::size_t i, timestamp_t t) const noexcept {
    // A level stretch may be longer than int64 (t - times[i] would overflow): no product.
    return slopes.empty() || slopes[i] == 0 ? balances[i] : balances[i] - slopes[i] * (t - times[i]);
  }

  std::size_t account_count() const noexcept {
    return account_offsets.empty() ? 0 : account_offsets.size() - 1;
  }
  std::size_t size() const noexcept { return times.size(); }

  /// Builds the index from `intervals` (rows of any order): +amount and +slope at begin,
  /// the row's line value at end + 1 and its slope taken off there (nothing when end is
  /// the largest timestamp), equal times merged, summed per account along the lines.
  /// Accounts >= account_count must not appear.
  static step_index build(const interval_table& intervals, std::size_t account_count);

  /// The balance of `account` at `t` (0 = none; account_none or out of range: 0).
  amount_t balance(account_index account, timestamp_t t) const noexcept;
};

}  // namespace gpucredit
