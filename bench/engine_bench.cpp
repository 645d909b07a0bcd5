// CSV parsing, ledger replay, step-index build, CPU queries and the interactive API,
// with every benchmark checking its answer once before it is timed (a fast wrong answer
// fails the run). Rates are per wall-clock second: the engine uses every core.
#include <benchmark/benchmark.h>

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>

#include "gpucredit/csv.hpp"
#include "cpu/query/engine_impl.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/gpu_credit.hpp"
#include "gpucredit/ledger.hpp"

namespace {

using namespace gpucredit;

// `accounts` accounts, each with a few credits and hourly usage for a month.
event_table fleet(std::size_t accounts, std::uint64_t seed) {
  std::mt19937_64 rng(seed);
  event_table events;
  constexpr timestamp_t hour = 3600;
  for (std::size_t a = 0; a < accounts; ++a) {
    const std::string name = "org-" + std::to_string(a);
    const std::size_t line = events.size() + 2;
    events.add(name, "plan", 0, 100000, 30 * 24 * hour - 1, line);
    if (rng() % 3 == 0) events.add(name, "promo", static_cast<timestamp_t>(rng() % 20) * 24 * hour, 20000, 7 * 24 * hour - 1, line + 1);
    for (timestamp_t h = 0; h < 30 * 24; ++h) {
      if (rng() % 10 < 6) events.use(name, h * hour + static_cast<timestamp_t>(rng() % hour), static_cast<amount_t>(rng() % 300), line + 2);
    }
  }
  return events;
}

// The balance at t as the sum of interval rows covering t: the definition.
amount_t by_definition(const interval_table& intervals, account_index a, timestamp_t t) {
  amount_t sum = 0;
  for (std::size_t i = 0; i < intervals.size(); ++i) {
    if (intervals.account[i] == a && intervals.begin[i] <= t && t <= intervals.end[i]) sum += intervals.held_at(i, t);
  }
  return sum;
}

void check(bool ok, const char* what) {
  if (!ok) throw std::runtime_error(std::string("benchmark answer check failed: ") + what);
}

// Balances of a sample of accounts equal those of GPUCredit, an independent
// implementation (a treap of live credits instead of the heap and intervals).
void check_replay(const event_table& events, const ledger_result& r, timestamp_t until, timestamp_t step) {
  check(r.account_count == events.accounts.size(), "account count");
  const engine e = engine::create(r);
  GPUCredit credits;
  const std::size_t sample = std::min<std::size_t>(events.accounts.size(), 20);
  for (std::size_t row = 0; row < events.size(); ++row) {
    if (events.account[row] >= sample) continue;
    const std::string_view name = events.accounts[events.account[row]];
    if (events.kind[row] == op::add) {
      credits.addCredit(name, events.amount[row], events.timestamp[row], events.end[row] - events.timestamp[row]);
    } else {
      credits.useCredit(name, events.timestamp[row], events.amount[row]);
    }
  }
  for (account_index a = 0; a < sample; ++a) {
    for (timestamp_t t = 0; t < until; t += step) {
      check(e.balance(a, t) == credits.getBalance(events.accounts[a], t), "replay balance");
    }
  }
}

void BM_Replay(benchmark::State& state) {
  const event_table events = fleet(static_cast<std::size_t>(state.range(0)), 1);
  check_replay(events, replay(events), 31 * 24 * 3600, 7 * 3600 + 13);
  for (auto _ : state) benchmark::DoNotOptimize(replay(events));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(events.size()));
  state.counters["events"] = static_cast<double>(events.size());
}
BENCHMARK(BM_Replay)->Arg(10)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The ledger of `bench/per_event.sh`: 160 events an account, a plan credit each, then
// usage spread over every account, so that an account's events lie far apart in arrival
// order (as in a log of many accounts) and gathering them misses the cache once the
// columns outgrow it. Per event at 10^6 (in cache) against 10^7 is the growth.
void BM_ReplayInterleaved(benchmark::State& state) {
  const std::size_t count = static_cast<std::size_t>(state.range(0));
  const std::size_t accounts = count / 160;
  event_table events;
  events.reserve(count);
  for (std::size_t i = 0; i < accounts; ++i) events.add("org-" + std::to_string(i), "plan", 0, 100000000, 31535999, i + 2);
  for (std::size_t i = accounts; i < count; ++i) {
    const std::size_t a = (i * 7919) % accounts;
    events.use("org-" + std::to_string(a), static_cast<timestamp_t>((i / accounts) * 60 + i % 60),
               static_cast<amount_t>(1 + (i * 7919) % 997), i + 2);
  }
  check_replay(events, replay(events), 200 * 60, 61);
  for (auto _ : state) benchmark::DoNotOptimize(replay(events));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(events.size()));
  state.counters["events"] = static_cast<double>(events.size());
}
BENCHMARK(BM_ReplayInterleaved)->Arg(1000000)->Arg(10000000)->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_Queries(benchmark::State& state) {
  const bool sorted = state.range(1) != 0;
  const event_table events = fleet(static_cast<std::size_t>(state.range(0)), 2);
  const ledger_result result = replay(events);
  const engine e = engine::create(result);
  std::mt19937_64 rng(3);
  const std::size_t n = 1 << 20;
  std::vector<account_index> accounts(n);
  std::vector<timestamp_t> times(n);
  for (std::size_t i = 0; i < n; ++i) {
    accounts[i] = static_cast<account_index>(rng() % result.account_count);
    times[i] = static_cast<timestamp_t>(rng() % (31 * 24 * 3600));
  }
  if (sorted) {
    std::vector<std::size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](std::size_t x, std::size_t y) {
      return std::tie(accounts[x], times[x]) < std::tie(accounts[y], times[y]);
    });
    std::vector<account_index> a2(n);
    std::vector<timestamp_t> t2(n);
    for (std::size_t i = 0; i < n; ++i) {
      a2[i] = accounts[order[i]];
      t2[i] = times[order[i]];
    }
    accounts.swap(a2);
    times.swap(t2);
  }
  const std::vector<amount_t> answers = e.balances(accounts, times);
  for (std::size_t i = 0; i < n; i += n / 64) {
    check(answers[i] == by_definition(result.intervals, accounts[i], times[i]), "balance");
  }
  for (auto _ : state) benchmark::DoNotOptimize(e.balances(accounts, times));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
  state.counters["breakpoints"] = static_cast<double>(detail::engine_access::cpu_index(e)->size());
}
BENCHMARK(BM_Queries)->Args({1000, 0})->Args({1000, 1})->Unit(benchmark::kMillisecond)->UseRealTime();

// CSV text of `lines` events over 1,000 accounts, the accounts either grouped (a log
// per account) or interleaved (a time-ordered log of the whole fleet).
std::string events_csv(std::size_t lines, bool interleaved) {
  std::string text(events_header);
  text += '\n';
  const std::size_t accounts = 1000;
  const std::size_t per = std::max<std::size_t>(1, lines / accounts);
  for (std::size_t i = 0; i < lines; ++i) {
    const std::size_t a = interleaved ? i % accounts : i / per;
    const std::size_t t = interleaved ? i / accounts * 3600 : i % per * 3600;
    if (t == 0) {
      text += "add,org-" + std::to_string(a) + ",plan-30d,0,1000000,2591999\n";
    } else {
      text += "use,org-" + std::to_string(a) + ",," + std::to_string(t + i % 3600) + "," + std::to_string(i % 977) + ",\n";
    }
  }
  return text;
}

void BM_ParseEvents(benchmark::State& state) {
  const auto lines = static_cast<std::size_t>(state.range(0));
  const std::string text = events_csv(lines, state.range(1) != 0);
  check(parse_events(text).size() == lines, "parsed row count");
  for (auto _ : state) benchmark::DoNotOptimize(parse_events(text));
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(text.size()));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(lines));
}
BENCHMARK(BM_ParseEvents)
    ->ArgsProduct({{10000, 1000000, 10000000}, {0, 1}})
    ->ArgNames({"lines", "interleaved"})
    ->Unit(benchmark::kMillisecond)->UseRealTime();

void BM_StepIndexBuild(benchmark::State& state) {
  const event_table events = fleet(static_cast<std::size_t>(state.range(0)), 5);
  const ledger_result result = replay(events);
  const step_index index = step_index::build(result.intervals, result.account_count);
  for (std::size_t i = 0; i < result.intervals.size(); i += 1009) {  // each row's start is counted
    const account_index a = result.intervals.account[i];
    check(index.balance(a, result.intervals.begin[i]) >= result.intervals.amount[i], "index covers intervals");
  }
  for (auto _ : state) benchmark::DoNotOptimize(step_index::build(result.intervals, result.account_count));
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(result.intervals.size()));
  state.counters["intervals"] = static_cast<double>(result.intervals.size());
  state.counters["bytes_per_interval"] = 4 + 4 + 8 + 8 + 8;
  state.counters["bytes_per_breakpoint"] = 8 + 8;
}
BENCHMARK(BM_StepIndexBuild)->Arg(100)->Arg(1000)->Arg(10000)->Unit(benchmark::kMillisecond)->UseRealTime();

// `n` queries over the synthetic indexes below (`per` breakpoints 16 apart per account),
// at random times around them, sorted by (account, time) or not.
std::pair<std::vector<account_index>, std::vector<timestamp_t>> synthetic_queries(std::size_t accounts_total,
                                                                                  std::size_t per, std::size_t n,
                                                                                  bool sorted) {
  std::mt19937_64 rng(9);
  std::vector<std::pair<account_index, timestamp_t>> q(n);
  for (auto& [a, t] : q) {
    a = static_cast<account_index>(rng() % accounts_total);
    t = static_cast<timestamp_t>(rng() % (per * 16 + 16)) - 8;
  }
  if (sorted) std::sort(q.begin(), q.end());
  std::vector<account_index> accounts(n);
  std::vector<timestamp_t> times(n);
  for (std::size_t i = 0; i < n; ++i) std::tie(accounts[i], times[i]) = q[i];
  return {std::move(accounts), std::move(times)};
}

// Times `e` answering the batch (accounts, times) into one reused buffer, as a caller
// answering batch after batch would, after checking every 997th answer of a first run
// against a plain search of the index.
void time_queries(benchmark::State& state, const engine& e, std::span<const account_index> accounts,
                  std::span<const timestamp_t> times) {
  const std::size_t n = accounts.size();
  std::vector<amount_t> out(n);
  e.balances(accounts, times, out);
  const step_index& index = *detail::engine_access::cpu_index(e);
  for (std::size_t i = 0; i < n; i += 997) check(out[i] == index.balance(accounts[i], times[i]), "balance");
  for (auto _ : state) {
    e.balances(accounts, times, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}

// Queries over a synthetic index of `breakpoints` breakpoints (100 per account): one
// interval per breakpoint, so the engine builds it from an interval table as usual.
void BM_QueriesSynthetic(benchmark::State& state) {
  const auto breakpoints = static_cast<std::size_t>(state.range(0));
  const bool sorted = state.range(1) != 0;
  const auto n = static_cast<std::size_t>(state.range(2));
  constexpr std::size_t per = 100;
  const std::size_t accounts_total = breakpoints / per;
  interval_table rows;
  for (std::size_t i = 0; i < breakpoints; ++i) {
    const auto t = static_cast<timestamp_t>((i % per) * 16);
    const timestamp_t end = (i % per) == per - 1 ? t : t + 15;
    rows.push(static_cast<account_index>(i / per), static_cast<event_row>(i), t, end, 1 + static_cast<amount_t>(i % 997));
  }
  const engine e = engine::create(rows, accounts_total);
  const auto [accounts, times] = synthetic_queries(accounts_total, per, n, sorted);
  time_queries(state, e, accounts, times);
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n * (4 + 8 + 8)));
}
BENCHMARK(BM_QueriesSynthetic)
    ->ArgsProduct({{100000, 1000000, 10000000}, {0, 1}, {1 << 22, 1 << 25}})
    ->ArgNames({"breakpoints", "sorted", "queries"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Giant accounts (issue: random queries over accounts of 10^5+ breakpoints): `accounts`
// accounts of `per` breakpoints each, 4 Mi queries at random times, sorted by (account,
// time) or in random order. The random/sorted ratio is the figure of merit.
void BM_QueriesGiant(benchmark::State& state) {
  const auto per = static_cast<std::size_t>(state.range(0));
  const bool sorted = state.range(1) != 0;
  const std::size_t accounts_total = 4000000 / per;
  constexpr std::size_t n = std::size_t{1} << 22;
  interval_table rows;
  for (std::size_t i = 0; i < accounts_total * per; ++i) {
    const auto t = static_cast<timestamp_t>((i % per) * 16);
    const timestamp_t end = (i % per) == per - 1 ? t : t + 15;
    rows.push(static_cast<account_index>(i / per), static_cast<event_row>(i), t, end, 1 + static_cast<amount_t>(i % 997));
  }
  const engine e = engine::create(rows, accounts_total);
  const auto [accounts, times] = synthetic_queries(accounts_total, per, n, sorted);
  time_queries(state, e, accounts, times);
}
BENCHMARK(BM_QueriesGiant)
    ->ArgsProduct({{100, 10000, 100000, 1000000}, {0, 1}})
    ->ArgNames({"per_account", "sorted"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A skewed fleet's shape: 4 accounts of 250,000 breakpoints (searched through their
// trees) and 20,000 of 40 (plain binary searches), 4 Mi queries in random order, a
// quarter of them on the large accounts, as bench/skewed.py asks. Measures a random
// batch that mixes both kinds of search (cpu_engine.cpp answers each kind on its own).
void BM_QueriesMixed(benchmark::State& state) {
  constexpr std::size_t giants = 4;
  constexpr std::size_t giant_size = 250000;
  constexpr std::size_t small = 20000;
  constexpr std::size_t small_size = 40;
  constexpr std::size_t n = std::size_t{1} << 22;
  interval_table rows;
  std::mt19937_64 rng(3);
  for (std::size_t a = 0; a < giants + small; ++a) {
    const std::size_t size = a < giants ? giant_size : small_size;
    timestamp_t t = 0;
    for (std::size_t i = 0; i < size; ++i) {
      t += 1 + static_cast<timestamp_t>(rng() % 30);
      rows.push(static_cast<account_index>(a), static_cast<event_row>(rows.size()), t, t + 40,
                1 + static_cast<amount_t>(rng() % 997));
    }
  }
  const engine e = engine::create(rows, giants + small);
  std::vector<account_index> accounts(n);
  std::vector<timestamp_t> times(n);
  for (std::size_t i = 0; i < n; ++i) {
    const bool giant = rng() % 4 == 0;
    accounts[i] = static_cast<account_index>(giant ? rng() % giants : giants + rng() % small);
    times[i] = static_cast<timestamp_t>(rng() % ((giant ? giant_size : small_size) * 16));
  }
  time_queries(state, e, accounts, times);
}
BENCHMARK(BM_QueriesMixed)->Unit(benchmark::kMillisecond)->UseRealTime();

// The account table (dictionary): `n` distinct names interned, then 4 Mi lookups of
// names drawn from them in random order (what reading a queries file does per row).
// The per-lookup time from 10^3 to 10^7 names shows how it scales out of cache.
void BM_DictionaryLookup(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<std::string> names(n);
  for (std::size_t i = 0; i < n; ++i) names[i] = "org-" + std::to_string(i * 7919 % 100000007);
  dictionary d;
  for (const std::string& name : names) d.intern(name);
  check(d.size() == n, "distinct names");
  std::mt19937_64 rng(5);
  std::vector<std::string_view> probes(std::size_t{1} << 22);
  for (std::string_view& p : probes) p = names[rng() % n];
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for (const std::string_view p : probes) sum += d.intern(p);
    benchmark::DoNotOptimize(sum);
  }
  for (std::size_t i = 0; i < n; i += 997) check(d.find(names[i]) == i, "index");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(probes.size()));
}
BENCHMARK(BM_DictionaryLookup)->Arg(1000)->Arg(100000)->Arg(10000000)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same lookups as the CSV readers make them: a group of 32 names prefetched
// together (dictionary::prefetch), then interned in order.
void BM_DictionaryLookupPrefetched(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<std::string> names(n);
  for (std::size_t i = 0; i < n; ++i) names[i] = "org-" + std::to_string(i * 7919 % 100000007);
  dictionary d;
  for (const std::string& name : names) d.intern(name);
  std::mt19937_64 rng(5);
  std::vector<std::string_view> probes(std::size_t{1} << 22);
  for (std::string_view& p : probes) p = names[rng() % n];
  std::uint64_t want = 0;
  for (const std::string_view p : probes) want += *d.find(p);
  constexpr std::size_t group = 32;
  for (auto _ : state) {
    std::uint64_t sum = 0;
    for (std::size_t g = 0; g < probes.size(); g += group) {
      const std::span<const std::string_view> batch(probes.data() + g, std::min(group, probes.size() - g));
      d.prefetch(batch);
      for (const std::string_view p : batch) sum += d.intern(p);
    }
    check(sum == want, "indices");
    benchmark::DoNotOptimize(sum);
  }
  check(d.size() == n, "distinct names");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(probes.size()));
}
BENCHMARK(BM_DictionaryLookupPrefetched)->Arg(1000)->Arg(100000)->Arg(10000000)->Unit(benchmark::kMillisecond)->UseRealTime();

// Formatting the answers CSV (`write_balances`, what `gpucredit balances` spends its
// write phase on besides the kernel's copy): 10^7 rows naming 20,000 accounts in random
// order, written to /dev/null so that only the formatting is timed. The bytes are
// checked once, written to a file and read back, against rows made with std::to_string.
void BM_WriteBalances(benchmark::State& state) {
  constexpr std::size_t n = 10000000;
  constexpr std::size_t names = 20000;
  query_batch queries;
  std::mt19937_64 rng(11);
  std::vector<std::string> name(names);
  for (std::size_t a = 0; a < names; ++a) name[a] = "org-" + std::to_string(a * 7919 % 1000003);
  std::vector<amount_t> balances(n);
  for (std::size_t i = 0; i < n; ++i) {
    queries.push(name[rng() % names], 1767225600 + static_cast<timestamp_t>(rng() % 7776000));
    balances[i] = rng() % 4 == 0 ? 0 : static_cast<amount_t>(rng() % 100000000);
  }
  {
    std::FILE* f = std::tmpfile();
    check(f != nullptr, "tmpfile");
    csv_writer out(fileno(f), "tmpfile");
    write_balances(out, queries, balances);
    out.finish();
    std::string expect = std::string(balances_header) + "\n";
    for (std::size_t i = 0; i < n; ++i) {
      expect += std::string(queries.accounts[queries.account[i]]) + "," + std::to_string(queries.timestamp[i]) + ",";
      if (balances[i] != 0) expect += std::to_string(balances[i]);
      expect += "\n";
    }
    std::string got(expect.size() + 1, '\0');
    std::rewind(f);
    got.resize(std::fread(got.data(), 1, got.size(), f));
    std::fclose(f);
    check(got == expect, "answers CSV");
  }
  const int null = ::open("/dev/null", O_WRONLY);
  check(null >= 0, "/dev/null");
  for (auto _ : state) {
    csv_writer out(null, "/dev/null");
    write_balances(out, queries, balances);
    out.finish();
  }
  ::close(null);
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_WriteBalances)->Unit(benchmark::kMillisecond)->UseRealTime();

// [0, n) cut into one part per core, f(first, last) run on each on its own thread: the
// bounds below use plain threads, not the library's, so that they measure the machine.
template <class F>
void on_every_core(std::size_t n, F f) {
  const std::size_t parts = std::max(1U, std::thread::hardware_concurrency());
  std::vector<std::thread> threads;
  for (std::size_t k = 0; k < parts; ++k) threads.emplace_back([&f, n, parts, k] { f(n * k / parts, n * (k + 1) / parts); });
  for (std::thread& t : threads) t.join();
}

// A STREAM-like bound: a[i] = b[i] + 3 c[i] over 3 x 128 MiB on every core (24 bytes
// moved per element). No query benchmark can move more bytes per second than this.
void BM_StreamTriad(benchmark::State& state) {
  const std::size_t n = std::size_t{1} << 24;
  std::vector<double> a(n, 0.0);
  std::vector<double> b(n, 1.0);
  std::vector<double> c(n, 2.0);
  for (auto _ : state) {
    on_every_core(n, [&](std::size_t first, std::size_t last) {
      for (std::size_t i = first; i < last; ++i) a[i] = b[i] + 3.0 * c[i];
    });
    benchmark::DoNotOptimize(a.data());
  }
  check(a[n / 2] == 7.0, "triad");
  state.SetBytesProcessed(state.iterations() * static_cast<std::int64_t>(n * 24));
}
BENCHMARK(BM_StreamTriad)->Unit(benchmark::kMillisecond)->UseRealTime();

// The bound for queries in random order: whatever the search, a query over breakpoints
// that do not fit in cache reads at least two cache lines from memory, its breakpoint's
// time and its balance. Here each of 4 Mi queries reads exactly those two lines, at
// random among 4 x 10^6 breakpoints (the same 64 MB as BM_QueriesGiant), with nothing
// to search: the lines of a group of 128 are prefetched together, on every core. No
// search in random order can pass this rate on this machine.
void BM_RandomLines(benchmark::State& state) {
  constexpr std::size_t breakpoints = 4000000;
  constexpr std::size_t n = std::size_t{1} << 22;
  constexpr std::size_t group = 128;
  std::vector<timestamp_t> times(breakpoints);
  std::vector<amount_t> balances(breakpoints);
  for (std::size_t i = 0; i < breakpoints; ++i) {
    times[i] = static_cast<timestamp_t>(i * 16);
    balances[i] = static_cast<amount_t>(i % 997);
  }
  std::mt19937_64 rng(3);
  std::vector<std::uint32_t> at(n);
  for (std::uint32_t& i : at) i = static_cast<std::uint32_t>(rng() % breakpoints);
  std::vector<amount_t> out(n);
  for (auto _ : state) {
    on_every_core(n, [&](std::size_t first, std::size_t last) {
      for (std::size_t g = first; g < last; g += group) {
        const std::size_t end = std::min(last, g + group);
        for (std::size_t i = g; i < end; ++i) {
          __builtin_prefetch(times.data() + at[i]);
          __builtin_prefetch(balances.data() + at[i]);
        }
        for (std::size_t i = g; i < end; ++i) out[i] = balances[at[i]] + times[at[i]] % 16;
      }
    });
    benchmark::DoNotOptimize(out.data());
  }
  for (std::size_t i = 0; i < n; i += 997) check(out[i] == static_cast<amount_t>(at[i] % 997), "lines");
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_RandomLines)->Unit(benchmark::kMillisecond)->UseRealTime();

// The same index with and without slopes (SPEC section 10: every row drawn at 1 a tick,
// or level): what a ledger with jobs costs a query (one multiply, 8 more bytes read per
// breakpoint found). Answers checked against the definition on a sample.
void BM_QueriesSloped(benchmark::State& state) {
  const auto breakpoints = static_cast<std::size_t>(state.range(0));
  const bool sorted = state.range(1) != 0;
  const bool sloped = state.range(2) != 0;
  constexpr std::size_t n = std::size_t{1} << 22;
  constexpr std::size_t per = 100;
  const std::size_t accounts_total = breakpoints / per;
  interval_table rows;
  for (std::size_t i = 0; i < breakpoints; ++i) {
    const auto t = static_cast<timestamp_t>((i % per) * 16);
    rows.push(static_cast<account_index>(i / per), static_cast<event_row>(i), t, t + 15, 17 + static_cast<amount_t>(i % 997),
              sloped ? 1 : 0);
  }
  if (sloped) check(rows.has_slopes(), "slopes kept");
  const engine e = engine::create(rows, accounts_total);
  const auto [accounts, times] = synthetic_queries(accounts_total, per, n, sorted);
  std::vector<amount_t> out(n);
  e.balances(accounts, times, out);
  for (std::size_t i = 0; i < n; i += n / 64) {  // the definition scans every row: a sample
    const account_index a = accounts[i];
    interval_table mine;
    for (std::size_t r = a * per; r < (a + 1) * per; ++r) {
      mine.push(0, 0, rows.begin[r], rows.end[r], rows.amount[r], rows.slope_of(r));
    }
    check(out[i] == by_definition(mine, 0, times[i]), "sloped balance");
  }
  for (auto _ : state) {
    e.balances(accounts, times, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(n));
}
BENCHMARK(BM_QueriesSloped)
    ->ArgsProduct({{1000000, 10000000}, {0, 1}, {0, 1}})
    ->ArgNames({"breakpoints", "sorted", "sloped"})
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// A job's cost does not depend on its ticks (SPEC section 10): one account, 64 credits
// of staggered ends, a job of `ticks` ticks crossing them all. 10 and 10^12 ticks take
// the same time; the answer is checked in closed form.
void BM_JobTicks(benchmark::State& state) {
  const auto ticks = static_cast<std::int64_t>(state.range(0));
  event_table events;
  constexpr int credits = 64;
  const amount_t each = ticks;  // 64 x ticks in all: every tick is paid
  for (int c = 0; c < credits; ++c) {  // credit c ends at (c + 1) / 64 of the job
    events.add("a", "c", 0, each, ticks / credits * (c + 1), static_cast<std::uint64_t>(c) + 1);
  }
  events.run("a", "job", 0, 1, ticks, credits + 1);
  for (auto _ : state) {
    const ledger_result r = replay(events);
    benchmark::DoNotOptimize(r.intervals.size());
  }
  // Checked in closed form: after the first tick, and after the 64th credit's share.
  const engine e = engine::create(replay(events));
  check(e.balance(0, 0).value_or(0) == amount_t{credits} * each - 1, "first tick");
  const timestamp_t first_end = ticks / credits;  // credit 0 ends here, having given first_end + 1
  check(e.balance(0, first_end + 1).value_or(0) == amount_t{credits - 1} * each - 1, "after the first credit expired");
  state.counters["ticks"] = static_cast<double>(ticks);
}
BENCHMARK(BM_JobTicks)->Arg(10 * 64)->Arg(1000000000000)->Unit(benchmark::kMicrosecond)->UseRealTime();

// The interactive API under interleaved calls: per account, adds with long expirations
// (so tens of thousands of credits stay live), uses and balance queries at the latest
// time and in the past, all in time order. Cost per call should not grow with n.
void BM_GPUCreditInterleaved(benchmark::State& state) {
  const auto calls = static_cast<std::size_t>(state.range(0));
  auto run = [&] {
    GPUCredit credits;
    std::mt19937_64 rng(4);
    std::int64_t checksum = 0;
    for (std::size_t i = 0; i < calls; ++i) {
      const std::string account = "org-" + std::to_string(i % 4);
      const auto t = static_cast<timestamp_t>(i);
      switch (i % 4) {
        case 0:
          credits.addCredit(account, 100, t, 1000000);
          break;
        case 1:
          credits.useCredit(account, t, static_cast<amount_t>(rng() % 150));
          break;
        case 2:
          checksum += credits.getBalance(account, t).value_or(0);
          break;
        default:
          checksum += credits.getBalance(account, t / 2).value_or(0);
      }
    }
    return std::make_pair(checksum, credits.getBalance("org-0", static_cast<timestamp_t>(calls)).value_or(0));
  };
  {  // The final balance equals the batch ledger's on the same calls.
    event_table events;
    std::mt19937_64 rng(4);
    for (std::size_t i = 0; i < calls; ++i) {
      const std::string account = "org-" + std::to_string(i % 4);
      const auto t = static_cast<timestamp_t>(i);
      if (i % 4 == 0) events.add(account, "credit", t, 100, 1000000, i + 2);
      if (i % 4 == 1) events.use(account, t, static_cast<amount_t>(rng() % 150), i + 2);
    }
    const engine batch = engine::create(replay(events));
    const amount_t want = batch.balance(events.accounts.find("org-0").value_or(account_none),
                                        static_cast<timestamp_t>(calls)).value_or(0);
    check(run().second == want, "interactive final balance");
  }
  for (auto _ : state) benchmark::DoNotOptimize(run());
  state.SetItemsProcessed(state.iterations() * static_cast<std::int64_t>(calls));
}
BENCHMARK(BM_GPUCreditInterleaved)->Arg(10000)->Arg(100000)->Arg(1000000)->Unit(benchmark::kMillisecond)->UseRealTime();

// `breakdown` of one account of n lots (an add per time, a use every third): the credits
// at the last time, read off the interval table. O(events + rows): time per lot should
// not grow with n. Checked: granted = consumed + remaining + expired, and the balance.
void BM_Breakdown(benchmark::State& state) {
  const auto lots = static_cast<timestamp_t>(state.range(0));
  event_table events;
  for (timestamp_t i = 0; i < lots; ++i) {
    events.add("a", "lot", i, 10, lots, static_cast<std::uint64_t>(i) + 2);
    if (i % 3 == 2) events.use("a", i, 15, static_cast<std::uint64_t>(i) + 2);
  }
  const ledger_result result = replay(events);
  amount_t held = 0;
  for (const credit_state& c : credits_at(events, result, 0, lots - 1)) {
    check(c.granted == c.consumed + c.remaining + c.expired, "breakdown identity");
    held += c.remaining;
  }
  check(held == 10 * lots - 15 * (lots / 3), "breakdown balance");
  for (auto _ : state) benchmark::DoNotOptimize(credits_at(events, result, 0, lots - 1));
  state.SetItemsProcessed(state.iterations() * lots);
}
BENCHMARK(BM_Breakdown)->Arg(10000)->Arg(40000)->Arg(160000)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
