// Helpers shared by the tests: file access, running the CLI, the backend under test,
// and (from naive_ledger.hpp) the naive reference ledger.
#pragma once

#include <sys/wait.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "gpucredit/engine.hpp"
#include "gpucredit/events.hpp"
#include "gpucredit/types.hpp"
#include "naive_ledger.hpp"

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

/// The randomized tests' base seed: GPUCREDIT_TEST_SEED when set, else `fallback`.
inline std::uint64_t base_seed(std::uint64_t fallback) {
  const char* env = std::getenv("GPUCREDIT_TEST_SEED");
  return env != nullptr ? std::strtoull(env, nullptr, 10) : fallback;
}

/// The account name the randomized tests give account number `account`.
inline std::string account_name(int account) { return "acct-" + std::to_string(account); }

/// The naive reference's events as the library's event table (arrival = position).
inline event_table to_table(const std::vector<naive_event>& events) {
  event_table table;
  table.source = "events";
  for (std::size_t i = 0; i < events.size(); ++i) {
    const naive_event& e = events[i];
    const std::string label = "c" + std::to_string(i);
    switch (e.kind) {
      case op::add:
        table.add(account_name(e.account), label, e.timestamp, e.amount, e.expiration, i + 2);
        break;
      case op::use:
        table.use(account_name(e.account), e.timestamp, e.amount, i + 2);
        break;
      case op::run:
        table.run(account_name(e.account), label, e.timestamp, e.amount, e.expiration, i + 2);
        break;
    }
  }
  return table;
}

/// Every time at which something can change (events, expiries, a job's first and last
/// tick), with its neighbours, the int64 ends, and the first 40 ticks of every job.
inline std::vector<timestamp_t> probe_times(const std::vector<naive_event>& events) {
  std::set<timestamp_t> times{timestamp_min, timestamp_max, 0};
  auto with_neighbours = [&](timestamp_t t) {
    times.insert(t);
    if (t != timestamp_min) times.insert(t - 1);
    if (t != timestamp_max) times.insert(t + 1);
  };
  for (const naive_event& e : events) {
    with_neighbours(e.timestamp);
    if (e.kind == op::add) with_neighbours(e.timestamp + e.expiration);
    if (e.kind == op::run && e.expiration > 0) {
      with_neighbours(e.timestamp + (e.expiration - 1));
      for (timestamp_t k = 0; k < std::min<timestamp_t>(e.expiration, 40); ++k) times.insert(e.timestamp + k);
    }
  }
  return {times.begin(), times.end()};
}

/// The backend the engine suites run against: what "auto" picks (the CUDA engine where
/// it is built and can run, including the device-logic build; else the CPU), unless
/// GPUCREDIT_BACKEND says otherwise.
inline backend backend_under_test() { return select_backend("auto"); }

}  // namespace gpucredit::test
