// gpucredit: the command-line tool. Reads events and queries as CSV, replays the ledger,
// answers the queries, and writes CSV. It is the only part of gpucredit that talks to
// people: input errors print "FILE:LINE: reason" and exit 2; nothing is written then.
// Each subcommand lives in its own file (balances, intervals, breakdown, report); the
// atomic output file in output_file.cpp.
#include <CLI/CLI.hpp>
#include <charconv>
#include <algorithm>
#include <iostream>
#include <optional>
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

void add_expiration_option(CLI::App& command, std::string& form) {
  command
      .add_option("--expiration", form,
                  "What an add's expiration column holds: duration (the default, SPEC: usable on "
                  "[timestamp, timestamp + expiration]) or end (the last usable timestamp, as billing "
                  "tables store expires_at)")
      ->check(CLI::IsMember({"duration", "end"}))
      ->capture_default_str();
}

void add_backend_options(CLI::App& command, std::string& backend, std::string& devices) {
  command
      .add_option("--backend", backend,
                  "Query backend: auto (CUDA where a usable device is, each batch where the cost model expects it "
                  "to finish first; honours GPUCREDIT_BACKEND), cpu, or cuda (every batch on the device)")
      ->check(CLI::IsMember({"auto", "cpu", "cuda"}))
      ->capture_default_str();
  command.add_option("--device", devices,
                     "CUDA devices to use, such as 0 or 0,2 (default: GPUCREDIT_DEVICE, else every usable device; "
                     "the accounts are sharded across them)");
}

engine_options engine_request(const std::string& backend, const std::string& devices) {
  return resolve_engine(backend, devices.empty() ? std::vector<int>{} : parse_devices(devices));
}

expiration_form parse_expiration_form(const std::string& name) {
  return name == "end" ? expiration_form::end : expiration_form::duration;
}

void add_policy_option(CLI::App& command, std::string& policy) {
  command.add_option("--policy", policy, "Overdraft policy")->check(CLI::IsMember({"drain", "reject"}))->capture_default_str();
}

namespace {

// Edit distance, for "did you mean" (names are short).
std::size_t distance(std::string_view a, std::string_view b) {
  std::vector<std::size_t> row(b.size() + 1);
  for (std::size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (std::size_t i = 1; i <= a.size(); ++i) {
    std::size_t diagonal = row[0];
    row[0] = i;
    for (std::size_t j = 1; j <= b.size(); ++j) {
      const std::size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  return row[b.size()];
}

// " (did you mean 'X'?)" for the nearest of `names`, when it is near enough.
std::string suggestion(std::string_view given, const std::vector<std::string>& names) {
  std::string best;
  std::size_t best_distance = std::max<std::size_t>(3, given.size() / 2) + 1;
  for (const std::string& name : names) {
    const std::size_t d = distance(given, name);
    if (d < best_distance) {
      best_distance = d;
      best = name;
    }
  }
  return best.empty() ? std::string() : " (did you mean '" + best + "'?)";
}

// An unknown subcommand or option, said as such (with the nearest known name) before
// CLI11 would report a missing subcommand or a missing required option instead.
std::optional<std::string> unknown_word(const CLI::App& app, int argc, char** argv) {
  if (argc < 2) return std::nullopt;
  const std::string first = argv[1];
  if (first.starts_with("-")) return std::nullopt;  // --help, --version, or CLI11's own message
  std::vector<std::string> commands;
  const CLI::App* command = nullptr;
  for (const CLI::App* sub : app.get_subcommands({})) {
    commands.push_back(sub->get_name());
    if (sub->get_name() == first) command = sub;
  }
  if (command == nullptr) return "unknown subcommand '" + first + "'" + suggestion(first, commands);
  std::vector<std::string> options{"--help"};
  for (const CLI::Option* option : command->get_options()) {
    for (const std::string& name : option->get_lnames()) options.push_back("--" + name);
  }
  for (int i = 2; i < argc; ++i) {
    const std::string_view arg = argv[i];
    if (!arg.starts_with("--")) continue;
    const std::string name(arg.substr(0, arg.find('=')));
    if (std::find(options.begin(), options.end(), name) == options.end()) {
      return first + ": unknown option '" + name + "'" + suggestion(name, options);
    }
  }
  return std::nullopt;
}

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

  if (const std::optional<std::string> unknown = unknown_word(app, argc, argv)) {
    std::cerr << "gpucredit: " << *unknown << "\nRun with --help for more information.\n";
    return exit_bad_input;
  }
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

