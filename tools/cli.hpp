// What the CLI's subcommands share (tools/ only): exit codes, flag parsing, the phase
// log, and one function per subcommand that adds its options and returns how to run it.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdio>
#include <functional>
#include <string>

#include "gpucredit/engine.hpp"
#include "gpucredit/types.hpp"

namespace gpucredit::tools {

inline constexpr int exit_ok = 0;
inline constexpr int exit_failure = 1;    // the system failed us: a write, memory, a device
inline constexpr int exit_bad_input = 2;  // the user's input or command line is at fault

/// "drain" or "reject" (CLI11 has checked it).
overdraft_policy parse_policy(const std::string& name);
/// An int64 flag value; throws input_error naming the flag.
timestamp_t parse_flag_int(const std::string& flag, const std::string& text);
/// Adds `--policy` (drain or reject) bound to `policy`.
void add_policy_option(CLI::App& command, std::string& policy);
/// Adds `--expiration duration|end` bound to `form` (what an add's sixth column holds).
void add_expiration_option(CLI::App& command, std::string& form);
/// Adds `--backend auto|cpu|cuda` and `--device LIST` bound to `backend` and `devices`.
void add_backend_options(CLI::App& command, std::string& backend, std::string& devices);
/// The engine the two options ask for (gpucredit::resolve_engine). Throws
/// backend_unavailable.
engine_options engine_request(const std::string& backend, const std::string& devices);
/// "end" or "duration" (CLI11 has checked it).
expiration_form parse_expiration_form(const std::string& name);

// Timed phases on standard error: `balances --timings` asks for them, and `report`
// shows them on a terminal unless --quiet. Each lap is timed from the one before.
class phase_log {
 public:
  explicit phase_log(bool on) : on_(on), last_(std::chrono::steady_clock::now()) {}
  void say(const std::string& line) const {
    if (on_) std::fprintf(stderr, "gpucredit: %s\n", line.c_str());
  }
  // Two phases that ran interleaved since the last lap: `first` took `first_seconds` of
  // that time, `second` the rest.
  void split_lap(const char* first, double first_seconds, const char* second) {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    if (!on_) return;
    std::fprintf(stderr, "gpucredit: %-12s %.6f s\n", first, first_seconds);
    std::fprintf(stderr, "gpucredit: %-12s %.6f s\n", second, seconds - first_seconds);
  }
  // "gpucredit: PHASE SECONDS s", or with a count "gpucredit: PHASE: N in S s (R/s)".
  void lap(const char* phase, std::size_t items = 0) {
    const auto now = std::chrono::steady_clock::now();
    const double seconds = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    if (!on_) return;
    if (items == 0) {
      std::fprintf(stderr, "gpucredit: %-12s %.6f s\n", phase, seconds);
    } else {
      std::fprintf(stderr, "gpucredit: %s: %zu in %.3f s (%.0f/s)\n", phase, items, seconds,
                   seconds > 0 ? static_cast<double>(items) / seconds : 0.0);
    }
  }

 private:
  bool on_;
  std::chrono::steady_clock::time_point last_;
};

/// A subcommand: its CLI11 node and how to run it once parsed.
struct command {
  CLI::App* cli;
  std::function<int()> run;
};

command add_balances(CLI::App& app);    // balances.cpp
command add_intervals(CLI::App& app);   // intervals.cpp
command add_breakdown(CLI::App& app);   // breakdown.cpp
command add_report(CLI::App& app);      // report.cpp

}  // namespace gpucredit::tools
