// Proves metered jobs (SPEC section 10): on random ledgers with jobs, both policies and
// int64 ends, every balance, every credit's holding, every unpaid job and use, every
// window summary and the interval identity with slopes equal the naive reference, which
// expands each job into its ticks; metamorphic properties (a job split in two, a
// one-tick job against a use, doubled amounts); and jobs of 10^12 ticks in closed form.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <set>

#include "cpu/query/engine_impl.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/ledger.hpp"
#include "gpucredit/report.hpp"
#include "test_support.hpp"

namespace gpucredit {
namespace {

using test::naive_event;
using test::wide;

std::uint64_t base_seed() { return test::base_seed(20261202); }

using test::account_name;
using test::probe_times;
using test::to_table;

struct job_profile {
  int accounts_max;
  int events_max;
  timestamp_t time_lo, time_hi;
  amount_t add_max;
  timestamp_t expiration_max;
  amount_t use_max;
  amount_t rate_max;
  timestamp_t ticks_max;
};

constexpr job_profile small_jobs{2, 14, -4, 24, 60, 20, 25, 7, 16};
constexpr job_profile busy_jobs{1, 24, 0, 12, 30, 8, 10, 4, 10};  // many jobs at once, many ties

std::vector<naive_event> make_case(std::mt19937_64& rng, const job_profile& p, int& accounts) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  accounts = static_cast<int>(pick(1, p.accounts_max));
  std::vector<naive_event> events;
  const auto n = static_cast<int>(pick(0, p.events_max));
  for (int i = 0; i < n; ++i) {
    naive_event e{};
    e.account = static_cast<int>(pick(0, accounts - 1));
    e.timestamp = pick(p.time_lo, p.time_hi);
    const std::int64_t kind = pick(0, 9);
    if (kind < 4) {
      e.kind = op::add;
      e.amount = pick(0, p.add_max);
      e.expiration = pick(0, p.expiration_max);
    } else if (kind < 6) {
      e.kind = op::use;
      e.amount = pick(0, p.use_max);
    } else {
      e.kind = op::run;
      e.amount = pick(0, p.rate_max);
      e.expiration = pick(0, p.ticks_max);
    }
    events.push_back(e);
  }
  return events;
}

// Near the int64 ends: times at both ends, amounts and rate x ticks near the top.
std::vector<naive_event> make_extreme_case(std::mt19937_64& rng, int& accounts) {
  auto pick = [&](std::int64_t lo, std::int64_t hi) { return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng); };
  accounts = 1;
  std::vector<naive_event> events;
  const bool high = pick(0, 1) == 1;
  const auto n = static_cast<int>(pick(1, 10));
  for (int i = 0; i < n; ++i) {
    naive_event e{};
    e.timestamp = high ? timestamp_max - pick(0, 14) : timestamp_min + pick(0, 14);
    const std::int64_t kind = pick(0, 2);
    if (kind == 0) {
      e.kind = op::add;
      e.amount = pick(0, 1) == 0 ? pick(0, 40) : amount_max / 2 + pick(0, 3);
      const timestamp_t room = e.timestamp > 0 ? timestamp_max - e.timestamp : timestamp_max;  // end within int64
      e.expiration = pick(0, 2) == 0 ? room : std::min<timestamp_t>(room, pick(0, 12));
    } else if (kind == 1) {
      e.kind = op::use;
      e.amount = pick(0, 1) == 0 ? pick(0, 30) : amount_max / 3;
    } else {
      e.kind = op::run;
      // The last tick stays within int64: at most room + 1 ticks.
      const timestamp_t room = e.timestamp > 0 ? timestamp_max - e.timestamp : timestamp_max - 1;
      e.expiration = std::min<timestamp_t>(room + 1, pick(0, 12));
      e.amount = pick(0, 1) == 0 ? pick(0, 9) : (e.expiration > 0 ? amount_max / e.expiration / 4 : 0);
    }
    events.push_back(e);
  }
  return events;
}

// The interval identity with slopes, per credit: what the rows say each credit holds at t.
std::map<std::size_t, amount_t> held_by_rows(const interval_table& rows, account_index a, timestamp_t t) {
  std::map<std::size_t, amount_t> held;
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (rows.account[i] != a || rows.begin[i] > t || t > rows.end[i]) continue;
    EXPECT_EQ(held.count(rows.credit[i]), 0U) << "two rows of credit " << rows.credit[i] << " cover " << t;
    held[rows.credit[i]] = rows.held_at(i, t);
  }
  return held;
}

std::size_t cases_with_slopes = 0;  // counted, so a test can prove the slopes were exercised

void check_case(const std::vector<naive_event>& events, int accounts, overdraft_policy policy) {
  const event_table table = to_table(events);
  bool overflows = false;
  for (int a = 0; a < accounts; ++a) overflows |= test::naive_at(events, a, timestamp_max, policy).overflow;
  ledger_result result;
  try {
    result = replay(table, policy);
  } catch (const input_error& e) {
    EXPECT_TRUE(overflows) << "unexpected refusal: " << e.what();
    return;
  }
  ASSERT_FALSE(overflows) << "a balance beyond int64 was not refused";
  cases_with_slopes += result.intervals.has_slopes();

  const interval_table& rows = result.intervals;
  for (std::size_t i = 0; i < rows.size(); ++i) {  // every row positive throughout, slopes not negative
    ASSERT_LE(rows.begin[i], rows.end[i]);
    ASSERT_GE(rows.slope_of(i), 0);
    ASSERT_GT(rows.held_at(i, rows.end[i]), 0) << "row " << i;
    ASSERT_GT(rows.amount[i], 0);
  }
  const engine cpu = engine::create(result, backend::cpu);
  const engine under_test = engine::create(result, test::backend_under_test());
  const std::vector<timestamp_t> times = probe_times(events);
  const usage_table& unpaid = policy == overdraft_policy::drain ? result.shortfalls : result.rejections;
  for (int name = 0; name <= accounts; ++name) {  // the last one is unknown to the ledger
    const account_index a = table.accounts.find(account_name(name)).value_or(account_none);
    std::vector<account_index> qa(times.size(), a);
    const std::vector<amount_t> batch = under_test.balances(qa, times);
    for (std::size_t k = 0; k < times.size(); ++k) {
      const timestamp_t t = times[k];
      const test::naive_answer want = test::naive_at(events, name, t, policy);
      ASSERT_EQ(cpu.balance(a, t).value_or(0), static_cast<amount_t>(want.balance)) << account_name(name) << " at " << t;
      ASSERT_EQ(batch[k], static_cast<amount_t>(want.balance)) << "backend under test, at " << t;
      if (a == account_none) continue;
      // Which credits hold what: the draw order, tick by tick.
      const std::map<std::size_t, amount_t> held = held_by_rows(rows, a, t);
      std::map<std::size_t, amount_t> want_held(want.held.begin(), want.held.end());
      ASSERT_EQ(held, want_held) << account_name(name) << " at " << t;
      // The breakdown adds up the same.
      wide consumed = 0;
      wide expired = 0;
      std::vector<std::pair<std::size_t, amount_t>> to_jobs;
      for (const credit_state& c : credits_at(table, result, a, t)) {
        ASSERT_EQ(c.granted, c.consumed + c.remaining + c.expired);
        ASSERT_LE(c.to_jobs, c.consumed);
        consumed += c.consumed;
        expired += c.expired;
        if (c.to_jobs > 0) to_jobs.emplace_back(c.credit, c.to_jobs);
      }
      ASSERT_TRUE(consumed == want.consumed && expired == want.expired) << "breakdown at " << t;
      std::vector<std::pair<std::size_t, amount_t>> want_to_jobs = want.to_jobs;
      std::sort(want_to_jobs.begin(), want_to_jobs.end());
      ASSERT_EQ(to_jobs, want_to_jobs) << "what each credit gave to jobs, at " << t;
    }
    if (a == account_none) continue;
    // One record per unpaid use and per unpaid job (its total, from its first unpaid tick).
    const test::naive_answer all = test::naive_at(events, name, timestamp_max, policy);
    std::vector<std::pair<std::size_t, amount_t>> got;
    std::map<std::size_t, timestamp_t> got_first;
    for (std::size_t i = 0; i < unpaid.size(); ++i) {
      if (unpaid.account[i] != a) continue;
      got.emplace_back(unpaid.row[i], unpaid.amount[i]);
      if (table.kind[unpaid.row[i]] == op::run) got_first[unpaid.row[i]] = unpaid.timestamp[i];
    }
    std::vector<std::pair<std::size_t, amount_t>> want = all.unpaid_uses;
    std::sort(got.begin(), got.end());
    std::sort(want.begin(), want.end());
    ASSERT_EQ(got, want) << account_name(name);
    const std::map<std::size_t, timestamp_t> want_first(all.unpaid_first.begin(), all.unpaid_first.end());
    ASSERT_EQ(got_first, want_first);
  }

  // Windows (from, to] with jobs: every figure, and the identity.
  for (std::size_t k = 0; k + 1 < times.size(); k += std::max<std::size_t>(1, times.size() / 6)) {
    const timestamp_t from = times[k];
    const timestamp_t to = times[std::min(times.size() - 1, k + 1 + (k * 5) % times.size())];
    const std::vector<account_window> windows = window_summary(table, result, from, to);
    for (int name = 0; name < accounts; ++name) {
      const std::optional<std::uint32_t> found = table.accounts.find(account_name(name));
      if (!found) continue;
      const account_window& w = windows[*found];
      const test::naive_answer f = test::naive_at(events, name, from, policy);
      const test::naive_answer t = test::naive_at(events, name, to, policy);
      SCOPED_TRACE(account_name(name) + " over (" + std::to_string(from) + ", " + std::to_string(to) + "]");
      ASSERT_TRUE(w.balance_from == f.balance && w.balance_to == t.balance);
      ASSERT_TRUE(w.granted == t.granted - f.granted);
      ASSERT_TRUE(w.consumed == t.consumed - f.consumed);
      ASSERT_TRUE(w.expired == t.expired - f.expired);
      ASSERT_TRUE((policy == overdraft_policy::drain ? w.shortfall : w.rejected) == t.unpaid - f.unpaid);
      ASSERT_TRUE(wide{w.balance_to} == wide{w.balance_from} + w.granted - w.consumed - w.expired);
    }
  }
}

void run_many(const job_profile& p, overdraft_policy policy, int cases, std::uint64_t salt) {
  for (int i = 0; i < cases; ++i) {
    const std::uint64_t seed = base_seed() * 1000003 + salt * 100000 + static_cast<std::uint64_t>(i);
    std::mt19937_64 rng(seed);
    int accounts = 0;
    const std::vector<naive_event> events = make_case(rng, p, accounts);
    SCOPED_TRACE("seed " + std::to_string(seed) + " (GPUCREDIT_TEST_SEED=" + std::to_string(base_seed()) + ")");
    check_case(events, accounts, policy);
    if (::testing::Test::HasFailure()) return;
  }
}

TEST(JobsDifferential, SmallLedgersDrain) { run_many(small_jobs, overdraft_policy::drain, 1500, 1); }
TEST(JobsDifferential, SmallLedgersReject) { run_many(small_jobs, overdraft_policy::reject, 1500, 2); }
TEST(JobsDifferential, ManyJobsAtOnceDrain) { run_many(busy_jobs, overdraft_policy::drain, 800, 3); }
TEST(JobsDifferential, ManyJobsAtOnceReject) {
  run_many(busy_jobs, overdraft_policy::reject, 800, 4);
  EXPECT_GT(cases_with_slopes, 100U) << "few ledgers drew in runs: the closed form went untested";
}

TEST(JobsDifferential, Int64Extremes) {
  for (int i = 0; i < 600; ++i) {
    const std::uint64_t seed = base_seed() * 31 + static_cast<std::uint64_t>(i);
    std::mt19937_64 rng(seed);
    int accounts = 0;
    const std::vector<naive_event> events = make_extreme_case(rng, accounts);
    SCOPED_TRACE("seed " + std::to_string(seed));
    check_case(events, accounts, i % 2 == 0 ? overdraft_policy::drain : overdraft_policy::reject);
    if (HasFailure()) return;
  }
}

// ---- metamorphic ---------------------------------------------------------------------

std::vector<amount_t> balances_of(const std::vector<naive_event>& events, int accounts, overdraft_policy policy,
                                  const std::vector<timestamp_t>& times) {
  const event_table table = to_table(events);
  const engine e = engine::create(replay(table, policy));
  std::vector<amount_t> out;
  for (int name = 0; name < accounts; ++name) {
    const account_index a = table.accounts.find(account_name(name)).value_or(account_none);
    for (const timestamp_t t : times) out.push_back(e.balance(a, t).value_or(0));
  }
  return out;
}

// Every interval row, its credit named by its account and its place among the adds (not
// by its arrival row, which moves when jobs are cut into several), sorted (accounts are
// numbered by first appearance, which a job of no ticks changes): two ledgers whose adds
// are the same have comparable rows.
using row_tuple = std::tuple<std::string, timestamp_t, timestamp_t, amount_t, amount_t>;
std::vector<row_tuple> rows_of(const std::vector<naive_event>& events, overdraft_policy policy) {
  const event_table table = to_table(events);
  const ledger_result r = replay(table, policy);
  std::vector<std::size_t> add_number(events.size(), 0);
  for (std::size_t k = 0, adds = 0; k < events.size(); ++k) {
    add_number[k] = adds;
    adds += events[k].kind == op::add ? 1U : 0U;
  }
  std::vector<row_tuple> rows;
  for (std::size_t i = 0; i < r.intervals.size(); ++i) {
    rows.emplace_back(std::string(table.accounts[r.intervals.account[i]]) + "/add-" +
                          std::to_string(add_number[r.intervals.credit[i]]),
                      r.intervals.begin[i], r.intervals.end[i], r.intervals.amount[i], r.intervals.slope_of(i));
  }
  std::sort(rows.begin(), rows.end());
  return rows;
}

std::string describe(const std::vector<naive_event>& events, const std::vector<row_tuple>& rows) {
  std::string text;
  for (const naive_event& e : events) {
    text += (e.kind == op::add ? "add" : e.kind == op::use ? "use" : "run") + std::string(" a") +
            std::to_string(e.account) + " t" + std::to_string(e.timestamp) + " v" + std::to_string(e.amount) + " x" +
            std::to_string(e.expiration) + "\n";
  }
  for (const auto& [credit, begin, end, amount, slope] : rows) {
    text += credit + " [" + std::to_string(begin) + "," + std::to_string(end) + "] " + std::to_string(amount) +
            " slope " + std::to_string(slope) + "\n";
  }
  return text;
}

bool overflows(const std::vector<naive_event>& events, int accounts, overdraft_policy policy) {
  bool overflow = false;
  for (int a = 0; a < accounts; ++a) overflow |= test::naive_at(events, a, timestamp_max, policy).overflow;
  return overflow;
}

// `events` and `regrouped` draw the same ticks in the same order, grouped into other
// jobs: under each policy (where `events` passes no int64 bound) they give the same
// balances at every probe time and the same maximal rows. Returns the policies compared.
std::size_t expect_same_holdings(const std::vector<naive_event>& events, const std::vector<naive_event>& regrouped,
                                 int accounts, int i) {
  std::size_t compared = 0;
  for (const overdraft_policy policy : {overdraft_policy::drain, overdraft_policy::reject}) {
    if (overflows(events, accounts, policy)) continue;
    const std::vector<timestamp_t> times = probe_times(events);
    EXPECT_EQ(balances_of(events, accounts, policy, times), balances_of(regrouped, accounts, policy, times))
        << "case " << i;
    const std::vector<row_tuple> rows = rows_of(events, policy);
    const std::vector<row_tuple> regrouped_rows = rows_of(regrouped, policy);
    EXPECT_EQ(rows, regrouped_rows) << "case " << i << " policy " << static_cast<int>(policy) << "\nas given:\n"
                                    << describe(events, rows) << "regrouped:\n"
                                    << describe(regrouped, regrouped_rows);
    ++compared;
  }
  return compared;
}

TEST(JobsMetamorphic, AJobSplitInTwoAnswersTheSame) {
  // run(s, r, n) is run(s, r, m) then run(s + m, r, n - m), the second arriving right after
  // the first: the same ticks in the same order. Balances and maximal rows are the same.
  std::size_t splits = 0;
  for (int i = 0; i < 1500; ++i) {
    std::mt19937_64 rng(base_seed() * 17 + static_cast<std::uint64_t>(i));
    int accounts = 0;
    std::vector<naive_event> events = make_case(rng, small_jobs, accounts);
    for (std::size_t k = 0; k < events.size(); ++k) {
      if (events[k].kind != op::run || events[k].expiration < 2 || events[k].amount == 0) continue;
      const timestamp_t m = static_cast<timestamp_t>(rng() % static_cast<std::uint64_t>(events[k].expiration - 1)) + 1;
      std::vector<naive_event> split = events;
      naive_event second = events[k];
      second.timestamp += m;
      second.expiration -= m;
      split[k].expiration = m;
      split.insert(split.begin() + static_cast<std::ptrdiff_t>(k) + 1, second);
      splits += expect_same_holdings(events, split, accounts, i);
      if (HasFailure()) return;
      break;
    }
  }
  EXPECT_GT(splits, 500U);
}

TEST(JobsMetamorphic, JobsCutIntoOneTickJobsGiveTheSameRows) {
  // Every job replaced by its ticks, each a job of one tick arriving where the job did:
  // the holding of every credit is the same at every time, so the maximal rows are too.
  std::size_t cut = 0;
  for (const job_profile& profile : {small_jobs, busy_jobs}) {
    for (int i = 0; i < 800; ++i) {
      std::mt19937_64 rng(base_seed() * 29 + static_cast<std::uint64_t>(i));
      int accounts = 0;
      const std::vector<naive_event> events = make_case(rng, profile, accounts);
      std::vector<naive_event> ticks;
      for (const naive_event& e : events) {
        if (e.kind != op::run) {
          ticks.push_back(e);
          continue;
        }
        for (timestamp_t k = 0; k < e.expiration; ++k) {
          naive_event one = e;
          one.timestamp = e.timestamp + k;
          one.expiration = 1;
          ticks.push_back(one);
        }
      }
      cut += expect_same_holdings(events, ticks, accounts, i);
      if (HasFailure()) return;
    }
  }
  EXPECT_GT(cut, 2000U);
}

TEST(JobsRows, ARowTakesTheFirstTimeOfTheNextWhenOnlyThatIsOnItsLine) {
  // One credit of 49 on [1, 20]; jobs of rate 6 at 11 and 12 (as one job of two ticks, or
  // two of one) and of rate 4 from 14 to 20. A credit of 5 on [5, 15] ends sooner and pays
  // 5 of tick 11. The big credit holds 49 to 10, then 48, 42, 42, 38, 34, ..., 14: two
  // lines, 48 - 6 (t - 11) on [11, 12] and 42 - 4 (t - 13) on [13, 20], however the ticks
  // at 11 and 12 are grouped.
  auto add = [](timestamp_t t, amount_t amount, timestamp_t expiration) {
    return naive_event{op::add, 0, t, amount, expiration};
  };
  auto run = [](timestamp_t t, amount_t rate, timestamp_t ticks) { return naive_event{op::run, 0, t, rate, ticks}; };
  const std::vector<std::vector<naive_event>> groupings = {
      {add(5, 5, 10), run(11, 6, 2), add(1, 49, 19), run(14, 4, 7)},
      {add(5, 5, 10), run(11, 6, 1), run(12, 6, 1), add(1, 49, 19), run(14, 4, 7)},
  };
  const std::vector<row_tuple> want = {
      {"acct-0/add-0", 5, 10, 5, 0},   {"acct-0/add-1", 1, 10, 49, 0},
      {"acct-0/add-1", 11, 12, 48, 6}, {"acct-0/add-1", 13, 20, 42, 4},
  };
  for (const std::vector<naive_event>& events : groupings) {
    const std::vector<row_tuple> got = rows_of(events, overdraft_policy::drain);
    EXPECT_EQ(got, want) << describe(events, got);
  }
  // The same draws as plain uses keep the rows of SPEC section 5: a use ends a row.
  const std::vector<naive_event> uses = {add(5, 5, 10), naive_event{op::use, 0, 11, 6, 0},
                                         naive_event{op::use, 0, 12, 6, 0}, add(1, 49, 19), run(14, 4, 7)};
  const std::vector<row_tuple> got = rows_of(uses, overdraft_policy::drain);
  const std::vector<row_tuple> want_uses = {
      {"acct-0/add-0", 5, 10, 5, 0},  {"acct-0/add-1", 1, 10, 49, 0},   {"acct-0/add-1", 11, 11, 48, 0},
      {"acct-0/add-1", 12, 13, 42, 0}, {"acct-0/add-1", 14, 20, 38, 4},
  };
  EXPECT_EQ(got, want_uses) << describe(uses, got);
}

TEST(JobsMetamorphic, AOneTickJobIsAUse) {
  for (int i = 0; i < 1500; ++i) {
    std::mt19937_64 rng(base_seed() * 19 + static_cast<std::uint64_t>(i));
    int accounts = 0;
    std::vector<naive_event> events = make_case(rng, small_jobs, accounts);
    std::vector<naive_event> uses = events;
    for (std::size_t k = 0; k < events.size(); ++k) {
      if (events[k].kind != op::run) continue;
      events[k].expiration = 1;
      uses[k] = events[k];
      uses[k].kind = op::use;
      uses[k].expiration = 0;
    }
    for (const overdraft_policy policy : {overdraft_policy::drain, overdraft_policy::reject}) {
      bool overflow = false;
      for (int a = 0; a < accounts; ++a) overflow |= test::naive_at(events, a, timestamp_max, policy).overflow;
      if (overflow) continue;
      const std::vector<timestamp_t> times = probe_times(events);
      ASSERT_EQ(balances_of(events, accounts, policy, times), balances_of(uses, accounts, policy, times)) << i;
      const ledger_result a = replay(to_table(events), policy);
      const ledger_result b = replay(to_table(uses), policy);
      const usage_table& ua = policy == overdraft_policy::drain ? a.shortfalls : a.rejections;
      const usage_table& ub = policy == overdraft_policy::drain ? b.shortfalls : b.rejections;
      auto records = [](const usage_table& u) {  // jobs are recorded when they end: compare as sets
        std::vector<std::tuple<event_row, timestamp_t, amount_t>> r;
        for (std::size_t k = 0; k < u.size(); ++k) r.emplace_back(u.row[k], u.timestamp[k], u.amount[k]);
        std::sort(r.begin(), r.end());
        return r;
      };
      ASSERT_EQ(records(ua), records(ub)) << i;
    }
  }
}

TEST(JobsMetamorphic, DoublingEveryAmountAndRateDoublesEveryBalance) {
  for (int i = 0; i < 1000; ++i) {
    std::mt19937_64 rng(base_seed() * 23 + static_cast<std::uint64_t>(i));
    int accounts = 0;
    const std::vector<naive_event> events = make_case(rng, small_jobs, accounts);
    std::vector<naive_event> doubled = events;
    for (naive_event& e : doubled) e.amount *= 2;
    for (const overdraft_policy policy : {overdraft_policy::drain, overdraft_policy::reject}) {
      const std::vector<timestamp_t> times = probe_times(events);
      std::vector<amount_t> want = balances_of(events, accounts, policy, times);
      for (amount_t& b : want) b *= 2;
      ASSERT_EQ(balances_of(doubled, accounts, policy, times), want) << i;
    }
  }
}

// ---- closed form at any length ------------------------------------------------------

TEST(JobsClosedForm, ATrillionTicksCostWhatTenDo) {
  // A job of 10^12 ticks against credits that expire, start and run out mid-job: the
  // answers come from the formulas, checked here against the arithmetic of the case.
  constexpr timestamp_t ticks = 1'000'000'000'000;
  event_table t;
  t.add("a", "big", 0, 3 * ticks, 2 * ticks, 1);        // [0, 2e12], 3e12
  t.add("a", "soon", 100, 1000, 899, 2);                 // [100, 999]: drawn first while active
  t.add("a", "late", ticks, ticks, 5 * ticks, 3);        // from 1e12 on
  t.run("a", "job", 10, 2, ticks, 4);                    // 2 a tick on [10, 1e12 + 9]
  const ledger_result r = replay(t, overdraft_policy::drain);
  const engine e = engine::create(r);
  // Before `soon` starts: big alone, 2 per tick since 10.
  EXPECT_EQ(e.balance(0, 99), 3 * ticks - 2 * 90);
  // `soon` (1000) is drawn first from 100: 500 ticks empty it at 599.
  EXPECT_EQ(e.balance(0, 599), 3 * ticks - 2 * 90);
  EXPECT_EQ(e.balance(0, 600), 3 * ticks - 2 * 90 - 2);
  // At 1e12 `late` starts; `big` (ending sooner) is still drawn first.
  const amount_t big_at_end = 3 * ticks - 2 * (ticks - 500);  // 10 .. 1e12 + 9 less the 500 ticks on soon
  EXPECT_EQ(e.balance(0, ticks + 9), big_at_end + ticks);
  EXPECT_EQ(e.balance(0, ticks + 10), big_at_end + ticks);  // the job is over
  EXPECT_LT(r.intervals.size(), 12U) << "rows grow with the boundaries, not the ticks";
  EXPECT_EQ(r.shortfalls.size(), 0U);
}

TEST(JobsClosedForm, UnpaidTicksAreCountedInClosedForm) {
  constexpr timestamp_t ticks = 1'000'000'000'000;
  for (const overdraft_policy policy : {overdraft_policy::drain, overdraft_policy::reject}) {
    event_table t;
    t.add("a", "c", 0, 10, ticks, 1);
    t.run("a", "big", 0, 3, ticks, 2);  // 3 a tick: 3 ticks paid, then 1 left
    t.run("a", "small", 0, 1, ticks, 3);  // 1 a tick
    const ledger_result r = replay(t, policy);
    const usage_table& u = policy == overdraft_policy::drain ? r.shortfalls : r.rejections;
    ASSERT_EQ(u.size(), 2U);
    if (policy == overdraft_policy::drain) {
      // Ticks 0 and 1 pay 4 each (8); tick 2 gives big 2 (short 1), small 0 (short 1).
      EXPECT_EQ(u.row, (std::vector<event_row>{1, 2}));
      EXPECT_EQ(u.timestamp, (std::vector<timestamp_t>{2, 2}));
      EXPECT_EQ(u.amount, (std::vector<amount_t>{3 * (ticks - 2) - 2, ticks - 2}));
    } else {
      // Ticks 0 and 1 pay 4 each; then 2 left: big rejected every tick, small paid twice.
      EXPECT_EQ(u.row, (std::vector<event_row>{1, 2}));
      EXPECT_EQ(u.timestamp, (std::vector<timestamp_t>{2, 4}));
      EXPECT_EQ(u.amount, (std::vector<amount_t>{3 * (ticks - 2), ticks - 4}));
    }
    // The window (0, 1e12 - 1] counts every unpaid tick; (1, 2] only tick 2's.
    const std::vector<account_window> w = window_summary(t, r, 1, 2);
    const total_t at_two = policy == overdraft_policy::drain ? 2 : 3;
    EXPECT_TRUE((policy == overdraft_policy::drain ? w[0].shortfall : w[0].rejected) == at_two);
  }
}

TEST(JobsReport, FlowsPerStepAddUpToTheWindow) {
  std::mt19937_64 rng(base_seed());
  for (int i = 0; i < 300; ++i) {
    int accounts = 0;
    const std::vector<naive_event> events = make_case(rng, small_jobs, accounts);
    for (const overdraft_policy policy : {overdraft_policy::drain, overdraft_policy::reject}) {
      const event_table table = to_table(events);
      ledger_result r;
      try {
        r = replay(table, policy);
      } catch (const input_error&) {
        continue;
      }
      const std::vector<timestamp_t> grid = report_grid(-6, 40, 1 + static_cast<timestamp_t>(rng() % 7));
      const std::vector<char> included(table.accounts.size(), 1);
      const step_flows flows = flows_per_step(table, r, grid, included);
      // Summed over the steps, shortfall and breakage equal the window (grid[0], grid.back()].
      const std::vector<account_window> w = window_summary(table, r, grid.front(), grid.back());
      total_t unpaid = 0;
      total_t expired = 0;
      for (const account_window& x : w) {
        unpaid += x.shortfall + x.rejected;
        expired += x.expired;
      }
      total_t step_unpaid = 0;
      total_t step_expired = 0;
      for (std::size_t k = 0; k < grid.size(); ++k) {
        step_unpaid += flows.shortfall[k];
        step_expired += flows.breakage[k];
      }
      ASSERT_TRUE(step_unpaid == unpaid) << "case " << i;
      ASSERT_TRUE(step_expired == expired) << "case " << i;
    }
  }
}

}  // namespace
}  // namespace gpucredit
