// Basic value types shared by every part of gpucredit (SPEC sections 1 and 4).
#pragma once

#include <cstdint>
#include <limits>
#include <string>
#include <string_view>

namespace gpucredit {

/// A point in time, in any unit the caller chooses (the examples use seconds).
using timestamp_t = std::int64_t;
/// An amount of credit. Never negative in input; a balance always fits in int64.
using amount_t = std::int64_t;
/// An exact total that may pass int64 although every balance fits (SPEC section 11):
/// sums over a window (granted, consumed, expired, unpaid) and across accounts.
__extension__ typedef __int128 total_t;
/// Dense index of an interned account name (see `dictionary`).
using account_index = std::uint32_t;
/// Position of an event in its table: its arrival number.
using event_row = std::uint32_t;

inline constexpr timestamp_t timestamp_min = std::numeric_limits<timestamp_t>::min();
inline constexpr timestamp_t timestamp_max = std::numeric_limits<timestamp_t>::max();
inline constexpr amount_t amount_max = std::numeric_limits<amount_t>::max();
/// The account index that no account has: queries for unknown accounts carry it.
inline constexpr account_index account_none = std::numeric_limits<account_index>::max();
/// The most events one table holds (rows are 32-bit arrival numbers).
inline constexpr std::uint64_t events_max = std::numeric_limits<event_row>::max();

/// The kinds of event in a ledger: a grant, a use at one time, and a job that uses a rate
/// at every tick of a stretch of time (SPEC section 10).
enum class op : std::uint8_t { add, use, run };

/// What a usage does when it asks for more than the active credits hold (SPEC section 4).
enum class overdraft_policy : std::uint8_t {
  drain,   ///< every active credit drops to 0, the unpaid rest is recorded as shortfall
  reject,  ///< the usage changes nothing and is recorded as rejected
};

/// What the sixth column of an `add` holds (SPEC section 1: a credit is usable on
/// [timestamp, timestamp + expiration]). Billing tables often store the end instead.
enum class expiration_form : std::uint8_t {
  duration,  ///< the expiration: usable on [timestamp, timestamp + expiration] (SPEC)
  end,       ///< the last timestamp at which it is usable: usable on [timestamp, end]
};

/// "drain" or "reject".
constexpr std::string_view to_string(overdraft_policy policy) noexcept {
  return policy == overdraft_policy::drain ? "drain" : "reject";
}

/// The decimal digits of a total, with a leading '-' when negative.
inline std::string to_decimal(total_t value) {
  if (value == 0) return "0";
  const bool negative = value < 0;
  __extension__ typedef unsigned __int128 magnitude_t;
  magnitude_t rest = negative ? magnitude_t{0} - static_cast<magnitude_t>(value) : static_cast<magnitude_t>(value);
  char digits[41];
  char* p = digits + sizeof digits;
  while (rest != 0) {
    *--p = static_cast<char>('0' + static_cast<int>(rest % 10));
    rest /= 10;
  }
  if (negative) *--p = '-';
  return std::string(p, static_cast<std::size_t>(digits + sizeof digits - p));
}

}  // namespace gpucredit
