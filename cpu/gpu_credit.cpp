// The compatible class, incremental. Each account keeps its events in (timestamp,
// arrival) order and, while calls come in time order, a running state: the time of its
// last event (`now`), the live credits (detail::live_credits) and the settled step
// function (every balance change at or before `now`, which no in-order call can alter).
// An in-order call advances that state in O(log n); a query at or before `now` searches
// the settled breakpoints and a query after it sums the live credits still active then,
// both O(log n). A late call (earlier than `now`) marks the account stale: its next
// query replays the account's events, O(n log n), and in-order calls are cheap again.
#include "gpucredit/gpu_credit.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>
#include <vector>

#include "gpucredit/detail/live_credits.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/events.hpp"
#include "gpucredit/ledger.hpp"

namespace gpucredit {

namespace {

struct call {
  timestamp_t timestamp;
  amount_t amount;
  timestamp_t end;  // add: timestamp + expiration
  event_row row;
  op kind;
};

struct account_state {
  std::vector<call> calls;  // sorted by (timestamp, row)
  amount_t granted = 0;     // total added, saturated at amount_max
  bool stale = false;       // a late call came: replay before answering

  // The running state over every call so far (when not stale).
  bool started = false;
  timestamp_t now = 0;
  amount_t balance = 0;
  detail::live_credits live;
  std::vector<timestamp_t> times;  // settled breakpoints (balance changes at times <= now)
  std::vector<amount_t> balances;

  // The balance from t on is b: one breakpoint per change, equal times merged.
  void record(timestamp_t t, amount_t b) {
    if (!times.empty() && times.back() == t) {
      balances.back() = b;
      const amount_t before = balances.size() >= 2 ? balances[balances.size() - 2] : 0;
      if (b == before) {
        times.pop_back();
        balances.pop_back();
      }
      return;
    }
    if (b != (balances.empty() ? 0 : balances.back())) {
      times.push_back(t);
      balances.push_back(b);
    }
  }

  // Expires every credit that ends before t (each stops counting at end + 1 <= t).
  void advance_to(timestamp_t t) {
    while (!live.empty() && live.front().end < t) {
      const detail::live_credits::credit& c = live.front();
      balance -= c.remaining;
      record(c.end + 1, balance);
      live.pop_front();
    }
  }

  // Whether an add of `amount` at t (>= now) would take the balance beyond int64.
  bool add_overflows(timestamp_t t, amount_t amount) const {
    return live.remaining_ending_at_or_after(t) > amount_max - amount;
  }

  // Applies one call with timestamp >= now. Throws detail::balance_overflow before changing
  // anything but expiries (which hold whatever comes next).
  void apply(const call& c, overdraft_policy policy) {
    advance_to(c.timestamp);
    started = true;
    now = c.timestamp;
    if (c.amount == 0) return;
    if (c.kind == op::add) {
      if (balance > amount_max - c.amount) throw detail::balance_overflow{c.row, c.timestamp};
      live.insert({c.end, c.timestamp, c.row, c.amount});
      balance += c.amount;
    } else {
      if (c.amount > balance && policy == overdraft_policy::reject) return;
      amount_t need = c.amount;
      while (need > 0 && !live.empty()) {
        const amount_t remaining = live.front().remaining;
        if (remaining <= need) {
          live.pop_front();
          need -= remaining;
          balance -= remaining;
        } else {
          live.draw_from_front(need);
          balance -= need;
          need = 0;
        }
      }
    }
    record(c.timestamp, balance);
  }

  // Rebuilds the running state from every call, in order.
  void replay(overdraft_policy policy) {
    started = false;
    balance = 0;
    live.clear();
    times.clear();
    balances.clear();
    for (const call& c : calls) apply(c, policy);
    stale = false;
  }

  amount_t balance_at(timestamp_t t) const {
    if (!started || t <= now) {
      const auto after = std::upper_bound(times.begin(), times.end(), t);
      return after == times.begin() ? 0 : balances[static_cast<std::size_t>(after - times.begin()) - 1];
    }
    return live.remaining_ending_at_or_after(t);  // credits started by now and ending at t or later
  }
};

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace

struct GPUCredit::state {
  overdraft_policy policy = overdraft_policy::drain;
  std::unordered_map<std::string, account_state, string_hash, std::equal_to<>> accounts;
  std::uint64_t calls = 0;

  account_state& account(std::string_view name) {
    auto found = accounts.find(name);
    if (found == accounts.end()) found = accounts.emplace(std::string(name), account_state{}).first;
    return found->second;
  }

  event_row next_row(const char* source) {
    if (calls >= events_max) throw input_error(source, calls + 1, "more than 2^32 - 1 calls");
    return static_cast<event_row>(calls++);
  }

  // Records a validated call: applied at once when in order, else placed by time.
  void take(account_state& a, const call& c) {
    const bool in_order = !a.stale && (!a.started || c.timestamp >= a.now);
    if (a.calls.empty() || c.timestamp >= a.calls.back().timestamp) {
      a.calls.push_back(c);
    } else {  // after every call with an equal timestamp: it arrived last
      const auto at = std::upper_bound(a.calls.begin(), a.calls.end(), c.timestamp,
                                       [](timestamp_t t, const call& x) { return t < x.timestamp; });
      a.calls.insert(at, c);
    }
    if (in_order) {
      a.apply(c, policy);
    } else {
      a.stale = true;
    }
  }
};

GPUCredit::GPUCredit(overdraft_policy policy) : state_(std::make_unique<state>()) { state_->policy = policy; }
GPUCredit::GPUCredit(GPUCredit&&) noexcept = default;
GPUCredit& GPUCredit::operator=(GPUCredit&&) noexcept = default;
GPUCredit::~GPUCredit() = default;

void GPUCredit::addCredit(std::string_view creditId, std::int64_t amount, std::int64_t timestamp,
                          std::int64_t expiration) {
  if (const char* problem = detail::add_problem(timestamp, amount, expiration)) {
    throw input_error("addCredit", state_->calls + 1, problem);
  }
  account_state& a = state_->account(creditId);
  auto overflow = [&](timestamp_t at) {
    return input_error("addCredit", state_->calls + 1, "balance beyond int64 at " + std::to_string(at));
  };
  // A balance never exceeds the total granted: below int64's top nothing can overflow.
  if (a.granted > amount_max - amount) {
    const call c{timestamp, amount, timestamp + expiration, static_cast<event_row>(state_->calls), op::add};
    if (!a.stale && (!a.started || timestamp >= a.now)) {
      if (a.add_overflows(timestamp, amount)) throw overflow(timestamp);
    } else {
      // A late add: replay the account with it on a copy; the account stays as it was.
      account_state trial;
      trial.calls = a.calls;
      trial.calls.insert(std::upper_bound(trial.calls.begin(), trial.calls.end(), timestamp,
                                          [](timestamp_t t, const call& x) { return t < x.timestamp; }),
                         c);
      try {
        trial.replay(state_->policy);
      } catch (const detail::balance_overflow& e) {
        throw overflow(e.timestamp);
      }
    }
  }
  a.granted = a.granted > amount_max - amount ? amount_max : a.granted + amount;
  state_->take(a, {timestamp, amount, timestamp + expiration, state_->next_row("addCredit"), op::add});
}

std::optional<std::int64_t> GPUCredit::getBalance(std::string_view creditId, std::int64_t timestamp) {
  auto found = state_->accounts.find(creditId);
  if (found == state_->accounts.end()) return std::nullopt;
  account_state& a = found->second;
  if (a.stale) a.replay(state_->policy);  // cannot overflow: every add was checked
  const amount_t balance = a.balance_at(timestamp);
  return balance == 0 ? std::nullopt : std::optional<std::int64_t>(balance);
}

void GPUCredit::useCredit(std::string_view creditId, std::int64_t timestamp, std::int64_t amount) {
  if (const char* problem = detail::use_problem(amount)) {
    throw input_error("useCredit", state_->calls + 1, problem);
  }
  account_state& a = state_->account(creditId);
  state_->take(a, {timestamp, amount, timestamp, state_->next_row("useCredit"), op::use});
}

}  // namespace gpucredit
