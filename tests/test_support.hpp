// Helpers shared by the tests: file access, running the CLI, and a deliberately naive
// reference ledger that answers each question by replaying from scratch with linear
// scans and 128-bit sums. It shares no code with the library.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "gpucredit/engine.hpp"
#include "gpucredit/types.hpp"

namespace gpucredit::test {

namespace fs = std::filesystem;

inline std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline void write_file(const fs::path& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
}

/// A fresh, empty directory under the system's temporary directory.
inline fs::path scratch_dir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / ("gpucredit-test-" + name + "-" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

struct run_result {
  int exit_code;
  std::string out;
  std::string err;
};

/// Runs a shell command, capturing stdout and stderr through files in `dir`.
inline run_result run(const std::string& command, const fs::path& dir) {
  const fs::path out = dir / "stdout.txt";
  const fs::path err = dir / "stderr.txt";
  const std::string full = command + " >'" + out.string() + "' 2>'" + err.string() + "' </dev/null";
  const int status = std::system(full.c_str());
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  return {code, read_file(out), read_file(err)};
}

/// The test vectors: GPUCREDIT_TEST_VECTORS_DIR when set (a build run on another
/// machine), else the source tree's tests/vectors.
inline fs::path vectors_dir() {
  const char* env = std::getenv("GPUCREDIT_TEST_VECTORS_DIR");
  return env != nullptr && *env != '\0' ? fs::path(env) : fs::path(GPUCREDIT_TEST_VECTORS);
}

#ifdef GPUCREDIT_CLI
/// The CLI under test: GPUCREDIT_TEST_CLI when set, else the one built beside the tests.
inline std::string cli_path() {
  const char* env = std::getenv("GPUCREDIT_TEST_CLI");
  return env != nullptr && *env != '\0' ? std::string(env) : std::string(GPUCREDIT_CLI);
}
#endif

inline std::string quote(const fs::path& path) { return "'" + path.string() + "'"; }

/// The backend the engine suites run against: what "auto" picks (the CUDA engine where
/// it is built and can run, including the device-logic build; else the CPU), unless
/// GPUCREDIT_BACKEND says otherwise.
inline backend backend_under_test() { return select_backend("auto"); }

// ---- naive reference ledger ------------------------------------------------------

__extension__ typedef __int128 wide;  // exact sums of int64 amounts

struct naive_event {
  op kind;
  int account;
  timestamp_t timestamp;
  amount_t amount;
  timestamp_t expiration;  // add only
};

/// What the naive reference knows of one account at time t (events applied up to t).
struct naive_answer {
  bool overflow = false;   // some event up to t took the balance beyond int64
  wide balance = 0;        // credits active at t
  wide granted = 0;        // amount of adds with timestamp <= t
  wide asked = 0;          // amount of uses with timestamp <= t
  wide consumed = 0;       // drawn by uses with timestamp <= t
  wide expired = 0;        // remaining of credits whose end < t
  wide unpaid = 0;         // drain: shortfall; reject: rejected usage
  std::vector<std::pair<std::size_t, amount_t>> unpaid_uses;  // (arrival, amount)
  std::vector<std::pair<std::size_t, amount_t>> held;         // (add's arrival, remaining > 0) active at t
};

/// Replays the events of `account` with timestamp <= t, from scratch.
inline naive_answer naive_at(const std::vector<naive_event>& events, int account, timestamp_t t,
                             overdraft_policy policy) {
  struct credit {
    wide start, end, remaining;
    std::size_t arrival;
  };
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i].account == account && events[i].timestamp <= t) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return events[a].timestamp < events[b].timestamp; });
  naive_answer answer;
  std::vector<credit> credits;
  for (const std::size_t i : order) {
    const naive_event& e = events[i];
    const wide now = e.timestamp;
    if (e.kind == op::add) {
      answer.granted += e.amount;
      credits.push_back({now, now + e.expiration, e.amount, i});
    } else {
      answer.asked += e.amount;
      std::vector<credit*> active;
      wide available = 0;
      for (credit& c : credits) {
        if (c.start <= now && now <= c.end && c.remaining > 0) {
          active.push_back(&c);
          available += c.remaining;
        }
      }
      if (policy == overdraft_policy::reject && e.amount > available) {
        answer.unpaid += e.amount;
        answer.unpaid_uses.emplace_back(i, e.amount);
        continue;
      }
      std::sort(active.begin(), active.end(), [](const credit* a, const credit* b) {
        if (a->end != b->end) return a->end < b->end;
        if (a->start != b->start) return a->start < b->start;
        return a->arrival < b->arrival;
      });
      wide need = e.amount;
      for (credit* c : active) {
        const wide take = std::min(c->remaining, need);
        c->remaining -= take;
        need -= take;
        answer.consumed += take;
      }
      if (need > 0) {
        answer.unpaid += need;
        answer.unpaid_uses.emplace_back(i, static_cast<amount_t>(need));
      }
    }
    wide balance_now = 0;
    for (const credit& c : credits) {
      if (c.start <= now && now <= c.end) balance_now += c.remaining;
    }
    if (balance_now > std::numeric_limits<amount_t>::max()) answer.overflow = true;
  }
  for (const credit& c : credits) {
    if (c.start <= t && t <= c.end) answer.balance += c.remaining;
    if (c.start <= t && t <= c.end && c.remaining > 0) {
      answer.held.emplace_back(c.arrival, static_cast<amount_t>(c.remaining));
    }
    if (c.end < t) answer.expired += c.remaining;
  }
  return answer;
}

}  // namespace gpucredit::test
