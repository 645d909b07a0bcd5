// Proves the step index and the query engine: breakpoints strictly increase and are
// merged at equal times, balances are exact where partial sums would leave int64, the
// largest timestamp gets no closing delta, rows in any order give the same index,
// unknown accounts answer none, a batch answers like single queries, and the backend
// seam resolves requests and refuses what is not built (a clear error, never a crash);
// the helper threads leave the signals that stop a run to the caller's thread.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdlib>
#include <limits>
#include <optional>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

#include <csignal>

#include <pthread.h>

#include "cpu/parallel.hpp"
#include "cpu/query/engine_impl.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "test_support.hpp"

namespace gpucredit {
namespace {

interval_table table_of(const std::vector<std::tuple<account_index, timestamp_t, timestamp_t, amount_t>>& rows) {
  interval_table t;
  event_row credit = 0;
  for (const auto& [a, b, e, v] : rows) t.push(a, credit++, b, e, v);
  return t;
}

TEST(StepIndex, BuildsMergedStrictlyIncreasingBreakpoints) {
  // Account 0: [0,9]x5 and [10,19]x3 touch: one breakpoint at 10 (5 -> 3), 20 -> 0.
  // Account 1: [5,5]x1 and [5,7]x2.
  const step_index index = step_index::build(table_of({{0, 0, 9, 5}, {0, 10, 19, 3}, {1, 5, 5, 1}, {1, 5, 7, 2}}), 3);
  EXPECT_EQ(index.account_offsets, (std::vector<std::uint64_t>{0, 3, 6, 6}));
  EXPECT_EQ(index.times, (std::vector<timestamp_t>{0, 10, 20, 5, 6, 8}));
  EXPECT_EQ(index.balances, (std::vector<amount_t>{5, 3, 0, 3, 2, 0}));
  EXPECT_EQ(index.balance(0, -1), 0);
  EXPECT_EQ(index.balance(0, 9), 5);
  EXPECT_EQ(index.balance(0, 19), 3);
  EXPECT_EQ(index.balance(0, 20), 0);
  EXPECT_EQ(index.balance(1, 5), 3);
  EXPECT_EQ(index.balance(2, 5), 0);
  EXPECT_EQ(index.balance(3, 5), 0);
  EXPECT_EQ(index.balance(account_none, 5), 0);
}

TEST(StepIndex, ChangesThatCancelMakeNoBreakpoint) {
  const step_index index = step_index::build(table_of({{0, 0, 9, 4}, {0, 10, 20, 4}}), 1);
  EXPECT_EQ(index.times, (std::vector<timestamp_t>{0, 21}));
}

TEST(StepIndex, ExactAtTheTopOfInt64) {
  // At 10 one credit of max - 1 ends and another of max begins: any order of the
  // deltas at 10 passes beyond int64 in between, yet the balance is exact.
  const step_index index = step_index::build(
      table_of({{0, 0, 9, amount_max - 1}, {0, 10, timestamp_max, amount_max}, {0, timestamp_min, -1, 1}}), 1);
  EXPECT_EQ(index.balance(0, timestamp_min), 1);
  EXPECT_EQ(index.balance(0, 5), amount_max - 1);
  EXPECT_EQ(index.balance(0, 10), amount_max);
  EXPECT_EQ(index.balance(0, timestamp_max), amount_max);
  EXPECT_EQ(index.times.back(), 10) << "no closing delta after the largest timestamp";
}

TEST(StepIndex, RowOrderDoesNotMatter) {
  std::mt19937_64 rng(7 + test::base_seed(0));
  std::vector<std::tuple<account_index, timestamp_t, timestamp_t, amount_t>> rows;
  for (int i = 0; i < 2000; ++i) {
    const auto b = static_cast<timestamp_t>(rng() % 1000);
    rows.emplace_back(static_cast<account_index>(rng() % 17), b, b + static_cast<timestamp_t>(rng() % 50),
                      1 + static_cast<amount_t>(rng() % 9));
  }
  auto sorted_rows = rows;
  std::sort(sorted_rows.begin(), sorted_rows.end());
  const step_index a = step_index::build(table_of(rows), 17);
  const step_index b = step_index::build(table_of(sorted_rows), 17);
  EXPECT_EQ(a.account_offsets, b.account_offsets);
  EXPECT_EQ(a.times, b.times);
  EXPECT_EQ(a.balances, b.balances);
  for (std::size_t acc = 0; acc < a.account_count(); ++acc) {
    for (std::uint64_t i = a.account_offsets[acc] + 1; i < a.account_offsets[acc + 1]; ++i) {
      EXPECT_LT(a.times[i - 1], a.times[i]);
      EXPECT_GE(a.balances[i], 0);
    }
  }
  // Against a direct sum over the rows.
  for (int q = 0; q < 3000; ++q) {
    const auto acc = static_cast<account_index>(rng() % 18);
    const auto t = static_cast<timestamp_t>(rng() % 1100) - 20;
    amount_t want = 0;
    for (const auto& [ra, rb, re, rv] : rows) want += (ra == acc && rb <= t && t <= re) ? rv : 0;
    ASSERT_EQ(a.balance(acc, t), want) << acc << " at " << t;
  }
}

TEST(StepIndex, EveryCoreGivesEachAccountsBreakpoints) {
  // Enough rows to be built on several cores, four accounts holding 40% of them (their
  // rows cost more each): every account's slice equals the index of its rows alone.
  std::mt19937_64 rng(31 + test::base_seed(0));
  std::vector<std::tuple<account_index, timestamp_t, timestamp_t, amount_t>> rows;
  std::vector<std::vector<std::tuple<account_index, timestamp_t, timestamp_t, amount_t>>> alone(500);
  for (int i = 0; i < 300000; ++i) {
    const auto b = static_cast<timestamp_t>(rng() % 100000);
    const auto a = static_cast<account_index>(rng() % 10 < 4 ? rng() % 4 : rng() % 500);
    const timestamp_t e = b + static_cast<timestamp_t>(rng() % 500);
    const amount_t v = 1 + static_cast<amount_t>(rng() % 9);
    rows.emplace_back(a, b, e, v);
    alone[a].emplace_back(0, b, e, v);
  }
  const step_index all = step_index::build(table_of(rows), 500);
  ASSERT_EQ(all.account_count(), 500U);
  for (account_index a = 0; a < 500; ++a) {
    const step_index mine = step_index::build(table_of(alone[a]), 1);
    const auto first = static_cast<std::ptrdiff_t>(all.account_offsets[a]);
    const auto last = static_cast<std::ptrdiff_t>(all.account_offsets[a + 1]);
    EXPECT_EQ(std::vector<timestamp_t>(all.times.begin() + first, all.times.begin() + last), mine.times) << a;
    EXPECT_EQ(std::vector<amount_t>(all.balances.begin() + first, all.balances.begin() + last), mine.balances) << a;
  }
  EXPECT_EQ(all.account_offsets.back(), all.times.size());
}

TEST(Engine, BatchEqualsSingleQueriesInQueryOrder) {
  const interval_table rows = table_of({{0, 0, 9, 5}, {1, 3, 30, 7}, {0, 5, 20, 2}});
  const engine e = engine::create(rows, 2, test::backend_under_test());
  EXPECT_EQ(e.kind(), test::backend_under_test());
  std::vector<account_index> accounts;
  std::vector<timestamp_t> times;
  std::mt19937_64 rng(11 + test::base_seed(0));
  for (int i = 0; i < 500; ++i) {
    accounts.push_back(static_cast<account_index>(rng() % 3));  // 2 is unknown
    times.push_back(static_cast<timestamp_t>(rng() % 40) - 5);
  }
  accounts.push_back(account_none);
  times.push_back(0);
  const std::vector<amount_t> batch = e.balances(accounts, times);
  ASSERT_EQ(batch.size(), accounts.size());
  for (std::size_t i = 0; i < batch.size(); ++i) {
    EXPECT_EQ(as_optional(batch[i]), e.balance(accounts[i], times[i]));
  }
  // Sorted batches answer the same.
  std::vector<std::size_t> order(accounts.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
    return std::tie(accounts[x], times[x]) < std::tie(accounts[y], times[y]);
  });
  std::vector<account_index> sorted_accounts;
  std::vector<timestamp_t> sorted_times;
  for (const std::size_t i : order) {
    sorted_accounts.push_back(accounts[i]);
    sorted_times.push_back(times[i]);
  }
  const std::vector<amount_t> sorted = e.balances(sorted_accounts, sorted_times);
  for (std::size_t k = 0; k < order.size(); ++k) EXPECT_EQ(sorted[k], batch[order[k]]);
  EXPECT_THROW(e.balances(accounts, std::span<const timestamp_t>(times).first(3)), error);
  EXPECT_TRUE(e.balances({}, {}).empty());
}

class BackendEnv : public ::testing::Test {
 protected:
  void SetUp() override {
    if (const char* v = std::getenv("GPUCREDIT_BACKEND")) saved_ = v;
    ::unsetenv("GPUCREDIT_BACKEND");
  }
  void TearDown() override {
    if (saved_) {
      ::setenv("GPUCREDIT_BACKEND", saved_->c_str(), 1);
    } else {
      ::unsetenv("GPUCREDIT_BACKEND");
    }
  }
  std::optional<std::string> saved_;
};

TEST_F(BackendEnv, ResolvesRequests) {
  const std::vector<backend> built = compiled_backends();
  ASSERT_FALSE(built.empty());
  EXPECT_EQ(built.front(), backend::cpu);
  EXPECT_TRUE(backend_available(backend::cpu));
  EXPECT_EQ(select_backend("cpu"), backend::cpu);
  EXPECT_EQ(select_backend("auto"), backend_available(backend::cuda) ? backend::cuda : backend::cpu);
  EXPECT_THROW(select_backend("gpu"), backend_error);
  EXPECT_THROW(select_backend(""), backend_error);
  if (!backend_available(backend::cuda)) {
    EXPECT_THROW(select_backend("cuda"), backend_error);
    EXPECT_THROW(engine::create(interval_table{}, 0, backend::cuda), backend_error);
  }
}

TEST_F(BackendEnv, EnvironmentForcesAutomaticChoice) {
  ::setenv("GPUCREDIT_BACKEND", "cpu", 1);
  EXPECT_EQ(select_backend("auto"), backend::cpu);
  EXPECT_EQ(select_backend(), backend::cpu);
  ::setenv("GPUCREDIT_BACKEND", "bogus", 1);
  EXPECT_THROW(select_backend("auto"), backend_error);
  EXPECT_EQ(select_backend("cpu"), backend::cpu) << "an explicit request wins over the environment";
  if (!backend_available(backend::cuda)) {
    ::setenv("GPUCREDIT_BACKEND", "cuda", 1);
    EXPECT_THROW(select_backend("auto"), backend_error);
  }
}

// Random interval rows over `accounts` accounts, with ends at both ends of int64.
interval_table random_rows(std::mt19937_64& rng, std::size_t count, account_index accounts) {
  interval_table rows;
  for (std::size_t i = 0; i < count; ++i) {
    const auto a = static_cast<account_index>(rng() % accounts);
    timestamp_t b = static_cast<timestamp_t>(rng() % 100000) - 50000;
    timestamp_t e = b + static_cast<timestamp_t>(rng() % 5000);
    if (rng() % 50 == 0) b = timestamp_min;
    if (rng() % 50 == 0) e = timestamp_max;
    rows.push(a, static_cast<event_row>(i), b, e, 1 + static_cast<amount_t>(rng() % 1000));
  }
  return rows;
}

TEST(Engine, EveryBackendBuildsTheSameIndex) {
  std::mt19937_64 rng(21 + test::base_seed(0));
  const interval_table rows = random_rows(rng, 20000, 300);
  const step_index want = step_index::build(rows, 301);
  const step_index got = detail::engine_access::index(engine::create(rows, 301, test::backend_under_test()));
  EXPECT_EQ(got.account_offsets, want.account_offsets);
  EXPECT_EQ(got.times, want.times);
  EXPECT_EQ(got.balances, want.balances);
  const step_index empty = detail::engine_access::index(engine::create(interval_table{}, 0, test::backend_under_test()));
  EXPECT_EQ(empty.account_offsets, (std::vector<std::uint64_t>{0}));
  EXPECT_TRUE(empty.times.empty());
}

// Queries over accounts 0..accounts (the last unknown) and account_none, in random order
// or sorted by (account, time).
std::pair<std::vector<account_index>, std::vector<timestamp_t>> random_queries(std::mt19937_64& rng, std::size_t count,
                                                                               account_index accounts, bool sorted) {
  std::vector<std::pair<account_index, timestamp_t>> q(count);
  for (auto& [a, t] : q) {
    a = rng() % 97 == 0 ? account_none : static_cast<account_index>(rng() % (accounts + 1));
    t = rng() % 101 == 0 ? timestamp_max : static_cast<timestamp_t>(rng() % 120000) - 60000;
  }
  if (sorted) std::sort(q.begin(), q.end());
  std::pair<std::vector<account_index>, std::vector<timestamp_t>> out;
  for (const auto& [a, t] : q) {
    out.first.push_back(a);
    out.second.push_back(t);
  }
  return out;
}

TEST(Engine, ChunkedSortedAndUnsortedBatchesAnswerLikeTheCpu) {
  // GPUCREDIT_DEVICE_BATCH makes the device engine answer in chunks of 1000 queries.
  ::setenv("GPUCREDIT_DEVICE_BATCH", "1000", 1);
  std::mt19937_64 rng(5 + test::base_seed(0));
  const interval_table rows = random_rows(rng, 5000, 200);
  const engine reference = engine::create(rows, 200, backend::cpu);
  const engine tested = engine::create(rows, 200, test::backend_under_test());
  ::unsetenv("GPUCREDIT_DEVICE_BATCH");
  for (const bool sorted : {false, true}) {
    for (const std::size_t count : {std::size_t{1}, std::size_t{999}, std::size_t{1000}, std::size_t{1001}, std::size_t{25000}}) {
      const auto [accounts, times] = random_queries(rng, count, 200, sorted);
      ASSERT_EQ(tested.balances(accounts, times), reference.balances(accounts, times))
          << (sorted ? "sorted" : "unsorted") << " batch of " << count;
    }
  }
}

TEST(Engine, LargeBatchesAnswerLikeSingleSearches) {
  // Large enough to be split between threads and answered in many blocks, sorted and
  // not, with unknown accounts: each answer equals a plain binary search in the index.
  std::mt19937_64 rng(8 + test::base_seed(0));
  const interval_table rows = random_rows(rng, 30000, 1000);
  const step_index index = step_index::build(rows, 1000);
  const engine e = engine::create(rows, 1000, test::backend_under_test());
  for (const bool sorted : {false, true}) {
    const auto [accounts, times] = random_queries(rng, 300000, 1000, sorted);
    const std::vector<amount_t> got = e.balances(accounts, times);
    for (std::size_t i = 0; i < got.size(); ++i) {
      ASSERT_EQ(got[i], index.balance(accounts[i], times[i])) << (sorted ? "sorted" : "unsorted") << " query " << i;
    }
  }
  // Sorted runs with long gaps between queries (the gallop) and many queries per breakpoint.
  std::vector<account_index> a(200000, 3);
  std::vector<timestamp_t> t(200000);
  for (std::size_t i = 0; i < t.size(); ++i) t[i] = static_cast<timestamp_t>(i * i % 1000003) - 500000;
  std::sort(t.begin(), t.end());
  const std::vector<amount_t> got = e.balances(a, t);
  for (std::size_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i], index.balance(3, t[i])) << i;
}

TEST(Engine, LargeAccountsAnswerRandomQueriesLikeSingleSearches) {
  // Accounts of 4,096 breakpoints and more get a search tree for random-order searches
  // (cpu_engine.cpp): accounts just under, at and far over that size, queries before,
  // between and after their breakpoints, in random order.
  interval_table rows;
  const std::size_t sizes[] = {4095, 4096, 4097, 70000, 3};
  std::mt19937_64 rng(77 + test::base_seed(0));
  for (account_index a = 0; a < 5; ++a) {
    for (std::size_t i = 0; i < sizes[a]; ++i) {
      const auto t = static_cast<timestamp_t>(i * 10);
      rows.push(a, static_cast<event_row>(rows.size()), t, t + 9, 1 + static_cast<amount_t>(rng() % 1000));
    }
  }
  const step_index index = step_index::build(rows, 5);
  const engine e = engine::create(rows, 5, test::backend_under_test());
  std::vector<account_index> accounts;
  std::vector<timestamp_t> times;
  for (int q = 0; q < 200000; ++q) {
    const auto a = static_cast<account_index>(rng() % 6);  // 5 is unknown
    accounts.push_back(a);
    times.push_back(static_cast<timestamp_t>(rng() % 720000) - 10000);
  }
  for (const timestamp_t edge : {timestamp_min, timestamp_t{-1}, timestamp_t{0}, timestamp_t{40950}, timestamp_t{40959},
                                 timestamp_t{40960}, timestamp_t{699999}, timestamp_max}) {
    for (account_index a = 0; a < 5; ++a) {
      accounts.push_back(a);
      times.push_back(edge);
    }
  }
  const std::vector<amount_t> got = e.balances(accounts, times);
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], index.balance(accounts[i], times[i])) << "account " << accounts[i] << " at " << times[i];
  }
}

TEST(Engine, SearchTreesOfEveryShapeAnswerLikeSingleSearches) {
  // The search trees (cpu_engine.cpp) begin each account's first node where its times
  // share a cache line with the account before it: 18 accounts of uneven sizes (so that
  // they start at many offsets within a line and end their levels with nodes of every
  // fill), the last with a breakpoint at the largest timestamp, queried at, just before
  // and just after every breakpoint and at the ends of time, in random order.
  interval_table rows;
  std::vector<std::size_t> sizes;
  for (std::size_t j = 0; j < 17; ++j) sizes.push_back(4096 + j * 4099);
  sizes.push_back(8 * 8 * 8 * 8 * 8 + 1);
  std::mt19937_64 rng(5 + test::base_seed(0));
  std::vector<std::vector<timestamp_t>> begins(sizes.size());
  for (account_index a = 0; a < sizes.size(); ++a) {
    timestamp_t t = -1000000;
    for (std::size_t i = 0; i < sizes[a]; ++i) {
      t += 1 + static_cast<timestamp_t>(rng() % 50);
      begins[a].push_back(t);
      rows.push(a, static_cast<event_row>(rows.size()), t, t, 1 + static_cast<amount_t>(rng() % 1000));
    }
  }
  const account_index last = static_cast<account_index>(sizes.size() - 1);
  rows.push(last, static_cast<event_row>(rows.size()), timestamp_max, timestamp_max, 7);
  begins[last].push_back(timestamp_max);
  const std::size_t count = sizes.size();
  const step_index index = step_index::build(rows, count);
  const engine e = engine::create(rows, count, test::backend_under_test());
  std::vector<std::pair<account_index, timestamp_t>> q;
  for (account_index a = 0; a < count; ++a) {
    for (const timestamp_t b : begins[a]) {
      for (const timestamp_t d : {timestamp_t{-1}, timestamp_t{0}, timestamp_t{1}}) {
        if ((d < 0 && b == timestamp_min) || (d > 0 && b == timestamp_max)) continue;
        q.emplace_back(a, b + d);
      }
    }
    q.emplace_back(a, timestamp_min);
    q.emplace_back(a, timestamp_max);
  }
  std::shuffle(q.begin(), q.end(), rng);
  std::vector<account_index> accounts;
  std::vector<timestamp_t> times;
  for (const auto& [a, t] : q) {
    accounts.push_back(a);
    times.push_back(t);
  }
  const std::vector<amount_t> got = e.balances(accounts, times);
  for (std::size_t i = 0; i < got.size(); ++i) {
    ASSERT_EQ(got[i], index.balance(accounts[i], times[i])) << "account " << accounts[i] << " at " << times[i];
  }
}

TEST(CudaBackend, AnswersLikeTheCpuAtScale) {
  if (!backend_available(backend::cuda)) GTEST_SKIP() << "the CUDA backend is not built or no CUDA device was found";
  std::mt19937_64 rng(99 + test::base_seed(0));
  const interval_table rows = random_rows(rng, 200000, 5000);
  const engine reference = engine::create(rows, 5000, backend::cpu);
  const engine tested = engine::create(rows, 5000, backend::cuda);
  EXPECT_EQ(tested.kind(), backend::cuda);
  for (const bool sorted : {false, true}) {
    const auto [accounts, times] = random_queries(rng, 400000, 5000, sorted);
    EXPECT_EQ(tested.balances(accounts, times), reference.balances(accounts, times)) << (sorted ? "sorted" : "unsorted");
  }
}

// Rows some of which draw at a rate (jobs, SPEC section 10): each sloped row stays
// positive over its span.
interval_table random_sloped_rows(std::mt19937_64& rng, std::size_t count, account_index accounts) {
  interval_table rows;
  for (std::size_t i = 0; i < count; ++i) {
    const auto a = static_cast<account_index>(rng() % accounts);
    const timestamp_t b = static_cast<timestamp_t>(rng() % 100000) - 50000;
    const amount_t v = 1 + static_cast<amount_t>(rng() % 100000);
    const amount_t slope = rng() % 3 == 0 ? 1 + static_cast<amount_t>(rng() % 20) : 0;
    const timestamp_t span = static_cast<timestamp_t>(rng() % 5000);
    const timestamp_t e = slope == 0 ? b + span : b + std::min<timestamp_t>(span, (v - 1) / slope);
    rows.push(a, static_cast<event_row>(i), b, e, v, slope);
  }
  return rows;
}

// The grid through point queries on the CPU engine: what engine::grid must equal.
void grid_by_points(const engine& cpu, std::span<const account_index> accounts, const time_grid& g,
                    std::vector<total_t>& fleet, std::vector<amount_t>& balances) {
  std::vector<account_index> qa;
  std::vector<timestamp_t> qt;
  for (const account_index a : accounts) {
    for (std::size_t k = 0; k < g.count; ++k) {
      qa.push_back(a);
      qt.push_back(g.at(k));
    }
  }
  balances = cpu.balances(qa, qt);
  fleet.assign(g.count, 0);
  for (std::size_t q = 0; q < balances.size(); ++q) fleet[q % g.count] += balances[q];
}

TEST(Engine, GridsEqualPointQueriesOnEveryBackend) {
  // Small chunks make the device engine cut the grid into many chunks of accounts, and
  // grids longer than a chunk into slices of times.
  ::setenv("GPUCREDIT_DEVICE_BATCH", "1024", 1);
  std::mt19937_64 rng(31 + test::base_seed(0));
  for (const bool sloped : {false, true}) {
    const interval_table rows = sloped ? random_sloped_rows(rng, 6000, 300) : random_rows(rng, 6000, 300);
    const engine cpu = engine::create(rows, 300, backend::cpu);
    const engine tested = engine::create(rows, 300, test::backend_under_test());
    std::vector<account_index> accounts;
    for (int i = 0; i < 700; ++i) accounts.push_back(static_cast<account_index>(rng() % 310));  // some unknown
    accounts.push_back(account_none);
    for (const time_grid g : {time_grid{-60000, 997, 130}, time_grid{-50000, 1, 3000}, time_grid{7, 5, 1},
                              time_grid{timestamp_min, std::numeric_limits<timestamp_t>::max() / 3, 4}}) {
      std::vector<total_t> want_fleet;
      std::vector<amount_t> want;
      grid_by_points(cpu, accounts, g, want_fleet, want);
      std::vector<total_t> fleet(g.count, 99);
      std::vector<amount_t> got(accounts.size() * g.count, -1);
      tested.grid(accounts, g, fleet, got);
      ASSERT_EQ(got, want) << (sloped ? "sloped " : "") << "grid from " << g.from << " every " << g.every;
      ASSERT_TRUE(fleet == want_fleet) << "fleet totals";
      std::vector<total_t> fleet_only(g.count, 99);
      tested.grid(accounts, g, fleet_only);  // only the totals come back
      ASSERT_TRUE(fleet_only == want_fleet) << "fleet totals without balances";
    }
  }
  ::unsetenv("GPUCREDIT_DEVICE_BATCH");
}

TEST(Engine, GridTotalsPassInt64Exactly) {
  // Three accounts at the largest balance: the fleet holds 3 x int64 max, exactly.
  interval_table rows;
  for (account_index a = 0; a < 3; ++a) rows.push(a, a, 0, 100, amount_max);
  const engine tested = engine::create(rows, 3, test::backend_under_test());
  const std::vector<account_index> accounts{0, 1, 2, 1};
  std::vector<total_t> fleet(3);
  tested.grid(accounts, time_grid{-50, 50, 3}, fleet);
  EXPECT_TRUE(fleet[0] == 0);
  EXPECT_TRUE(fleet[1] == total_t{amount_max} * 4);
  EXPECT_TRUE(fleet[2] == total_t{amount_max} * 4);
  EXPECT_EQ(to_decimal(fleet[1]), "36893488147419103228");
}

TEST(Engine, GridRefusesWrongSizes) {
  const engine e = engine::create(table_of({{0, 0, 9, 5}}), 1, test::backend_under_test());
  const std::vector<account_index> accounts{0, 0};
  std::vector<total_t> fleet(3);
  std::vector<amount_t> balances(5);
  EXPECT_THROW(e.grid(accounts, time_grid{0, 1, 3}, fleet, balances), error);
  std::vector<total_t> short_fleet(2);
  EXPECT_THROW(e.grid(accounts, time_grid{0, 1, 3}, short_fleet), error);
  EXPECT_THROW(e.grid(accounts, time_grid{0, 0, 3}, fleet), error);
}

TEST(Engine, CostModelPlacementAnswersTheSame) {
  // Under "auto" a CUDA engine places each batch by the cost model (the device, or the
  // host's copy of the index): the answers are the same bytes either way.
  std::mt19937_64 rng(41 + test::base_seed(0));
  const interval_table rows = random_sloped_rows(rng, 20000, 500);
  const engine cpu = engine::create(rows, 500, backend::cpu);
  engine_options options;
  options.where = test::backend_under_test();
  options.place = placement::cost_model;
  const engine tested = engine::create(rows, 500, options);
  for (const std::size_t count : {std::size_t{3}, std::size_t{200000}}) {
    for (const bool sorted : {false, true}) {
      const auto [accounts, times] = random_queries(rng, count, 500, sorted);
      ASSERT_EQ(tested.balances(accounts, times), cpu.balances(accounts, times)) << count;
    }
  }
  std::vector<account_index> accounts(500);
  for (account_index a = 0; a < 500; ++a) accounts[a] = a;
  std::vector<total_t> want(40);
  std::vector<total_t> got(40);
  cpu.grid(accounts, time_grid{-50000, 2500, 40}, want);
  tested.grid(accounts, time_grid{-50000, 2500, 40}, got);
  EXPECT_TRUE(got == want);
}

TEST(DeviceEngine, ShardsAcrossDevicesAnswerTheSame) {
  // The device engine cuts the accounts into one shard per device. The device-logic
  // build has two host-memory devices (GPUCREDIT_OMP_DEVICES); on a GPU machine this
  // runs with the devices it has.
  if (test::backend_under_test() != backend::cuda) GTEST_SKIP() << "the CUDA backend is not under test";
  std::mt19937_64 rng(43 + test::base_seed(0));
  const interval_table rows = random_sloped_rows(rng, 30000, 997);
  const engine cpu = engine::create(rows, 997, backend::cpu);
  const auto [accounts, times] = random_queries(rng, 100000, 997, false);
  const std::vector<amount_t> want = cpu.balances(accounts, times);
  std::vector<account_index> all(1000);
  for (account_index a = 0; a < 1000; ++a) all[a] = 999 - a;  // some unknown, reversed
  std::vector<total_t> want_fleet(25);
  std::vector<amount_t> want_grid(all.size() * 25);
  cpu.grid(all, time_grid{-51000, 4000, 25}, want_fleet, want_grid);
  for (const std::vector<int>& devices : {std::vector<int>{0}, std::vector<int>{1}, std::vector<int>{0, 1},
                                          std::vector<int>{1, 0, 1}}) {
    engine_options options;
    options.where = backend::cuda;
    options.devices = devices;
    std::optional<engine> tested;
    try {
      tested.emplace(engine::create(rows, 997, options));
    } catch (const backend_unavailable& e) {
      GTEST_SKIP() << "fewer devices here: " << e.what();
    }
    EXPECT_EQ(detail::engine_access::index(*tested).times, step_index::build(rows, 997).times);
    ASSERT_EQ(tested->balances(accounts, times), want) << devices.size() << " devices";
    std::vector<total_t> fleet(25);
    std::vector<amount_t> grid(all.size() * 25);
    tested->grid(all, time_grid{-51000, 4000, 25}, fleet, grid);
    ASSERT_EQ(grid, want_grid);
    ASSERT_TRUE(fleet == want_fleet);
  }
}

TEST(DeviceEngine, NamedDevicesThatCannotBeUsedAreRefused) {
  if (!detail::device_engine_built()) GTEST_SKIP() << "no device engine in this build";
  engine_options options;
  options.where = backend::cuda;
  options.devices = {4096};
  try {
    (void)engine::create(table_of({{0, 0, 9, 5}}), 1, options);
    FAIL() << "device 4096 was accepted";
  } catch (const backend_unavailable& e) {
    // With devices here the message names the one asked for; without, it says why none.
    const std::string said = e.what();
    EXPECT_NE(said.find(backend_available(backend::cuda) ? "4096" : "cannot run here"), std::string::npos) << said;
  }
  EXPECT_THROW((void)parse_devices("0,x"), backend_unavailable);
  EXPECT_THROW((void)parse_devices(""), backend_unavailable);
  EXPECT_EQ(parse_devices("2,0"), (std::vector<int>{2, 0}));
  EXPECT_THROW((void)resolve_engine("cpu", {0}), backend_unavailable);
}

// Whether the calling thread blocks `signal_number`.
bool blocks(int signal_number) {
  sigset_t mask;
  sigemptyset(&mask);
  pthread_sigmask(SIG_BLOCK, nullptr, &mask);
  return sigismember(&mask, signal_number) == 1;
}

TEST(Parallel, HelperThreadsLeaveStopSignalsToTheCaller) {
  ASSERT_FALSE(blocks(SIGTERM));
  // Part 0 runs on the caller's thread, the others on helpers.
  std::vector<std::array<bool, 4>> seen(3);
  detail::run_parts(3, [&](std::size_t k) {
    seen[k] = {blocks(SIGINT), blocks(SIGTERM), blocks(SIGHUP), blocks(SIGQUIT)};
  });
  EXPECT_EQ(seen[0], (std::array<bool, 4>{false, false, false, false}));
  EXPECT_EQ(seen[1], (std::array<bool, 4>{true, true, true, true}));
  EXPECT_EQ(seen[2], (std::array<bool, 4>{true, true, true, true}));
  EXPECT_FALSE(blocks(SIGTERM)) << "the caller's mask is restored";
  bool helper_blocks = false;
  std::thread helper = detail::start_helper([&] { helper_blocks = blocks(SIGTERM); });
  helper.join();
  EXPECT_TRUE(helper_blocks);
  EXPECT_FALSE(blocks(SIGTERM));
  EXPECT_FALSE(blocks(SIGPIPE)) << "only the signals that ask a process to stop";
}

// Sizes of ranges for run_with_stealing: mostly small, some empty, a few giants.
std::vector<std::size_t> skewed_offsets(std::mt19937_64& rng, std::size_t ranges) {
  std::vector<std::size_t> offsets{0};
  for (std::size_t r = 0; r < ranges; ++r) {
    const std::size_t size = rng() % 50 == 0 ? 5000 + rng() % 20000 : rng() % 4 == 0 ? 0 : rng() % 40;
    offsets.push_back(offsets.back() + size);
  }
  return offsets;
}

TEST(Parallel, StealingTakesEveryRangeOnceAndLaysThemOutInOrder) {
  std::mt19937_64 rng(5 + test::base_seed(0));
  for (const std::size_t ranges : {std::size_t{0}, std::size_t{1}, std::size_t{3}, std::size_t{1000}, std::size_t{20000}}) {
    const std::vector<std::size_t> offsets = skewed_offsets(rng, ranges);
    for (const std::size_t workers : {std::size_t{1}, std::size_t{2}, std::size_t{3}, std::size_t{4}, std::size_t{7}}) {
      std::vector<int> calls(ranges, 0);  // each range's count of calls, written by its one caller
      std::vector<std::vector<std::size_t>> done(2 * workers);  // ranges each slot got, in order
      std::size_t stolen = 0;
      const std::vector<std::size_t> cuts = detail::balanced_cuts(offsets, workers);
      const detail::taken_runs taken = detail::run_with_stealing(
          offsets, workers, [&](const detail::range_slot& slot, std::size_t first, std::size_t last) {
            ASSERT_LT(first, last);
            ASSERT_LT(slot.index, 2 * workers);
            // Room: an own share's size; none where runs are taken from another's.
            const std::size_t k = slot.index;
            EXPECT_EQ(slot.room, k >= workers ? 0 : offsets[cuts[k + 1]] - offsets[cuts[k]]) << k;
            // The first share is slow: the others finish early and take from its back.
            if (first < ranges / std::max<std::size_t>(workers, 1)) std::this_thread::sleep_for(std::chrono::microseconds(100));
            for (std::size_t r = first; r < last; ++r) {
              ++calls[r];
              done[slot.index].push_back(r);
            }
          });
      const std::string where = std::to_string(ranges) + " ranges, " + std::to_string(workers) + " workers";
      EXPECT_EQ(std::count(calls.begin(), calls.end(), 1), static_cast<std::ptrdiff_t>(ranges)) << where;
      // The runs, taken in `in_order`, cover the ranges in ascending order without gaps.
      ASSERT_EQ(taken.by_slot.size(), 2 * workers) << where;
      std::size_t next = 0;
      std::size_t runs = 0;
      for (const auto& [s, j] : taken.in_order) {
        const detail::range_run run = taken.by_slot.at(s).at(j);
        EXPECT_EQ(run.first, next) << where;
        next = run.last;
        ++runs;
      }
      EXPECT_EQ(next, ranges) << where;
      std::size_t listed = 0;
      for (std::size_t s = 0; s < 2 * workers; ++s) {
        listed += taken.by_slot[s].size();
        if (s >= workers) stolen += taken.by_slot[s].size();
        // What a slot got, it got in the order of its runs, each run ascending.
        std::vector<std::size_t> from_runs;
        for (const detail::range_run& run : taken.by_slot[s]) {
          for (std::size_t r = run.first; r < run.last; ++r) from_runs.push_back(r);
        }
        EXPECT_EQ(done[s], from_runs) << where << ", slot " << s;
      }
      EXPECT_EQ(runs, listed) << where;
      if (ranges == 20000 && workers > 1) {
        EXPECT_GT(stolen, 0U) << where << ": the slow share was not helped";
      }
    }
  }
}

TEST(Parallel, StealingReportsTheErrorOfTheLowestRange) {
  std::mt19937_64 rng(6 + test::base_seed(0));
  const std::vector<std::size_t> offsets = skewed_offsets(rng, 5000);
  for (int trial = 0; trial < 40; ++trial) {
    std::vector<std::size_t> bad;
    for (int i = 0; i < 1 + trial % 4; ++i) bad.push_back(rng() % 5000);
    const std::size_t lowest = *std::min_element(bad.begin(), bad.end());
    const std::size_t workers = 1 + static_cast<std::size_t>(trial) % 5;
    try {
      (void)detail::run_with_stealing(offsets, workers, [&](const detail::range_slot&, std::size_t first, std::size_t last) {
        if (trial % 3 == 0 && first % 7 == 0) std::this_thread::sleep_for(std::chrono::microseconds(50));
        for (std::size_t r = first; r < last; ++r) {
          if (std::find(bad.begin(), bad.end(), r) != bad.end()) throw std::runtime_error(std::to_string(r));
        }
      });
      FAIL() << "no error";
    } catch (const std::runtime_error& e) {
      EXPECT_EQ(std::string(e.what()), std::to_string(lowest)) << "trial " << trial << ", " << workers << " workers";
    }
  }
}

TEST(Engine, BackendNames) {
  EXPECT_EQ(to_string(backend::cpu), "cpu");
  EXPECT_EQ(to_string(backend::cuda), "cuda");
}

}  // namespace
}  // namespace gpucredit
