// Proves, on many thousands of seeded random ledgers, that the library agrees with the
// naive reference of test_support.hpp and holds its metamorphic properties:
// - every balance (all accounts, every time around every event and expiry, the int64
//   ends), every shortfall and every rejection equals the reference's;
// - conservation, exactly, at every such time: granted = consumed + expired unused +
//   balance, and asked = consumed + shortfall (drain) or + rejected (reject), where
//   consumed and expired are read off the interval table alone;
// - shuffling events with distinct timestamps changes nothing;
// - a batch of queries answers exactly as the same queries one by one;
// - a balance beyond int64 is refused exactly when the reference sees one.
// Failures print the seed; GPUCREDIT_TEST_SEED replaces the base seed.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/events.hpp"
#include "gpucredit/ledger.hpp"
#include "test_support.hpp"

namespace gpucredit {
namespace {

using test::naive_event;
using test::wide;

std::uint64_t base_seed() { return test::base_seed(20261129); }

struct profile {
  int accounts_max;
  int events_max;
  timestamp_t time_lo, time_hi;
  timestamp_t expiration_max;
  amount_t amount_max;
  amount_t use_max;
  bool distinct_times;
};

constexpr profile small_profile{3, 40, -5, 30, 15, 12, 25, false};
constexpr profile dense_profile{2, 80, 0, 12, 6, 5, 9, false};

struct random_case {
  std::vector<naive_event> events;
  int accounts = 0;
};

random_case make_case(std::mt19937_64& rng, const profile& p) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  random_case c;
  c.accounts = static_cast<int>(pick(1, p.accounts_max));
  const auto n = static_cast<int>(pick(0, p.events_max));
  std::set<std::pair<int, timestamp_t>> used_times;
  for (int i = 0; i < n; ++i) {
    naive_event e{};
    e.account = static_cast<int>(pick(0, c.accounts - 1));
    e.timestamp = pick(p.time_lo, p.time_hi);
    if (p.distinct_times) {
      if (!used_times.insert({e.account, e.timestamp}).second) continue;
    }
    if (pick(0, 9) < 5) {
      e.kind = op::add;
      e.amount = pick(0, p.amount_max);
      e.expiration = pick(0, p.expiration_max);
    } else {
      e.kind = op::use;
      e.amount = pick(0, p.use_max);
    }
    c.events.push_back(e);
  }
  return c;
}

using test::account_name;
using test::probe_times;
using test::to_table;

// Consumption and expiry read off the interval table alone, per (account, t).
struct flows {
  std::vector<std::tuple<account_index, timestamp_t, amount_t>> drops;    // used at that time
  std::vector<std::tuple<account_index, timestamp_t, amount_t>> expiries;  // held until end, then expired
};

flows flows_from_intervals(const event_table& events, const interval_table& intervals) {
  std::map<event_row, std::vector<std::size_t>> rows_by_credit;
  for (std::size_t i = 0; i < intervals.size(); ++i) rows_by_credit[intervals.credit[i]].push_back(i);
  flows f;
  for (event_row r = 0; r < events.size(); ++r) {
    if (events.kind[r] != op::add || events.amount[r] == 0) continue;
    const account_index a = events.account[r];
    const timestamp_t start = events.timestamp[r];
    const timestamp_t end = events.end[r];
    std::vector<std::size_t> rows = rows_by_credit[r];
    std::sort(rows.begin(), rows.end(), [&](std::size_t x, std::size_t y) { return intervals.begin[x] < intervals.begin[y]; });
    if (rows.empty()) {
      f.drops.emplace_back(a, start, events.amount[r]);  // used up at its very start
      continue;
    }
    EXPECT_EQ(intervals.begin[rows[0]], start) << "credit row " << r << ": first stretch must begin at its start";
    if (events.amount[r] != intervals.amount[rows[0]]) {
      f.drops.emplace_back(a, start, events.amount[r] - intervals.amount[rows[0]]);
    }
    for (std::size_t k = 0; k < rows.size(); ++k) {
      const std::size_t i = rows[k];
      EXPECT_LE(intervals.begin[i], intervals.end[i]);
      EXPECT_GT(intervals.amount[i], 0);
      EXPECT_EQ(intervals.account[i], a);
      if (k + 1 < rows.size()) {
        const std::size_t j = rows[k + 1];
        EXPECT_EQ(intervals.begin[j] - 1, intervals.end[i]) << "stretches of one credit must touch";
        EXPECT_LT(intervals.amount[j], intervals.amount[i]) << "a credit's amount only falls";
        f.drops.emplace_back(a, intervals.begin[j], intervals.amount[i] - intervals.amount[j]);
      } else if (intervals.end[i] == end) {
        f.expiries.emplace_back(a, end, intervals.amount[i]);
      } else {
        EXPECT_LT(intervals.end[i], end);
        f.drops.emplace_back(a, intervals.end[i] + 1, intervals.amount[i]);
      }
    }
  }
  return f;
}

wide sum_events(const event_table& events, account_index a, op kind, timestamp_t t) {
  wide total = 0;
  for (std::size_t r = 0; r < events.size(); ++r) {
    if (events.account[r] == a && events.kind[r] == kind && events.timestamp[r] <= t) total += events.amount[r];
  }
  return total;
}

// Windows whose totals passed int64, counted so a test can prove it met some.
std::size_t beyond_int64 = 0;

void check_case(const random_case& c, overdraft_policy policy) {
  const event_table table = to_table(c.events);
  bool reference_overflows = false;
  for (int a = 0; a < c.accounts; ++a) {
    reference_overflows |= test::naive_at(c.events, a, timestamp_max, policy).overflow;
  }
  ledger_result result;
  try {
    result = replay(table, policy);
  } catch (const input_error& e) {
    EXPECT_TRUE(reference_overflows) << "unexpected refusal: " << e.what();
    return;
  }
  ASSERT_FALSE(reference_overflows) << "a balance beyond int64 was not refused";

  const engine answers = engine::create(result, test::backend_under_test());
  const std::vector<timestamp_t> times = probe_times(c.events);
  const flows f = flows_from_intervals(table, result.intervals);
  const usage_table& unpaid = policy == overdraft_policy::drain ? result.shortfalls : result.rejections;
  EXPECT_EQ((policy == overdraft_policy::drain ? result.rejections : result.shortfalls).size(), 0U);

  std::vector<account_index> batch_accounts;
  std::vector<timestamp_t> batch_times;
  std::vector<amount_t> one_by_one;
  for (int name = 0; name <= c.accounts; ++name) {  // the last one is unknown to the ledger
    const std::optional<std::uint32_t> found = table.accounts.find(account_name(name));
    const account_index a = found.value_or(account_none);
    for (const timestamp_t t : times) {
      const test::naive_answer want = test::naive_at(c.events, name, t, policy);
      const std::optional<amount_t> got = answers.balance(a, t);
      ASSERT_EQ(got.value_or(0), static_cast<amount_t>(want.balance)) << account_name(name) << " at " << t;
      // Which credits hold what, not only the sum: the draw order shows here.
      std::vector<std::pair<std::size_t, amount_t>> held;
      for (std::size_t i = 0; i < result.intervals.size(); ++i) {
        if (result.intervals.account[i] == a && result.intervals.begin[i] <= t && t <= result.intervals.end[i]) {
          held.emplace_back(result.intervals.credit[i], result.intervals.amount[i]);
        }
      }
      std::sort(held.begin(), held.end());
      std::vector<std::pair<std::size_t, amount_t>> want_held = want.held;
      std::sort(want_held.begin(), want_held.end());
      ASSERT_EQ(held, want_held) << account_name(name) << " at " << t;
      batch_accounts.push_back(a);
      batch_times.push_back(t);
      one_by_one.push_back(got.value_or(0));
      if (a == account_none) continue;

      wide consumed = 0;
      wide expired = 0;
      wide unpaid_total = 0;
      for (const auto& [acc, when, amount] : f.drops) consumed += (acc == a && when <= t) ? amount : 0;
      for (const auto& [acc, end, amount] : f.expiries) expired += (acc == a && end < t) ? amount : 0;
      for (std::size_t i = 0; i < unpaid.size(); ++i) {
        unpaid_total += (unpaid.account[i] == a && unpaid.timestamp[i] <= t) ? unpaid.amount[i] : 0;
      }
      const wide granted = sum_events(table, a, op::add, t);
      const wide asked = sum_events(table, a, op::use, t);
      ASSERT_TRUE(granted == consumed + expired + wide{got.value_or(0)}) << "conservation at " << t;
      ASSERT_TRUE(asked == consumed + unpaid_total) << "usage identity at " << t;
      ASSERT_TRUE(consumed == want.consumed && expired == want.expired && unpaid_total == want.unpaid)
          << "flows differ from the reference at " << t;
      // The per-credit breakdown adds up to the same figures.
      wide credit_consumed = 0;
      wide credit_expired = 0;
      wide credit_remaining = 0;
      for (const credit_state& cs : credits_at(table, result, a, t)) {
        ASSERT_EQ(cs.granted, cs.consumed + cs.remaining + cs.expired) << "credit row " << cs.credit;
        ASSERT_TRUE(cs.active || cs.remaining == 0);
        ASSERT_TRUE(cs.end < t || cs.expired == 0);
        credit_consumed += cs.consumed;
        credit_expired += cs.expired;
        credit_remaining += cs.remaining;
      }
      ASSERT_TRUE(credit_consumed == want.consumed && credit_expired == want.expired &&
                  credit_remaining == want.balance)
          << "breakdown differs from the reference at " << t;
    }
    if (a == account_none) continue;
    // Each unpaid use, by arrival, equals the reference's.
    std::vector<std::pair<std::size_t, amount_t>> got_unpaid;
    for (std::size_t i = 0; i < unpaid.size(); ++i) {
      if (unpaid.account[i] == a) got_unpaid.emplace_back(unpaid.row[i], unpaid.amount[i]);
    }
    std::sort(got_unpaid.begin(), got_unpaid.end());
    auto want_unpaid = test::naive_at(c.events, name, timestamp_max, policy).unpaid_uses;
    std::sort(want_unpaid.begin(), want_unpaid.end());
    EXPECT_EQ(got_unpaid, want_unpaid);
  }
  EXPECT_EQ(answers.balances(batch_accounts, batch_times), one_by_one);

  // Windows (from, to]: every figure equals the reference's difference, and the identity
  // balance_to = balance_from + granted - consumed - expired holds.
  for (std::size_t k = 0; k + 1 < times.size(); k += std::max<std::size_t>(1, times.size() / 5)) {
    const timestamp_t from = times[k];
    const timestamp_t to = times[std::min(times.size() - 1, k + 1 + (k * 7) % times.size())];
    // Totals over a window may pass int64 (balances never do): they stay exact.
    const std::vector<account_window> windows = window_summary(table, result, from, to);
    for (int name = 0; name < c.accounts; ++name) {
      const std::optional<std::uint32_t> found = table.accounts.find(account_name(name));
      if (!found) continue;
      const account_window& w = windows[*found];
      const test::naive_answer at_from = test::naive_at(c.events, name, from, policy);
      const test::naive_answer at_to = test::naive_at(c.events, name, to, policy);
      SCOPED_TRACE(account_name(name) + " over (" + std::to_string(from) + ", " + std::to_string(to) + "]");
      ASSERT_TRUE(w.balance_from == at_from.balance && w.balance_to == at_to.balance);
      ASSERT_TRUE(w.granted == at_to.granted - at_from.granted);
      ASSERT_TRUE(w.consumed == at_to.consumed - at_from.consumed);
      ASSERT_TRUE(w.expired == at_to.expired - at_from.expired);
      ASSERT_TRUE((policy == overdraft_policy::drain ? w.shortfall : w.rejected) == at_to.unpaid - at_from.unpaid);
      ASSERT_EQ(policy == overdraft_policy::drain ? w.rejected : w.shortfall, 0);
      ASSERT_TRUE(wide{w.balance_to} == wide{w.balance_from} + w.granted - w.consumed - w.expired);
      beyond_int64 += w.granted > amount_max || w.consumed > amount_max || w.expired > amount_max ||
                      w.shortfall > amount_max || w.rejected > amount_max;
    }
  }
}

void run_many(const profile& p, overdraft_policy policy, int cases, std::uint64_t salt) {
  for (int i = 0; i < cases; ++i) {
    const std::uint64_t seed = base_seed() * 1000003 + salt * 100000 + static_cast<std::uint64_t>(i);
    std::mt19937_64 rng(seed);
    const random_case c = make_case(rng, p);
    SCOPED_TRACE("seed " + std::to_string(seed) + " (GPUCREDIT_TEST_SEED=" + std::to_string(base_seed()) + ")");
    check_case(c, policy);
    if (::testing::Test::HasFatalFailure() || ::testing::Test::HasNonfatalFailure()) return;
  }
}

TEST(Differential, SmallLedgersDrain) { run_many(small_profile, overdraft_policy::drain, 5000, 1); }
TEST(Differential, SmallLedgersReject) { run_many(small_profile, overdraft_policy::reject, 5000, 2); }
TEST(Differential, DenseCollisionsDrain) { run_many(dense_profile, overdraft_policy::drain, 3000, 3); }
TEST(Differential, DenseCollisionsReject) { run_many(dense_profile, overdraft_policy::reject, 3000, 4); }

TEST(Differential, Int64Extremes) {
  // Times at both ends of int64 and amounts near its top: overflow refusals, ends at
  // the largest timestamp, and sums that only fit in int64 at the end.
  for (int i = 0; i < 1500; ++i) {
    const std::uint64_t seed = base_seed() * 7 + static_cast<std::uint64_t>(i);
    std::mt19937_64 rng(seed);
    SCOPED_TRACE("seed " + std::to_string(seed));
    auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
    random_case c;
    c.accounts = 2;
    const int n = static_cast<int>(pick(1, 12));
    for (int k = 0; k < n; ++k) {
      naive_event e{};
      e.account = static_cast<int>(pick(0, 1));
      const bool high = pick(0, 1) == 1;
      e.timestamp = high ? timestamp_max - pick(0, 20) : timestamp_min + pick(0, 20);
      const amount_t big = amount_max / 3 + pick(-2, 2);
      e.amount = pick(0, 3) == 0 ? pick(0, 10) : big;
      if (pick(0, 1) == 0) {
        e.kind = op::add;
        const timestamp_t room = e.timestamp < 0 ? timestamp_max : timestamp_max - e.timestamp;
        e.expiration = pick(0, 2) == 0 ? room : std::min<timestamp_t>(room, pick(0, 30));
      } else {
        e.kind = op::use;
      }
      c.events.push_back(e);
    }
    check_case(c, i % 2 == 0 ? overdraft_policy::drain : overdraft_policy::reject);
    if (HasFailure()) return;
  }
  EXPECT_GT(beyond_int64, 0U) << "no window total passed int64: the exact totals went untested";
}

// Interval rows of a ledger, named by account and credit label so that two event
// orders can be compared.
std::vector<std::tuple<std::string, std::string, timestamp_t, timestamp_t, amount_t>> named_rows(
    const event_table& table, const interval_table& intervals) {
  std::vector<std::tuple<std::string, std::string, timestamp_t, timestamp_t, amount_t>> rows;
  for (std::size_t i = 0; i < intervals.size(); ++i) {
    rows.emplace_back(std::string(table.accounts[intervals.account[i]]), std::string(table.credit_label(intervals.credit[i])),
                      intervals.begin[i], intervals.end[i], intervals.amount[i]);
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

TEST(Metamorphic, ShufflingDistinctTimesChangesNothing) {
  profile p = small_profile;
  p.distinct_times = true;
  p.events_max = 30;
  for (int i = 0; i < 1500; ++i) {
    const std::uint64_t seed = base_seed() * 13 + static_cast<std::uint64_t>(i);
    std::mt19937_64 rng(seed);
    SCOPED_TRACE("seed " + std::to_string(seed));
    const random_case c = make_case(rng, p);
    // Labels travel with their events: name each add once, then shuffle.
    std::vector<std::pair<naive_event, std::size_t>> labelled;
    for (std::size_t k = 0; k < c.events.size(); ++k) labelled.emplace_back(c.events[k], k);
    auto build = [](const std::vector<std::pair<naive_event, std::size_t>>& events) {
      event_table table;
      for (std::size_t k = 0; k < events.size(); ++k) {
        const auto& [e, label] = events[k];
        if (e.kind == op::add) {
          table.add(account_name(e.account), "c" + std::to_string(label), e.timestamp, e.amount, e.expiration, k + 2);
        } else {
          table.use(account_name(e.account), e.timestamp, e.amount, k + 2);
        }
      }
      return table;
    };
    const event_table original = build(labelled);
    std::shuffle(labelled.begin(), labelled.end(), rng);
    const event_table shuffled = build(labelled);
    for (const overdraft_policy policy : {overdraft_policy::drain, overdraft_policy::reject}) {
      const ledger_result a = replay(original, policy);
      const ledger_result b = replay(shuffled, policy);
      ASSERT_EQ(named_rows(original, a.intervals), named_rows(shuffled, b.intervals));
      const engine ea = engine::create(a, test::backend_under_test());
      const engine eb = engine::create(b, test::backend_under_test());
      for (int name = 0; name < c.accounts; ++name) {
        const auto ia = original.accounts.find(account_name(name)).value_or(account_none);
        const auto ib = shuffled.accounts.find(account_name(name)).value_or(account_none);
        for (const timestamp_t t : probe_times(c.events)) ASSERT_EQ(ea.balance(ia, t), eb.balance(ib, t)) << t;
      }
    }
  }
}

TEST(Metamorphic, HeavyAccountWithManyLiveCredits) {
  // Tens of thousands of live credits in one account: the replay keeps them in a heap,
  // and every draw must still take the soonest-expiring first. Checked against the
  // reference at a sample of times (the reference is quadratic).
  std::mt19937_64 rng(base_seed());
  std::vector<naive_event> events;
  const int credits = 30000;
  for (int i = 0; i < credits; ++i) {
    events.push_back({op::add, 0, static_cast<timestamp_t>(i), 1 + static_cast<amount_t>(rng() % 5),
                      static_cast<timestamp_t>(rng() % 100000)});
  }
  for (int i = 0; i < 1000; ++i) {
    events.push_back({op::use, 0, static_cast<timestamp_t>(rng() % 40000), static_cast<amount_t>(rng() % 20), 0});
  }
  const event_table table = to_table(events);
  const ledger_result result = replay(table);
  const engine answers = engine::create(result, test::backend_under_test());
  for (const timestamp_t t : {timestamp_t{-1}, timestamp_t{12345}, timestamp_t{40000}, timestamp_t{77777}}) {
    const test::naive_answer want = test::naive_at(events, 0, t, overdraft_policy::drain);
    EXPECT_EQ(answers.balance(0, t).value_or(0), static_cast<amount_t>(want.balance)) << t;
  }
}

}  // namespace
}  // namespace gpucredit
