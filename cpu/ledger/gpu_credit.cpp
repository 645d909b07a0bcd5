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
#include <memory>
#include <string>
#include <tuple>
#include <unordered_map>
#include <vector>

#include "cpu/io/validate.hpp"
#include "cpu/ledger/draw.hpp"
#include "cpu/ledger/live_credits.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/engine.hpp"
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

__extension__ typedef __int128 wide;  // a sum of up to 2^32 amounts

struct account_state {
  std::vector<call> calls;  // sorted by (timestamp, row)
  wide granted = 0;         // total added: while it fits in int64, no balance can overflow
  bool stale = false;       // a late call came: replay before answering
  // An account that has run a job answers from the batch ledger's closed form (SPEC
  // section 10): its calls are replayed into a step index when it is next asked.
  bool jobs = false;
  std::shared_ptr<const engine> metered;  // when jobs and not stale

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

  // The live credits as detail::draw sees them; an expiry settles a breakpoint at
  // end + 1 (which cannot overflow: the credit ended before some later time).
  struct live_view {
    account_state& a;
    bool empty() const noexcept { return a.live.empty(); }
    timestamp_t front_end() const { return a.live.front().end; }
    amount_t front_remaining() const { return a.live.front().remaining; }
    void take_from_front(amount_t amount) {
      if (amount == a.live.front().remaining) {
        a.live.pop_front();
      } else {
        a.live.draw_from_front(amount);
      }
    }
    void expire_front(amount_t balance_left) {
      a.record(a.live.front().end + 1, balance_left);
      a.live.pop_front();
    }
  };

  // Whether an add of `amount` at t (>= now) would take the balance beyond int64.
  bool add_overflows(timestamp_t t, amount_t amount) const {
    return live.remaining_ending_at_or_after(t) > amount_max - amount;
  }

  // Applies one call with timestamp >= now (SPEC section 4, detail::draw). Throws
  // detail::balance_overflow before changing anything but expiries (which hold whatever
  // comes next).
  // Returns whether the call was paid in full (a use drew all it asked for).
  bool apply(const call& c, overdraft_policy policy) {
    live_view view{*this};
    detail::expire_before(view, c.timestamp, balance);
    started = true;
    now = c.timestamp;
    if (c.amount == 0) return true;
    bool paid = true;
    if (c.kind == op::add) {
      detail::add_to_balance(balance, c.amount, c.row, c.timestamp);
      live.insert({c.end, c.timestamp, c.row, c.amount});
    } else {
      const detail::use_outcome outcome = detail::draw(view, balance, c.amount, policy);
      paid = !outcome.rejected && outcome.unpaid == 0;
    }
    record(c.timestamp, balance);
    return paid;
  }

  // The account's uses and jobs not paid in full, from a replay of all its calls
  // through the batch ledger: (call row, timestamp, amount, rejected). A job is one
  // record: its first tick not paid in full and its total (SPEC section 10).
  std::vector<std::tuple<event_row, timestamp_t, amount_t, bool>> unpaid(overdraft_policy policy) const {
    const std::vector<call> by_arrival = arrivals();
    const ledger_result r = gpucredit::replay(as_events(by_arrival), policy);
    std::vector<std::tuple<event_row, timestamp_t, amount_t, bool>> out;
    for (const usage_table* u : {&r.shortfalls, &r.rejections}) {
      for (std::size_t i = 0; i < u->size(); ++i) {
        out.emplace_back(by_arrival[u->row[i]].row, u->timestamp[i], u->amount[i], u == &r.rejections);
      }
    }
    return out;
  }

  // The account's calls in arrival order.
  std::vector<call> arrivals() const {
    std::vector<call> by_arrival = calls;
    std::sort(by_arrival.begin(), by_arrival.end(), [](const call& x, const call& y) { return x.row < y.row; });
    return by_arrival;
  }

  // The calls (in arrival order) as an event table: rows are arrivals, as the batch
  // ledger needs (a job's tick at t comes before an event at t only if the job arrived
  // first, whatever their timestamps).
  static event_table as_events(const std::vector<call>& by_arrival) {
    event_table table;
    table.source = "GPUCredit";
    for (const call& c : by_arrival) {
      switch (c.kind) {
        case op::add:
          table.add("a", "credit", c.timestamp, c.amount, c.end - c.timestamp, c.row + std::uint64_t{1});
          break;
        case op::use:
          table.use("a", c.timestamp, c.amount, c.row + std::uint64_t{1});
          break;
        case op::run:
          table.run("a", "job", c.timestamp, c.amount, c.end - c.timestamp + 1, c.row + std::uint64_t{1});
          break;
      }
    }
    return table;
  }

  // An account with jobs: replays every call through the batch ledger. Throws
  // detail::balance_overflow when a balance would pass int64.
  void meter(overdraft_policy policy) {
    try {
      metered = std::make_shared<const engine>(engine::create(gpucredit::replay(as_events(arrivals()), policy)));
    } catch (const input_error&) {  // the only refusal a replay of valid calls makes
      throw detail::balance_overflow{0, 0};
    }
    stale = false;
  }

  // Rebuilds the running state from every call, in order.
  void replay(overdraft_policy policy) {
    if (jobs) {
      meter(policy);
      return;
    }
    started = false;
    balance = 0;
    live.clear();
    times.clear();
    balances.clear();
    for (const call& c : calls) apply(c, policy);
    stale = false;
  }

  amount_t balance_at(timestamp_t t) const {
    if (jobs) return metered ? metered->balance(0, t).value_or(0) : 0;
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

  // The account named `name`, created when new; a bad name (SPEC section 6) is refused
  // by `source` (the call) before anything changes.
  account_state& account(std::string_view name, const char* source) {
    auto found = accounts.find(name);
    if (found != accounts.end()) return found->second;
    if (std::string problem = detail::name_problem(name, "account"); !problem.empty()) {
      throw input_error(source, calls + 1, std::move(problem));
    }
    return accounts.emplace(std::string(name), account_state{}).first->second;
  }

  // Takes one validated call from `source`: applied at once when in order, else placed by
  // time (the next query replays the account). Where the account's adds could sum past
  // int64 some balance may overflow: the call is then tried first (an in-order add
  // against the live credits, anything else by replaying the account with it on a copy)
  // and refused with `input_error` if a balance would pass int64, leaving the account
  // as it was (SPEC section 6). Under `reject` a late use can do this by making a later
  // use rejected.
  // Returns whether the call was paid in full (for a use: known at once, since only the
  // calls before it in time order decide it; for a late or metered account, from a
  // replay of the account).
  bool submit(account_state& a, const char* source, timestamp_t timestamp, amount_t amount, timestamp_t end, op kind) {
    if (calls >= events_max) throw input_error(source, calls + 1, "more than 2^32 - 1 calls");
    const event_row row = static_cast<event_row>(calls);
    auto paid_in_full = [&] {  // this call, in the account as it now stands
      if (kind != op::use || amount == 0) return true;
      for (const auto& [r, t, v, rejected] : a.unpaid(policy)) {
        if (r == row) return false;
      }
      return true;
    };
    const call c{timestamp, amount, end, static_cast<event_row>(calls), kind};
    const wide granted = a.granted + (kind == op::add ? amount : 0);
    if (kind == op::run || a.jobs) {  // metered: placed by time, replayed when next asked
      if (granted > amount_max) {  // tried at once: the account stays as it was if refused
        account_state trial;
        trial.jobs = true;
        trial.calls = a.calls;
        place(trial.calls, c);
        try {
          trial.meter(policy);
        } catch (const detail::balance_overflow&) {
          throw input_error(source, calls + 1, "balance beyond int64");
        }
        trial.granted = granted;
        a = std::move(trial);
      } else {
        a.jobs = true;
        a.granted = granted;
        place(a.calls, c);
        a.stale = true;
      }
      ++calls;
      return paid_in_full();
    }
    const bool in_order = !a.stale && (!a.started || timestamp >= a.now);
    const bool may_overflow = granted > amount_max;
    auto refuse = [&](timestamp_t at) {
      return input_error(source, calls + 1, "balance beyond int64 at " + std::to_string(at));
    };
    if (may_overflow && in_order) {
      if (kind == op::add && a.add_overflows(timestamp, amount)) throw refuse(timestamp);
    } else if (may_overflow) {
      account_state trial;
      trial.calls = a.calls;
      place(trial.calls, c);
      try {
        trial.replay(policy);
      } catch (const detail::balance_overflow& e) {
        throw refuse(e.timestamp);
      }
      trial.granted = granted;
      a = std::move(trial);  // the replayed state is current: not stale
      ++calls;
      return paid_in_full();
    }
    ++calls;
    a.granted = granted;
    place(a.calls, c);
    if (in_order) return a.apply(c, policy);
    a.stale = true;
    return paid_in_full();
  }

  // Inserts `c` after every call with an equal or earlier timestamp: it arrived last.
  static void place(std::vector<call>& calls, const call& c) {
    if (calls.empty() || c.timestamp >= calls.back().timestamp) {
      calls.push_back(c);
      return;
    }
    const auto at = std::upper_bound(calls.begin(), calls.end(), c.timestamp,
                                     [](timestamp_t t, const call& x) { return t < x.timestamp; });
    calls.insert(at, c);
  }
};

GPUCredit::GPUCredit(overdraft_policy policy) : state_(std::make_unique<state>()) { state_->policy = policy; }
GPUCredit::GPUCredit(GPUCredit&&) noexcept = default;
GPUCredit& GPUCredit::operator=(GPUCredit&&) noexcept = default;
GPUCredit::~GPUCredit() = default;

void GPUCredit::addCredit(std::string_view creditId, std::int64_t amount, std::int64_t timestamp,
                          std::int64_t expiration) {
  account_state& a = state_->account(creditId, "addCredit");
  if (const char* problem = detail::add_problem(timestamp, amount, expiration)) {
    throw input_error("addCredit", state_->calls + 1, problem);
  }
  (void)state_->submit(a, "addCredit", timestamp, amount, timestamp + expiration, op::add);
}

std::optional<std::int64_t> GPUCredit::getBalance(std::string_view creditId, std::int64_t timestamp) {
  auto found = state_->accounts.find(creditId);
  if (found == state_->accounts.end()) return std::nullopt;
  account_state& a = found->second;
  if (a.stale) a.replay(state_->policy);  // cannot overflow: the adds sum within int64 (submit)
  const amount_t balance = a.balance_at(timestamp);
  return balance == 0 ? std::nullopt : std::optional<std::int64_t>(balance);
}

void GPUCredit::runCredit(std::string_view creditId, std::int64_t timestamp, std::int64_t rate, std::int64_t ticks) {
  account_state& a = state_->account(creditId, "runCredit");
  if (const char* problem = detail::run_problem(timestamp, rate, ticks)) {
    throw input_error("runCredit", state_->calls + 1, problem);
  }
  // 0 ticks or rate 0: no effect, but a call all the same (it counts in the numbering).
  const bool empty = ticks == 0 || rate == 0;
  (void)state_->submit(a, "runCredit", timestamp, empty ? 0 : rate, empty ? timestamp : timestamp + (ticks - 1), op::run);
}

bool GPUCredit::useCredit(std::string_view creditId, std::int64_t timestamp, std::int64_t amount) {
  account_state& a = state_->account(creditId, "useCredit");
  if (const char* problem = detail::use_problem(amount)) {
    throw input_error("useCredit", state_->calls + 1, problem);
  }
  return state_->submit(a, "useCredit", timestamp, amount, timestamp, op::use);
}

std::vector<GPUCredit::unpaid_use> GPUCredit::unpaid() const {
  std::vector<unpaid_use> out;
  for (const auto& [name, a] : state_->accounts) {
    for (const auto& [row, t, amount, rejected] : a.unpaid(state_->policy)) {
      out.push_back({name, row + std::uint64_t{1}, t, amount, rejected});
    }
  }
  std::sort(out.begin(), out.end(), [](const unpaid_use& x, const unpaid_use& y) { return x.call < y.call; });
  return out;
}

}  // namespace gpucredit
