// The compatible class. Each account keeps its events in (timestamp, arrival) order and
// a cached step function; a call marks the account dirty and the next query of it
// replays that account with the same core as the batch ledger.
#include "gpucredit/gpu_credit.hpp"

#include <algorithm>
#include <string>
#include <unordered_map>

#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/ledger.hpp"

namespace gpucredit {

namespace {

struct account_state {
  std::vector<detail::account_event> events;  // sorted by (timestamp, row)
  amount_t granted = 0;                       // total added; saturates at amount_max
  bool dirty = false;
  step_index steps;                           // one account: index 0
};

struct string_hash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};

}  // namespace

struct GPUCredit::state {
  overdraft_policy policy;
  std::unordered_map<std::string, account_state, string_hash, std::equal_to<>> accounts;
  std::uint64_t calls = 0;
  detail::account_replayer replayer;
  ledger_result scratch;

  // Replays `account` into `scratch`; throws balance_overflow.
  void replay(account_state& account) {
    scratch = ledger_result{};
    scratch.account_count = 1;
    replayer.run(account.events, 0, policy, scratch);
  }

  // Inserts `e` by time (after every event with an equal timestamp: it arrived last).
  static std::size_t insert(account_state& account, const detail::account_event& e) {
    auto at = std::upper_bound(account.events.begin(), account.events.end(), e.timestamp,
                               [](timestamp_t t, const detail::account_event& x) { return t < x.timestamp; });
    const auto position = static_cast<std::size_t>(at - account.events.begin());
    account.events.insert(at, e);
    return position;
  }

  event_row next_row(const char* call) {
    if (calls >= events_max) throw input_error(call, calls + 1, "more than 2^32 - 1 calls");
    return static_cast<event_row>(calls++);
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
  const event_row row = state_->next_row("addCredit");
  auto found = state_->accounts.find(creditId);
  if (found == state_->accounts.end()) found = state_->accounts.emplace(std::string(creditId), account_state{}).first;
  account_state& account = found->second;
  const std::size_t position = state::insert(account, {timestamp, amount, timestamp + expiration, row, op::add});
  account.dirty = true;
  // A balance never exceeds the total granted: only past int64 can it overflow, and
  // only then is a replay needed to know.
  if (account.granted <= amount_max - amount) {
    account.granted += amount;
    return;
  }
  try {
    state_->replay(account);
  } catch (const detail::balance_overflow& overflow) {
    account.events.erase(account.events.begin() + static_cast<std::ptrdiff_t>(position));
    throw input_error("addCredit", static_cast<std::uint64_t>(row) + 1,
                      "balance beyond int64 at " + std::to_string(overflow.timestamp));
  }
  account.granted = amount_max;
}

std::optional<std::int64_t> GPUCredit::getBalance(std::string_view creditId, std::int64_t timestamp) {
  auto found = state_->accounts.find(creditId);
  if (found == state_->accounts.end()) return std::nullopt;
  account_state& account = found->second;
  if (account.dirty) {
    state_->replay(account);  // cannot overflow: every add was checked
    account.steps = step_index::build(state_->scratch.intervals, 1);
    account.dirty = false;
  }
  return as_optional(account.steps.balance(0, timestamp));
}

void GPUCredit::useCredit(std::string_view creditId, std::int64_t timestamp, std::int64_t amount) {
  if (const char* problem = detail::use_problem(amount)) {
    throw input_error("useCredit", state_->calls + 1, problem);
  }
  const event_row row = state_->next_row("useCredit");
  auto found = state_->accounts.find(creditId);
  if (found == state_->accounts.end()) found = state_->accounts.emplace(std::string(creditId), account_state{}).first;
  state::insert(found->second, {timestamp, amount, timestamp, row, op::use});
  found->second.dirty = true;
}

}  // namespace gpucredit
