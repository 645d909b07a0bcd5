// gpucredit: the command-line tool. Reads events and queries as CSV, replays the ledger,
// answers the queries, and writes CSV. It is the only part of gpucredit that talks to
// people: input errors print "FILE:LINE: reason" and exit 2; nothing is written then.
// Each subcommand lives in its own file (balances, intervals, breakdown, report); the
// atomic output file in output_file.cpp.
#include <CLI/CLI.hpp>
#include <charconv>
#include <iostream>
#include <new>
#include <string>
#include <vector>

#include "cli.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/version.hpp"
#include "output_file.hpp"

namespace gpucredit::tools {

overdraft_policy parse_policy(const std::string& name) {
  return name == "reject" ? overdraft_policy::reject : overdraft_policy::drain;
}

timestamp_t parse_flag_int(const std::string& flag, const std::string& text) {
  timestamp_t value = 0;
  const char* first = text.data();
  const auto [ptr, ec] = std::from_chars(first, first + text.size(), value);
  if (text.empty() || ec != std::errc() || ptr != first + text.size()) {
    throw input_error(flag, 0, "not an int64: '" + text + "'");
  }
  return value;
}

void add_policy_option(CLI::App& command, std::string& policy) {
  command.add_option("--policy", policy, "Overdraft policy")->check(CLI::IsMember({"drain", "reject"}))->capture_default_str();
}

namespace {

// The version and each backend: compiled in or not, and usable here or why not.
std::string version_text() {
  std::string text = std::string("gpucredit ") + version_string + "\nbackends:";
  for (const backend b : compiled_backends()) text += " " + std::string(to_string(b));
  for (const backend b : {backend::cpu, backend::cuda}) {
    text += "\n  " + std::string(to_string(b)) + ": " + backend_status(b);
  }
  return text;
}

}  // namespace
}  // namespace gpucredit::tools

int main(int argc, char** argv) {
  using namespace gpucredit;
  using namespace gpucredit::tools;
  install_signal_handlers();
  CLI::App app{"gpucredit: exact point-in-time balances of expiring GPU credits.\n"
               "Semantics: SPEC.md in the source tree. Exit codes: 0 ok, 1 system failure "
               "(write, memory, device), 2 bad input or usage."};
  app.set_version_flag("--version", version_text, "Print the version and the backends: compiled in, usable here or why not");
  app.require_subcommand(1);
  const std::vector<command> commands{add_balances(app), add_intervals(app), add_breakdown(app), add_report(app)};

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return exit_bad_input;
  }

  try {
    for (const command& c : commands) {
      if (c.cli->parsed()) return c.run();
    }
    return exit_bad_input;
  } catch (const input_error& e) {
    std::cerr << e.what() << '\n';
    return exit_bad_input;
  } catch (const backend_unavailable& e) {
    std::cerr << "gpucredit: " << e.what() << '\n';
    return exit_bad_input;
  } catch (const device_error& e) {
    std::cerr << "gpucredit: device failure: " << e.what() << '\n';
    return exit_failure;
  } catch (const std::bad_alloc&) {
    std::cerr << "gpucredit: out of memory\n";
    return exit_failure;
  } catch (const std::exception& e) {
    std::cerr << "gpucredit: " << e.what() << '\n';
    return exit_failure;
  }
}

