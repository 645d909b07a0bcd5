// Proves the ledger replay on cases worked out by hand: the seed statement's examples
// as one account with labelled credits, the draw order (earliest end, then earliest
// start, then arrival), zero-length stretches, late events, both overdraft policies,
// the int64 ends, and the refusal of a balance beyond int64 naming its line. The
// interval table is checked row by row, not only through balances.
#include <gtest/gtest.h>

#include <map>
#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gpucredit/csv.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/ledger.hpp"
#include "test_support.hpp"

namespace gpucredit {
namespace {

using row = std::tuple<std::string, std::string, timestamp_t, timestamp_t, amount_t>;

std::vector<row> rows_of(const event_table& events, const interval_table& intervals) {
  std::vector<row> rows;
  for (std::size_t i = 0; i < intervals.size(); ++i) {
    rows.emplace_back(std::string(events.accounts[intervals.account[i]]),
                      std::string(events.credit_label(intervals.credit[i])), intervals.begin[i],
                      intervals.end[i], intervals.amount[i]);
  }
  return rows;
}

event_table events_of(const std::string& body) {
  return parse_events(std::string(events_header) + "\n" + body);
}

std::optional<amount_t> balance(const event_table& events, const ledger_result& result, std::string_view account,
                                timestamp_t t) {
  return engine::create(result, test::backend_under_test()).balance(events.accounts.find(account).value_or(account_none), t);
}

TEST(Ledger, SeedExample1) {
  const event_table e = events_of("add,acct,microsoft,10,10,30\n");
  const ledger_result r = replay(e);
  EXPECT_EQ(rows_of(e, r.intervals), (std::vector<row>{{"acct", "microsoft", 10, 40, 10}}));
  EXPECT_EQ(balance(e, r, "acct", 0), std::nullopt);
  EXPECT_EQ(balance(e, r, "acct", 10), 10);
  EXPECT_EQ(balance(e, r, "acct", 40), 10);
  EXPECT_EQ(balance(e, r, "acct", 41), std::nullopt);
}

TEST(Ledger, SeedExample2) {
  const event_table e = events_of("add,acct,amazon,10,40,50\nuse,acct,,30,30,\nadd,acct,google,60,20,10\n");
  const ledger_result r = replay(e);
  EXPECT_EQ(rows_of(e, r.intervals), (std::vector<row>{{"acct", "amazon", 10, 29, 40},
                                                       {"acct", "amazon", 30, 60, 10},
                                                       {"acct", "google", 60, 70, 20}}));
  EXPECT_EQ(balance(e, r, "acct", 40), 10);
  EXPECT_EQ(balance(e, r, "acct", 60), 30);
  EXPECT_EQ(balance(e, r, "acct", 61), 20);
  EXPECT_EQ(balance(e, r, "acct", 70), 20);
  EXPECT_EQ(balance(e, r, "acct", 71), std::nullopt);
  EXPECT_EQ(r.shortfalls.size(), 0U);
}

TEST(Ledger, SeedEdgeCase) {
  const event_table e = events_of("add,acct,openai,10,10,30\nuse,acct,,10,100000000,\nadd,acct,openai,20,10,10\n");
  const ledger_result r = replay(e);
  // Added and used up at 10: a zero-length stretch, so no row for the first lot.
  EXPECT_EQ(rows_of(e, r.intervals), (std::vector<row>{{"acct", "openai", 20, 30, 10}}));
  EXPECT_EQ(balance(e, r, "acct", 10), std::nullopt);
  EXPECT_EQ(balance(e, r, "acct", 20), 10);
  ASSERT_EQ(r.shortfalls.size(), 1U);
  EXPECT_EQ(r.shortfalls.amount[0], 100000000 - 10);
  EXPECT_EQ(r.shortfalls.timestamp[0], 10);
  EXPECT_EQ(r.shortfalls.row[0], 1U);
}

TEST(Ledger, DrawOrderEarliestEndThenStartThenArrival) {
  const event_table e = events_of(
      "add,a,late-end,0,10,100\n"
      "add,a,early-end,5,10,20\n"        // ends 25
      "add,a,tie-late-start,8,10,17\n"   // ends 25, starts later
      "add,a,tie-early-start,3,10,22\n"  // ends 25, starts 3
      "add,a,tie-arrival,3,10,22\n"      // ends 25, starts 3, arrived later
      "use,a,,10,15,\n"                  // tie-early-start 10, tie-arrival 5
      "use,a,,12,12,\n"                  // tie-arrival 5, early-end 7
      "use,a,,21,9,\n");                 // early-end 3, tie-late-start 6
  const ledger_result r = replay(e);
  EXPECT_EQ(rows_of(e, r.intervals), (std::vector<row>{
                                         {"a", "late-end", 0, 100, 10},
                                         {"a", "early-end", 5, 11, 10},
                                         {"a", "early-end", 12, 20, 3},
                                         {"a", "tie-late-start", 8, 20, 10},
                                         {"a", "tie-late-start", 21, 25, 4},
                                         {"a", "tie-early-start", 3, 9, 10},
                                         {"a", "tie-arrival", 3, 9, 10},
                                         {"a", "tie-arrival", 10, 11, 5},
                                     }));
}

TEST(Ledger, LateEventsAreAppliedAtTheirTime) {
  const event_table late = events_of("use,a,,50,5,\nadd,a,g1,0,20,100\nadd,a,g2,40,5,30\nuse,a,,10,7,\n");
  const event_table sorted = events_of("add,a,g1,0,20,100\nuse,a,,10,7,\nadd,a,g2,40,5,30\nuse,a,,50,5,\n");
  EXPECT_EQ(rows_of(late, replay(late).intervals), rows_of(sorted, replay(sorted).intervals));
  const ledger_result r = replay(late);
  EXPECT_EQ(balance(late, r, "a", 9), 20);
  EXPECT_EQ(balance(late, r, "a", 10), 13);
  EXPECT_EQ(balance(late, r, "a", 50), 13);  // the use at 50 drew from g2 (ends 70) first
  EXPECT_EQ(balance(late, r, "a", 71), 13);
}

TEST(Ledger, SameTimeEventsApplyInArrivalOrder) {
  const event_table e = events_of("use,a,,5,3,\nadd,a,g,5,10,10\nadd,b,g,5,10,10\nuse,b,,5,3,\n");
  const ledger_result r = replay(e);
  EXPECT_EQ(balance(e, r, "a", 5), 10);
  EXPECT_EQ(balance(e, r, "b", 5), 7);
  ASSERT_EQ(r.shortfalls.size(), 1U);  // a's use came before its credit
  EXPECT_EQ(r.shortfalls.amount[0], 3);
}

TEST(Ledger, ZeroAmountsAndZeroExpiration) {
  const event_table e = events_of("add,a,instant,7,5,0\nadd,a,zero,7,0,10\nuse,a,,7,0,\nuse,a,,7,2,\n");
  const ledger_result r = replay(e);
  EXPECT_EQ(rows_of(e, r.intervals), (std::vector<row>{{"a", "instant", 7, 7, 3}}));
  EXPECT_EQ(r.shortfalls.size(), 0U);
}

TEST(Ledger, DrainEmptiesActiveCreditsAndLeavesLaterOnes) {
  const event_table e = events_of("add,a,g1,0,10,10\nadd,a,g2,5,10,100\nuse,a,,6,1000,\nadd,a,g3,8,7,3\nuse,a,,9,2,\n");
  const ledger_result r = replay(e, overdraft_policy::drain);
  EXPECT_EQ(rows_of(e, r.intervals), (std::vector<row>{{"a", "g1", 0, 5, 10},
                                                       {"a", "g2", 5, 5, 10},
                                                       {"a", "g3", 8, 8, 7},
                                                       {"a", "g3", 9, 11, 5}}));
  ASSERT_EQ(r.shortfalls.size(), 1U);
  EXPECT_EQ(r.shortfalls.amount[0], 980);
  EXPECT_EQ(r.rejections.size(), 0U);
}

TEST(Ledger, RejectChangesNothing) {
  const event_table e = events_of("add,a,g1,0,10,10\nadd,a,g2,5,10,100\nuse,a,,6,1000,\nadd,a,g3,8,7,3\nuse,a,,9,2,\n");
  const ledger_result r = replay(e, overdraft_policy::reject);
  ASSERT_EQ(r.rejections.size(), 1U);
  EXPECT_EQ(r.rejections.amount[0], 1000);
  EXPECT_EQ(r.rejections.row[0], 2U);
  EXPECT_EQ(r.shortfalls.size(), 0U);
  EXPECT_EQ(balance(e, r, "a", 7), 20);
  EXPECT_EQ(balance(e, r, "a", 9), 25);
  EXPECT_EQ(balance(e, r, "a", 105), 10);
}

TEST(Ledger, Int64Ends) {
  const event_table e = events_of(
      "add,a,max,9223372036854775797,5,10\nuse,a,,9223372036854775807,2,\n"
      "add,b,min,-9223372036854775808,9,9223372036854775807\nuse,b,,-1,4,\n");
  const ledger_result r = replay(e);
  EXPECT_EQ(rows_of(e, r.intervals),
            (std::vector<row>{{"a", "max", 9223372036854775797, 9223372036854775806, 5},
                              {"a", "max", timestamp_max, timestamp_max, 3},
                              {"b", "min", timestamp_min, -2, 9},
                              {"b", "min", -1, -1, 5}}));
  EXPECT_EQ(balance(e, r, "a", timestamp_max), 3);
  EXPECT_EQ(balance(e, r, "b", timestamp_min), 9);
  EXPECT_EQ(balance(e, r, "b", 0), std::nullopt);
}

TEST(Ledger, BalanceBeyondInt64IsRefusedWithItsLine) {
  const event_table e = events_of("add,a,g1,0,9223372036854775807,10\nadd,a,g2,1,1,10\n");
  try {
    replay(e);
    FAIL();
  } catch (const input_error& error) {
    EXPECT_EQ(error.line(), 3U);
    EXPECT_EQ(error.reason(), "balance beyond int64 at 1 (account 'a')");
  }
  // The same amounts never active together are fine: the first expired at 11.
  EXPECT_NO_THROW(replay(events_of("add,a,g1,0,9223372036854775807,10\nadd,a,g2,11,1,10\n")));
  // ... and so is a sum that only fits after a use at the same time.
  EXPECT_NO_THROW(replay(events_of("add,a,g1,0,9223372036854775807,10\nuse,a,,1,5,\nadd,a,g2,1,5,10\n")));
  // A late event that overflows is refused too, naming its own line.
  try {
    replay(events_of("add,a,g2,1,1,10\nadd,a,g1,0,9223372036854775807,10\n"));
    FAIL();
  } catch (const input_error& error) {
    EXPECT_EQ(error.line(), 2U);
  }
}

TEST(Ledger, IntervalsAreGroupedByAccountThenCreditThenBegin) {
  const event_table e = events_of("add,b,x,0,5,10\nadd,a,y,0,5,10\nuse,b,,3,1,\nuse,a,,2,1,\nadd,a,z,1,1,1\n");
  const ledger_result r = replay(e);
  EXPECT_TRUE(std::is_sorted(r.intervals.account.begin(), r.intervals.account.end()));
  for (std::size_t i = 1; i < r.intervals.size(); ++i) {
    if (r.intervals.account[i] != r.intervals.account[i - 1]) continue;
    EXPECT_LE(std::make_pair(r.intervals.credit[i - 1], r.intervals.begin[i - 1]),
              std::make_pair(r.intervals.credit[i], r.intervals.begin[i]));
  }
  EXPECT_EQ(r.account_count, 2U);
}

// A ledger large enough to be replayed in parts on several cores.
event_table big_ledger(std::uint64_t seed, std::size_t events, std::size_t accounts) {
  std::mt19937_64 rng(seed + test::base_seed(0));
  event_table table;
  for (std::size_t i = 0; i < events; ++i) {
    const std::string account = "acct-" + std::to_string(rng() % accounts);
    const auto t = static_cast<timestamp_t>(rng() % 5000);
    if (rng() % 3 == 0) {
      table.add(account, "c" + std::to_string(i), t, static_cast<amount_t>(rng() % 50), static_cast<timestamp_t>(rng() % 400), i + 2);
    } else {
      table.use(account, t, static_cast<amount_t>(rng() % 30), i + 2);
    }
  }
  return table;
}

// Everything the replay gave one account, by names and lines rather than indices.
using account_rows = std::tuple<std::vector<std::tuple<std::string, timestamp_t, timestamp_t, amount_t, amount_t>>,
                                std::vector<std::tuple<std::uint64_t, timestamp_t, amount_t>>,
                                std::vector<std::tuple<std::uint64_t, timestamp_t, timestamp_t, amount_t>>>;

std::map<std::string, account_rows> by_account(const event_table& events, const ledger_result& r) {
  std::map<std::string, account_rows> out;
  auto name = [&](account_index a) { return std::string(events.accounts[a]); };
  const interval_table& iv = r.intervals;
  for (std::size_t i = 0; i < iv.size(); ++i) {
    std::get<0>(out[name(iv.account[i])])
        .emplace_back(events.credit_label(iv.credit[i]), iv.begin[i], iv.end[i], iv.amount[i], iv.slope_of(i));
  }
  for (const usage_table* usage : {&r.shortfalls, &r.rejections}) {
    for (std::size_t i = 0; i < usage->size(); ++i) {
      std::get<1>(out[name(usage->account[i])])
          .emplace_back(events.line[usage->row[i]], usage->timestamp[i], usage->amount[i]);
    }
  }
  const unpaid_ticks& ticks = r.job_unpaid;
  for (std::size_t i = 0; i < ticks.size(); ++i) {
    std::get<2>(out[name(ticks.account[i])])
        .emplace_back(events.line[ticks.row[i]], ticks.first[i], ticks.last[i], ticks.per_tick[i]);
  }
  return out;
}

TEST(Ledger, EveryCoreGivesTheRowsOfEachAccountAlone) {
  // Large enough to be replayed on several cores, with a few giant accounts (whose
  // events cost more each) and jobs: every account's rows, unpaid usage and unpaid job
  // ticks equal those of a replay of that account alone, in account order.
  std::mt19937_64 rng(12 + test::base_seed(0));
  event_table all;
  std::map<std::string, event_table> alone;
  for (std::size_t i = 0; i < 300000; ++i) {
    const std::size_t pick = rng() % 10;
    const std::string account = "acct-" + std::to_string(pick < 4 ? pick : rng() % 700);
    const auto t = static_cast<timestamp_t>(rng() % 50000);
    const std::uint64_t line = i + 2;
    const std::uint64_t what = rng() % 10;
    const auto amount = static_cast<amount_t>(rng() % 50);
    const auto span = static_cast<timestamp_t>(rng() % 4000);
    for (event_table* table : {&all, &alone[account]}) {
      if (what < 3) {
        table->add(account, "c" + std::to_string(i), t, amount, span, line);
      } else if (what == 3 && i % 7 == 0) {
        table->run(account, "j" + std::to_string(i), t, amount % 3, span % 300, line);
      } else {
        table->use(account, t, amount % 30, line);
      }
    }
  }
  ASSERT_TRUE(all.has_jobs());
  for (const overdraft_policy policy : {overdraft_policy::drain, overdraft_policy::reject}) {
    const ledger_result together = replay(all, policy);
    EXPECT_TRUE(std::is_sorted(together.intervals.account.begin(), together.intervals.account.end()));
    EXPECT_TRUE(std::is_sorted(together.shortfalls.account.begin(), together.shortfalls.account.end()));
    EXPECT_TRUE(std::is_sorted(together.rejections.account.begin(), together.rejections.account.end()));
    EXPECT_TRUE(std::is_sorted(together.job_unpaid.account.begin(), together.job_unpaid.account.end()));
    const std::map<std::string, account_rows> got = by_account(all, together);
    // And the index built on every core (with slopes) answers as each account's own.
    const engine whole = engine::create(together, test::backend_under_test());
    std::size_t compared = 0;
    for (const auto& [account, events] : alone) {
      const ledger_result own = replay(events, policy);
      const engine own_engine = engine::create(own, test::backend_under_test());
      const account_index index = all.accounts.find(account).value_or(account_none);
      for (timestamp_t t = -5; t < 50000; t += 397) {
        ASSERT_EQ(whole.balance(index, t), own_engine.balance(0, t)) << account << " at " << t;
      }
      const std::map<std::string, account_rows> want = by_account(events, own);
      const auto mine = got.find(account);
      const auto theirs = want.find(account);
      ASSERT_EQ(mine == got.end(), theirs == want.end()) << account;
      if (theirs != want.end()) {
        EXPECT_EQ(mine->second, theirs->second) << account;
      }
      ++compared;
    }
    EXPECT_EQ(compared, all.accounts.size());
  }
}

TEST(Ledger, TheFirstOverflowInAccountOrderIsReported) {
  // Two accounts overflow, one early and one late in account order (so in different
  // parts): the early one is reported, whichever core gets there first.
  event_table table = big_ledger(13, 300000, 700);
  const std::string early(table.accounts[1]);
  const std::string late(table.accounts[static_cast<std::uint32_t>(table.accounts.size() - 1)]);
  // The early account's first huge add passes int64 when it holds something at 10, else
  // its second does.
  const bool holds_at_10 = engine::create(replay(table), test::backend_under_test()).balance(1, 10).has_value();
  const std::uint64_t want_line = holds_at_10 ? 900003U : 900004U;
  table.add(late, "big", 10, amount_max, 100, 900001);
  table.add(late, "big2", 10, amount_max, 100, 900002);
  table.add(early, "big", 10, amount_max, 100, 900003);
  table.add(early, "big2", 10, amount_max, 100, 900004);
  for (int run = 0; run < 5; ++run) {
    try {
      replay(table);
      FAIL();
    } catch (const input_error& e) {
      EXPECT_EQ(e.line(), want_line) << e.what();
      EXPECT_NE(e.reason().find("'" + early + "'"), std::string::npos) << e.what();
    }
  }
}

TEST(Ledger, EmptyLedger) {
  const ledger_result r = replay(events_of(""));
  EXPECT_EQ(r.intervals.size(), 0U);
  EXPECT_EQ(r.account_count, 0U);
  EXPECT_EQ(engine::create(r, test::backend_under_test()).balance(0, 0), std::nullopt);
}

}  // namespace
}  // namespace gpucredit
