// SPEC section 4, written once: an account's credits expiring, an add raising its
// balance, and a use drawing from its live credits soonest-ending first under `drain` or
// `reject` (internal). Generic over how the live credits are kept: the batch ledger keeps
// them in a binary heap (replay.cpp), the compatible class in a treap with subtree sums
// (gpu_credit.cpp, live_credits.hpp). Both order them by (end, start, arrival), so the
// front is both the next credit to expire and the first to draw from.
#pragma once

#include <algorithm>
#include <concepts>

#include "gpucredit/types.hpp"

namespace gpucredit::detail {

/// Thrown by add_to_balance when an add would take a balance beyond int64; the callers
/// turn it into `input_error` with the event's source and line.
struct balance_overflow {
  event_row row;
  timestamp_t timestamp;
};

/// The live credits of one account, as the draw sees them: credits already started,
/// each with remaining > 0, ordered by (end, start, arrival).
template <class Live>
concept live_credit_set = requires(Live& live, const Live& view, amount_t amount) {
  { view.empty() } -> std::convertible_to<bool>;
  { view.front_end() } -> std::convertible_to<timestamp_t>;
  { view.front_remaining() } -> std::convertible_to<amount_t>;
  live.take_from_front(amount);  // amount <= front_remaining(); the front leaves at 0
  live.expire_front(amount);     // removes the front; `amount` is the balance without it
};

/// Drops every credit that ended before `t`: each stops being active at end + 1 <= t
/// (no end + 1 is computed, so an end at the largest timestamp never expires).
template <live_credit_set Live>
void expire_before(Live& live, timestamp_t t, amount_t& balance) {
  while (!live.empty() && live.front_end() < t) {
    balance -= live.front_remaining();
    live.expire_front(balance);
  }
}

/// Adds `amount` to `balance`, or throws balance_overflow (changing nothing) when the
/// sum would pass int64 (SPEC section 1).
inline void add_to_balance(amount_t& balance, amount_t amount, event_row row, timestamp_t t) {
  if (balance > amount_max - amount) throw balance_overflow{row, t};
  balance += amount;
}

/// What a use left unpaid: under `drain` the shortfall (0 when paid in full); under
/// `reject`, the whole amount when it was rejected.
struct use_outcome {
  amount_t unpaid = 0;
  bool rejected = false;
};

/// Applies use(amount) now: draws from the front of `live` until paid or empty. Under
/// `reject` a use asking for more than `balance` changes nothing and is rejected.
template <live_credit_set Live>
use_outcome draw(Live& live, amount_t& balance, amount_t amount, overdraft_policy policy) {
  if (amount > balance && policy == overdraft_policy::reject) return {amount, true};
  amount_t need = amount;
  while (need > 0 && !live.empty()) {
    const amount_t take = std::min(live.front_remaining(), need);
    live.take_from_front(take);
    need -= take;
    balance -= take;
  }
  return {need, false};
}

}  // namespace gpucredit::detail
