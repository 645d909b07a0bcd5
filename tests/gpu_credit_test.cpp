// Proves the compatible class: the original notebook's asserts pass verbatim, balances
// answer from history whatever the call order, accounts never interact, bad calls throw
// a typed exception and leave the ledger as it was, and on random call sequences it
// answers exactly as the batch ledger does on the same events.
#include <gtest/gtest.h>

#include <random>
#include <set>

#include "cpu/ledger/live_credits.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/gpu_credit.hpp"
#include "gpucredit/ledger.hpp"
#include "test_support.hpp"

namespace gpucredit {
namespace {

using std::nullopt;

TEST(GPUCredit, NotebookExample1) {
  GPUCredit gpuCredit;
  gpuCredit.addCredit("microsoft", 10, 10, 30);
  EXPECT_EQ(gpuCredit.getBalance("microsoft", 0), nullopt);
  EXPECT_EQ(gpuCredit.getBalance("microsoft", 10), 10);
  EXPECT_EQ(gpuCredit.getBalance("microsoft", 40), 10);
  EXPECT_EQ(gpuCredit.getBalance("microsoft", 41), nullopt);
}

TEST(GPUCredit, NotebookExample2TwoAddsToOneId) {
  GPUCredit gpuCredit;
  gpuCredit.addCredit("amazon", 40, 10, 50);
  gpuCredit.useCredit("amazon", 30, 30);
  EXPECT_EQ(gpuCredit.getBalance("amazon", 40), 10);
  gpuCredit.addCredit("amazon", 20, 60, 10);
  EXPECT_EQ(gpuCredit.getBalance("amazon", 60), 30);
  EXPECT_EQ(gpuCredit.getBalance("amazon", 61), 20);
  EXPECT_EQ(gpuCredit.getBalance("amazon", 70), 20);
  EXPECT_EQ(gpuCredit.getBalance("amazon", 71), nullopt);
}

TEST(GPUCredit, NotebookEdgeCase) {
  GPUCredit gpuCredit;
  gpuCredit.addCredit("openai", 10, 10, 30);
  gpuCredit.useCredit("openai", 10, 100000000);
  EXPECT_EQ(gpuCredit.getBalance("openai", 10), nullopt);
  gpuCredit.addCredit("openai", 10, 20, 10);
  EXPECT_EQ(gpuCredit.getBalance("openai", 20), 10);
}

TEST(GPUCredit, AnswersFromHistory) {
  GPUCredit c;
  c.addCredit("a", 50, 0, 100);
  c.useCredit("a", 30, 20);
  EXPECT_EQ(c.getBalance("a", 20), 50);
  EXPECT_EQ(c.getBalance("a", 30), 30);
  // A late call is placed by its time, and answers after it change accordingly.
  c.useCredit("a", 10, 5);
  EXPECT_EQ(c.getBalance("a", 9), 50);
  EXPECT_EQ(c.getBalance("a", 10), 45);
  EXPECT_EQ(c.getBalance("a", 30), 25);
  EXPECT_EQ(c.getBalance("b", 30), nullopt);
  c.addCredit("b", 1, 0, 0);
  EXPECT_EQ(c.getBalance("a", 30), 25) << "accounts never interact";
  EXPECT_EQ(c.getBalance("b", 0), 1);
}

TEST(GPUCredit, BadCallsThrowAndChangeNothing) {
  GPUCredit c;
  c.addCredit("a", 9223372036854775807, 0, 10);
  EXPECT_THROW(c.addCredit("a", -1, 0, 10), input_error);
  EXPECT_THROW(c.addCredit("a", 1, 0, -10), input_error);
  EXPECT_THROW(c.addCredit("a", 1, 9223372036854775807, 1), input_error);
  EXPECT_THROW(c.useCredit("a", 0, -1), input_error);
  try {
    c.addCredit("a", 1, 5, 10);
    FAIL();
  } catch (const input_error& e) {
    EXPECT_EQ(e.source(), "addCredit");
    EXPECT_NE(e.reason().find("balance beyond int64"), std::string::npos);
  }
  EXPECT_EQ(c.getBalance("a", 5), 9223372036854775807);
  EXPECT_EQ(c.getBalance("a", 11), nullopt);
  c.addCredit("a", 1, 11, 10);  // the big one expired at 11: this one fits
  EXPECT_EQ(c.getBalance("a", 11), 1);
  c.useCredit("a", 3, 7);
  EXPECT_EQ(c.getBalance("a", 3), 9223372036854775807 - 7);
}

TEST(GPUCredit, RejectPolicy) {
  GPUCredit c(overdraft_policy::reject);
  c.addCredit("a", 10, 0, 100);
  c.useCredit("a", 5, 11);
  EXPECT_EQ(c.getBalance("a", 5), 10);
  c.useCredit("a", 6, 10);
  EXPECT_EQ(c.getBalance("a", 6), nullopt);
}

TEST(GPUCredit, AgreesWithTheBatchLedgerOnRandomCalls) {
  for (std::uint64_t seed = 1; seed <= 300; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed + test::base_seed(0));
    GPUCredit interactive;
    event_table events;
    std::vector<std::tuple<std::string, timestamp_t, std::optional<amount_t>, std::size_t>> asked;
    for (int call = 0; call < 60; ++call) {
      const std::string account = "acct-" + std::to_string(rng() % 3);
      const auto t = static_cast<timestamp_t>(rng() % 40);
      switch (rng() % 3) {
        case 0: {
          const auto amount = static_cast<amount_t>(rng() % 10);
          const auto expiration = static_cast<timestamp_t>(rng() % 15);
          interactive.addCredit(account, amount, t, expiration);
          events.add(account, "credit", t, amount, expiration, static_cast<std::uint64_t>(call) + 1);
          break;
        }
        case 1: {
          const auto amount = static_cast<amount_t>(rng() % 12);
          interactive.useCredit(account, t, amount);
          events.use(account, t, amount, static_cast<std::uint64_t>(call) + 1);
          break;
        }
        default:
          asked.emplace_back(account, t, interactive.getBalance(account, t), events.size());
      }
    }
    // Every answer given along the way, and every answer at the end, as the batch gives.
    const engine batch = engine::create(replay(events));
    for (int a = 0; a < 3; ++a) {
      const std::string account = "acct-" + std::to_string(a);
      const account_index index = events.accounts.find(account).value_or(account_none);
      for (timestamp_t t = -1; t <= 60; ++t) {
        ASSERT_EQ(interactive.getBalance(account, t), batch.balance(index, t)) << account << " at " << t;
      }
    }
    // Each answer given along the way equals the batch over the calls made before it.
    for (const auto& [account, t, answer, calls_before] : asked) {
      event_table prefix;
      for (std::size_t r = 0; r < calls_before; ++r) {
        const std::string_view name = events.accounts[events.account[r]];
        if (events.kind[r] == op::add) {
          prefix.add(name, "credit", events.timestamp[r], events.amount[r], events.end[r] - events.timestamp[r], r + 1);
        } else {
          prefix.use(name, events.timestamp[r], events.amount[r], r + 1);
        }
      }
      const engine then = engine::create(replay(prefix));
      ASSERT_EQ(answer, then.balance(prefix.accounts.find(account).value_or(account_none), t)) << account << " at " << t;
    }
  }
}

// The batch answer over the first `count` calls of `events`.
std::optional<amount_t> batch_balance(const event_table& events, std::size_t count, const std::string& account,
                                      timestamp_t t, overdraft_policy policy) {
  event_table prefix;
  for (std::size_t r = 0; r < count; ++r) {
    const std::string_view name = events.accounts[events.account[r]];
    if (events.kind[r] == op::add) {
      prefix.add(name, "credit", events.timestamp[r], events.amount[r], events.end[r] - events.timestamp[r], r + 1);
    } else {
      prefix.use(name, events.timestamp[r], events.amount[r], r + 1);
    }
  }
  return engine::create(replay(prefix, policy)).balance(prefix.accounts.find(account).value_or(account_none), t);
}

TEST(GPUCredit, MostlyInOrderCallsWithPastAndFutureQueries) {
  // The incremental path: calls mostly in time order (a few late), queries before, at
  // and after the latest call, each checked against the batch over the calls so far.
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed + test::base_seed(0));
    const overdraft_policy policy = seed % 2 == 0 ? overdraft_policy::drain : overdraft_policy::reject;
    GPUCredit interactive(policy);
    event_table events;
    timestamp_t clock = 0;
    for (int call = 0; call < 150; ++call) {
      const std::string account = "acct-" + std::to_string(rng() % 2);
      clock += static_cast<timestamp_t>(rng() % 3);
      const timestamp_t t = rng() % 10 == 0 ? clock - static_cast<timestamp_t>(rng() % 20) : clock;
      const auto kind = rng() % 5;
      if (kind < 2) {
        const auto amount = static_cast<amount_t>(rng() % 10);
        const auto expiration = static_cast<timestamp_t>(rng() % 25);
        interactive.addCredit(account, amount, t, expiration);
        events.add(account, "credit", t, amount, expiration, static_cast<std::uint64_t>(call) + 1);
      } else if (kind < 4) {
        const auto amount = static_cast<amount_t>(rng() % 12);
        interactive.useCredit(account, t, amount);
        events.use(account, t, amount, static_cast<std::uint64_t>(call) + 1);
      } else {
        const timestamp_t q = clock + static_cast<timestamp_t>(rng() % 40) - 20;
        ASSERT_EQ(interactive.getBalance(account, q), batch_balance(events, events.size(), account, q, policy))
            << account << " at " << q << " after " << events.size() << " calls";
      }
    }
  }
}

TEST(GPUCredit, JobsAnswerLikeTheBatchLedger) {
  // runCredit beside addCredit and useCredit, in any order, both policies: every answer
  // along the way equals the batch ledger over the calls made so far (SPEC section 10).
  for (std::uint64_t seed = 1; seed <= 80; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed * 7919 + test::base_seed(0));
    const overdraft_policy policy = seed % 2 == 0 ? overdraft_policy::drain : overdraft_policy::reject;
    GPUCredit interactive(policy);
    event_table events;
    for (int call = 0; call < 40; ++call) {
      const std::string account = "acct-" + std::to_string(rng() % 2);
      const auto t = static_cast<timestamp_t>(rng() % 30);
      const auto line = static_cast<std::uint64_t>(call) + 1;
      switch (rng() % 4) {
        case 0: {
          const auto amount = static_cast<amount_t>(rng() % 40);
          const auto expiration = static_cast<timestamp_t>(rng() % 20);
          interactive.addCredit(account, amount, t, expiration);
          events.add(account, "credit", t, amount, expiration, line);
          break;
        }
        case 1: {
          const auto amount = static_cast<amount_t>(rng() % 12);
          interactive.useCredit(account, t, amount);
          events.use(account, t, amount, line);
          break;
        }
        case 2: {
          const auto rate = static_cast<amount_t>(rng() % 4);
          const auto ticks = static_cast<std::int64_t>(rng() % 12);
          interactive.runCredit(account, t, rate, ticks);
          events.run(account, "job", t, rate, ticks, line);
          break;
        }
        default: {
          const timestamp_t q = static_cast<timestamp_t>(rng() % 50) - 5;
          const engine batch = engine::create(replay(events, policy));
          ASSERT_EQ(interactive.getBalance(account, q), batch.balance(events.accounts.find(account).value_or(account_none), q))
              << account << " at " << q << " after " << events.size() << " calls";
        }
      }
    }
  }
  // Bad jobs are refused and change nothing.
  GPUCredit credits;
  credits.addCredit("a", 10, 0, 100);
  EXPECT_THROW(credits.runCredit("a", 0, -1, 5), input_error);
  EXPECT_THROW(credits.runCredit("a", 0, 1, -5), input_error);
  EXPECT_THROW(credits.runCredit("a", timestamp_max, 1, 2), input_error);
  EXPECT_THROW(credits.runCredit("a", 0, amount_max, 2), input_error);
  EXPECT_EQ(credits.getBalance("a", 50), 10);
  credits.runCredit("a", 10, 2, 3);  // 2 at 10, 11 and 12
  EXPECT_EQ(credits.getBalance("a", 10), 8);
  EXPECT_EQ(credits.getBalance("a", 12), 4);
  EXPECT_EQ(credits.getBalance("a", 13), 4);
}

TEST(GPUCredit, UseSaysWhetherItWasPaidInFullAndUnpaidListsWhatWasNot) {
  // useCredit's answer and unpaid() against the batch ledger's unpaid uses, calls in any
  // order (late ones too), jobs among them in a third of the cases, both policies.
  std::size_t unpaid_seen = 0;
  for (std::uint64_t seed = 1; seed <= 60; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::mt19937_64 rng(seed * 104729 + test::base_seed(0));
    const overdraft_policy policy = seed % 2 == 0 ? overdraft_policy::drain : overdraft_policy::reject;
    GPUCredit interactive(policy);
    event_table events;
    for (int call = 0; call < 30; ++call) {
      const std::string account = "acct-" + std::to_string(rng() % 2);
      const auto t = static_cast<timestamp_t>(rng() % 30);
      const auto line = static_cast<std::uint64_t>(call) + 1;
      const auto kind = rng() % 5;
      if (kind < 2) {
        const auto amount = static_cast<amount_t>(rng() % 30);
        const auto expiration = static_cast<timestamp_t>(rng() % 20);
        interactive.addCredit(account, amount, t, expiration);
        events.add(account, "credit", t, amount, expiration, line);
      } else if (kind < 4 || seed % 3 != 0) {
        // Paid in full given the calls so far: a late add may pay it later.
        const auto amount = static_cast<amount_t>(rng() % 15);
        const bool paid = interactive.useCredit(account, t, amount);
        events.use(account, t, amount, line);
        const ledger_result now = replay(events, policy);
        const usage_table& unpaid_now = policy == overdraft_policy::drain ? now.shortfalls : now.rejections;
        const auto row = static_cast<event_row>(events.size() - 1);
        EXPECT_EQ(paid, std::find(unpaid_now.row.begin(), unpaid_now.row.end(), row) == unpaid_now.row.end())
            << "use at row " << row;
      } else {
        const auto rate = static_cast<amount_t>(rng() % 4);
        const auto ticks = static_cast<std::int64_t>(rng() % 8);
        interactive.runCredit(account, t, rate, ticks);
        events.run(account, "job", t, rate, ticks, line);
      }
    }
    const ledger_result batch = replay(events, policy);
    const usage_table& unpaid = policy == overdraft_policy::drain ? batch.shortfalls : batch.rejections;
    std::vector<std::tuple<std::uint64_t, timestamp_t, amount_t, bool>> want;
    for (std::size_t i = 0; i < unpaid.size(); ++i) {
      want.emplace_back(unpaid.row[i] + std::uint64_t{1}, unpaid.timestamp[i], unpaid.amount[i],
                        policy == overdraft_policy::reject);
    }
    std::sort(want.begin(), want.end());
    std::vector<std::tuple<std::uint64_t, timestamp_t, amount_t, bool>> got;
    for (const GPUCredit::unpaid_use& u : interactive.unpaid()) {
      EXPECT_EQ(u.account, std::string(events.accounts[events.account[u.call - 1]]));
      got.emplace_back(u.call, u.timestamp, u.amount, u.rejected);
    }
    EXPECT_EQ(got, want);
    unpaid_seen += got.size();
  }
  EXPECT_GT(unpaid_seen, 50U);
}

TEST(GPUCredit, OverflowChecksOnBothPaths) {
  GPUCredit c;
  c.addCredit("a", amount_max - 10, 100, 50);
  EXPECT_THROW(c.addCredit("a", 11, 120, 5), input_error);  // in order: would pass int64
  c.addCredit("a", 10, 120, 5);                             // exactly the top
  EXPECT_EQ(c.getBalance("a", 120), amount_max);
  EXPECT_THROW(c.addCredit("a", 1, 110, 20), input_error);  // late: beyond int64 at 120
  c.addCredit("a", 1, 10, 20);                              // late, expired long before
  EXPECT_EQ(c.getBalance("a", 20), 1);
  EXPECT_EQ(c.getBalance("a", 125), amount_max);
  EXPECT_EQ(c.getBalance("a", 126), amount_max - 10);
  c.useCredit("a", 130, 5);
  c.addCredit("a", 5, 130, 0);  // after the use, room again
  EXPECT_EQ(c.getBalance("a", 130), amount_max - 10);
}

TEST(LiveCredits, MatchesASortedListUnderRandomOperations) {
  std::mt19937_64 rng(3 + test::base_seed(0));
  detail::live_credits live;
  std::vector<detail::live_credits::credit> list;  // kept sorted by (end, start, row)
  auto key = [](const detail::live_credits::credit& c) { return std::tie(c.end, c.start, c.row); };
  for (event_row row = 0; row < 20000; ++row) {
    const auto op_kind = rng() % 4;
    if (op_kind < 2 || list.empty()) {
      const detail::live_credits::credit c{static_cast<timestamp_t>(rng() % 500), static_cast<timestamp_t>(rng() % 50), row,
                                           1 + static_cast<amount_t>(rng() % 100)};
      live.insert(c);
      list.insert(std::upper_bound(list.begin(), list.end(), c, [&](const auto& x, const auto& y) { return key(x) < key(y); }), c);
    } else if (op_kind == 2) {
      ASSERT_EQ(live.front().row, list.front().row);
      if (list.front().remaining > 1) {
        const amount_t take = 1 + static_cast<amount_t>(rng()) % (list.front().remaining - 1);
        live.draw_from_front(take);
        list.front().remaining -= take;
      } else {
        live.pop_front();
        list.erase(list.begin());
      }
    } else {
      live.pop_front();
      list.erase(list.begin());
    }
    ASSERT_EQ(live.empty(), list.empty());
    if (!list.empty()) {
      ASSERT_EQ(live.front().remaining, list.front().remaining);
    }
    const auto t = static_cast<timestamp_t>(rng() % 520);
    amount_t want = 0;
    for (const auto& c : list) want += c.end >= t ? c.remaining : 0;
    ASSERT_EQ(live.remaining_ending_at_or_after(t), want) << "at " << t;
  }
}

}  // namespace
}  // namespace gpucredit
