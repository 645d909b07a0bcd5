// Fuzzes the whole path events -> ledger -> queries. The bytes decode into a small
// ledger (three accounts, small and extreme times and amounts); its answers are checked
// against the naive reference of tests/test_support.hpp (balances at every time around
// every event and expiry, which credit holds what, every unpaid use, overflow refusals)
// and against its metamorphic twins: the same events sorted by time (stably), and a
// batch of queries answered one by one. Any difference aborts.
#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <set>

#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/gpu_credit.hpp"
#include "gpucredit/ledger.hpp"
#include "naive_ledger.hpp"

namespace {

using namespace gpucredit;
using test::naive_event;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "ledger_fuzz: %s\n", what);
  std::abort();
}

std::vector<naive_event> decode(const std::uint8_t* data, std::size_t size) {
  std::vector<naive_event> events;
  for (std::size_t i = 0; i + 5 <= size && events.size() < 64; i += 5) {
    naive_event e{};
    e.kind = (data[i] & 3) == 0 ? op::add : (data[i] & 3) == 2 ? op::run : op::use;  // jobs a quarter of the time
    e.account = (data[i] >> 2) % 3;
    e.timestamp = static_cast<std::int8_t>(data[i + 1]) / 8;
    e.amount = data[i + 2] % 40;
    e.expiration = data[i + 3] % 24;
    const std::uint8_t extreme = data[i + 4];
    if ((extreme & 0x07) == 1) e.timestamp = timestamp_max - (data[i + 1] & 7);
    if ((extreme & 0x07) == 2) e.timestamp = timestamp_min + (data[i + 1] & 7);
    if ((extreme & 0x18) == 0x08) e.amount = amount_max / 2 + (data[i + 2] & 3);
    if ((extreme & 0x60) == 0x20 && e.timestamp < 0) e.expiration = timestamp_max;  // end = max + timestamp
    if (e.kind == op::add && e.timestamp > timestamp_max - e.expiration) e.expiration = timestamp_max - e.timestamp;
    if (e.kind == op::run) {  // a job: the rate a tick, at most 24 ticks (the reference expands them)
      e.amount %= 8;
      if ((extreme & 0x18) == 0x08) e.amount = amount_max / 48;
      e.expiration %= 25;
      if (e.timestamp > 0 && e.expiration > 0 && e.timestamp > timestamp_max - (e.expiration - 1)) {
        e.expiration = timestamp_max - e.timestamp + 1;  // the last tick stays within int64
      }
    }
    events.push_back(e);
  }
  return events;
}

event_table table_of(const std::vector<naive_event>& events, const std::vector<std::size_t>& order) {
  event_table table;
  for (const std::size_t i : order) {
    const naive_event& e = events[i];
    const std::string account = "a" + std::to_string(e.account);
    if (e.kind == op::add) {
      table.add(account, "c" + std::to_string(i), e.timestamp, e.amount, e.expiration, i + 2);
    } else if (e.kind == op::run) {
      table.run(account, "j" + std::to_string(i), e.timestamp, e.amount, e.expiration, i + 2);
    } else {
      table.use(account, e.timestamp, e.amount, i + 2);
    }
  }
  return table;
}

std::vector<timestamp_t> probe_times(const std::vector<naive_event>& events) {
  std::set<timestamp_t> times{timestamp_min, timestamp_max, 0};
  for (const naive_event& e : events) {
    const timestamp_t last = e.kind == op::add ? e.timestamp + e.expiration
                             : e.kind == op::run && e.expiration > 0 ? e.timestamp + (e.expiration - 1)
                                                                    : e.timestamp;
    for (const timestamp_t t : {e.timestamp, last}) {
      times.insert(t);
      if (t != timestamp_min) times.insert(t - 1);
      if (t != timestamp_max) times.insert(t + 1);
    }
  }
  return {times.begin(), times.end()};
}

// Balances of every account (and an unknown one) at every probe time.
std::vector<amount_t> answers(const event_table& table, const ledger_result& result,
                              const std::vector<timestamp_t>& times) {
  const engine e = engine::create(result);
  std::vector<account_index> accounts;
  std::vector<timestamp_t> at;
  for (int a = 0; a <= 3; ++a) {
    const account_index index = table.accounts.find("a" + std::to_string(a)).value_or(account_none);
    for (const timestamp_t t : times) {
      accounts.push_back(index);
      at.push_back(t);
    }
  }
  std::vector<amount_t> batch = e.balances(accounts, at);
  for (std::size_t i = 0; i < batch.size(); ++i) {
    if (e.balance(accounts[i], at[i]).value_or(0) != batch[i]) fail("batch differs from single queries");
  }
  return batch;
}

// Feeds `events` to GPUCredit one call at a time, in arrival order, asking for one
// balance after each call; checks every refusal and answer against the reference.
void check_compatible_class(const std::vector<naive_event>& events, overdraft_policy policy,
                            const std::vector<timestamp_t>& times) {
  GPUCredit credits(policy);
  std::vector<naive_event> taken;  // the calls it accepted, in arrival order
  auto reference = [&](int account, timestamp_t t) {
    const test::naive_answer a = test::naive_at(taken, account, t, policy);
    return a.balance == 0 ? std::optional<std::int64_t>() : std::optional<std::int64_t>(static_cast<amount_t>(a.balance));
  };
  for (std::size_t i = 0; i < events.size(); ++i) {
    const naive_event& e = events[i];
    const std::string account = "a" + std::to_string(e.account);
    std::vector<naive_event> with = taken;
    with.push_back(e);
    const bool overflows = test::naive_at(with, e.account, timestamp_max, policy).overflow;
    bool refused = false;
    try {
      if (e.kind == op::add) {
        credits.addCredit(account, e.amount, e.timestamp, e.expiration);
      } else if (e.kind == op::run) {
        credits.runCredit(account, e.timestamp, e.amount, e.expiration);
      } else {
        credits.useCredit(account, e.timestamp, e.amount);
      }
    } catch (const input_error&) {
      refused = true;
    }
    if (refused != overflows) fail(refused ? "GPUCredit refused a call the reference takes" : "GPUCredit took an overflowing call");
    if (!refused) taken.push_back(e);
    const timestamp_t t = times[(i * 7 + static_cast<std::size_t>(e.amount)) % times.size()];
    if (credits.getBalance(account, t) != reference(e.account, t)) fail("GPUCredit differs from the reference mid-stream");
  }
  for (int a = 0; a <= 3; ++a) {
    for (const timestamp_t t : times) {
      if (credits.getBalance("a" + std::to_string(a), t) != reference(a, t)) fail("GPUCredit differs from the reference");
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const overdraft_policy policy = (data[0] & 1) != 0 ? overdraft_policy::reject : overdraft_policy::drain;
  const std::vector<naive_event> events = decode(data + 1, size - 1);
  std::vector<std::size_t> arrival(events.size());
  for (std::size_t i = 0; i < arrival.size(); ++i) arrival[i] = i;
  std::vector<std::size_t> by_time = arrival;
  std::stable_sort(by_time.begin(), by_time.end(),
                   [&](std::size_t x, std::size_t y) { return events[x].timestamp < events[y].timestamp; });

  check_compatible_class(events, policy, probe_times(events));

  bool overflow = false;
  for (int a = 0; a < 3; ++a) overflow |= test::naive_at(events, a, timestamp_max, policy).overflow;
  const event_table table = table_of(events, arrival);
  ledger_result result;
  try {
    result = replay(table, policy);
  } catch (const input_error&) {
    if (!overflow) fail("refused a ledger the reference accepts");
    return 0;
  }
  if (overflow) fail("accepted a balance beyond int64");

  const std::vector<timestamp_t> times = probe_times(events);
  const std::vector<amount_t> got = answers(table, result, times);
  std::size_t k = 0;
  for (int a = 0; a <= 3; ++a) {
    for (const timestamp_t t : times) {
      const test::naive_answer want = test::naive_at(events, a, t, policy);
      if (got[k++] != static_cast<amount_t>(want.balance)) fail("balance differs from the reference");
    }
  }
  const usage_table& unpaid = policy == overdraft_policy::drain ? result.shortfalls : result.rejections;
  std::vector<std::pair<std::size_t, amount_t>> got_unpaid;
  std::vector<std::pair<std::size_t, amount_t>> want_unpaid;
  for (std::size_t i = 0; i < unpaid.size(); ++i) got_unpaid.emplace_back(unpaid.row[i], unpaid.amount[i]);
  for (int a = 0; a < 3; ++a) {
    for (const auto& u : test::naive_at(events, a, timestamp_max, policy).unpaid_uses) want_unpaid.push_back(u);
  }
  std::sort(got_unpaid.begin(), got_unpaid.end());
  std::sort(want_unpaid.begin(), want_unpaid.end());
  if (got_unpaid != want_unpaid) fail("unpaid uses differ from the reference");

  // The same events given in time order answer the same. (Not with jobs: a job's ticks
  // keep its arrival, so a job arriving after an event at a later time ticks after it
  // there; sorting by start would move it ahead, SPEC section 10.)
  const bool jobs = std::any_of(events.begin(), events.end(), [](const naive_event& e) { return e.kind == op::run; });
  if (!jobs) {
    const event_table sorted_table = table_of(events, by_time);
    if (answers(sorted_table, replay(sorted_table, policy), times) != got) fail("event order changed an answer");
  }
  return 0;
}
