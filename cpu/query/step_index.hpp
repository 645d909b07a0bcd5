// The step index (internal): what every query backend answers from.
#pragma once

#include <cstdint>
#include <vector>

#include "gpucredit/ledger.hpp"
#include "gpucredit/types.hpp"

namespace gpucredit {

/// A per-account step function in CSR form: the breakpoints of account a are
/// [account_offsets[a], account_offsets[a + 1]); `times` strictly increase within an
/// account and `balances[i]` holds from `times[i]` until the next breakpoint. Before an
/// account's first breakpoint its balance is 0. Searches touch only `times`.
struct step_index {
  std::vector<std::uint64_t> account_offsets;  ///< account_count + 1 entries
  std::vector<timestamp_t> times;
  std::vector<amount_t> balances;

  std::size_t account_count() const noexcept {
    return account_offsets.empty() ? 0 : account_offsets.size() - 1;
  }
  std::size_t size() const noexcept { return times.size(); }

  /// Builds the index from `intervals` (rows of any order): +amount at begin,
  /// -amount at end + 1 (none when end is the largest timestamp), equal times merged,
  /// prefix-summed per account. Accounts >= account_count must not appear.
  static step_index build(const interval_table& intervals, std::size_t account_count);

  /// The balance of `account` at `t` (0 = none; account_none or out of range: 0).
  amount_t balance(account_index account, timestamp_t t) const noexcept;
};

}  // namespace gpucredit
