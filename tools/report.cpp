// `gpucredit report`: every account's balance on a time grid (through the query
// engine), each account's window summary (SPEC section 11), and a page of charts.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "cli.hpp"
#include "gpucredit/csv.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/ledger.hpp"
#include "gpucredit/report.hpp"
#include "output_file.hpp"
#include "report_html.hpp"

namespace gpucredit::tools {
namespace {

struct report_args {
  std::string expiration = "duration";
  std::string events;
  std::string from;
  std::string to;
  std::string every;
  std::string accounts;
  std::string out;
  std::string policy = "drain";
  std::string backend_name = "auto";
  std::string devices;
  std::string time_unit;
  bool quiet = false;
};

using wide = total_t;  // fleet-wide sums may pass int64 (SPEC section 11)

// Units per second of a --time-unit.
std::int64_t per_second(const std::string& unit) {
  return unit == "s" ? 1 : unit == "ms" ? 1'000 : unit == "us" ? 1'000'000 : 1'000'000'000;
}

// `seconds` x `scale` + `extra`, or input_error naming `flag` past int64.
timestamp_t scaled(const std::string& flag, const std::string& text, std::int64_t seconds, std::int64_t scale,
                   std::int64_t extra = 0) {
  const total_t value = total_t{seconds} * scale + extra;
  if (value > timestamp_max || value < timestamp_min) throw input_error(flag, 0, "'" + text + "' is beyond int64 in this unit");
  return static_cast<timestamp_t>(value);
}

// A grid time as people read it: the integer, or with --time-unit its UTC date and time.
std::string shown_time(timestamp_t t, const std::string& unit) {
  if (unit.empty()) return std::to_string(t);
  const std::int64_t scale = per_second(unit);
  std::int64_t seconds = t / scale;
  if (t % scale < 0) --seconds;  // floor toward the past
  std::int64_t days = seconds / 86400;
  std::int64_t rest = seconds % 86400;
  if (rest < 0) {
    rest += 86400;
    --days;
  }
  const std::chrono::year_month_day day{std::chrono::sys_days{std::chrono::days{days}}};
  char text[64];
  std::snprintf(text, sizeof text, "%04d-%02u-%02uT%02lld:%02lld:%02lldZ", static_cast<int>(day.year()),
                static_cast<unsigned>(day.month()), static_cast<unsigned>(day.day()), static_cast<long long>(rest / 3600),
                static_cast<long long>(rest % 3600 / 60), static_cast<long long>(rest % 60));
  return text;
}

// An int64, or with --time-unit a UTC date: 2026-10-01, 2026-10-01T12:00, 2026-10-01T12:00:00
// (a final Z allowed), read into the unit.
timestamp_t parse_time_flag(const std::string& flag, const std::string& text, const std::string& unit) {
  if (unit.empty() || text.find('-', 1) == std::string::npos) return parse_flag_int(flag, text);
  // YYYY-MM-DD, then optionally THH:MM, :SS and Z, and nothing else.
  std::size_t at = 0;
  bool shape = true;
  auto number = [&](std::size_t width) {
    int value = 0;
    const std::size_t end = at + width;
    if (end > text.size()) shape = false;
    for (; shape && at < end; ++at) {
      if (std::isdigit(static_cast<unsigned char>(text[at])) == 0) shape = false;
      value = value * 10 + (text[at] - '0');
    }
    return value;
  };
  auto literal = [&](char c) {
    if (at < text.size() && text[at] == c) {
      ++at;
      return true;
    }
    return false;
  };
  int h = 0, mi = 0, sec = 0;
  const int y = number(4);
  shape = shape && literal('-');
  const int mo = number(2);
  shape = shape && literal('-');
  const int d = number(2);
  if (shape && literal('T')) {
    h = number(2);
    shape = shape && literal(':');
    mi = number(2);
    if (shape && literal(':')) sec = number(2);
    literal('Z');
  }
  shape = shape && at == text.size();
  const std::chrono::year_month_day day{std::chrono::year{y}, std::chrono::month{static_cast<unsigned>(mo)},
                                        std::chrono::day{static_cast<unsigned>(d)}};
  if (!shape || !day.ok() || h > 23 || mi > 59 || sec > 59) {
    throw input_error(flag, 0, "'" + text + "' is neither an int64 nor a UTC date (2026-10-01, 2026-10-01T12:00:00Z)");
  }
  const std::int64_t days = std::chrono::sys_days(day).time_since_epoch().count();
  return scaled(flag, text, days * 86400 + h * 3600 + mi * 60 + sec, per_second(unit));
}

// An int64, or with --time-unit a duration: a whole number of w, d, h, m, s, ms, us or ns
// that is a whole number of the unit (500ms with --time-unit s is refused).
timestamp_t parse_duration_flag(const std::string& flag, const std::string& text, const std::string& unit) {
  if (unit.empty() || text.empty() || std::isdigit(static_cast<unsigned char>(text.back())) != 0) {
    return parse_flag_int(flag, text);
  }
  std::size_t digits = 0;
  while (digits < text.size() && std::isdigit(static_cast<unsigned char>(text[digits])) != 0) ++digits;
  const std::string suffix = text.substr(digits);
  static constexpr std::pair<const char*, std::int64_t> suffixes[] = {  // in nanoseconds
      {"w", 604'800'000'000'000}, {"d", 86'400'000'000'000}, {"h", 3'600'000'000'000}, {"m", 60'000'000'000},
      {"s", 1'000'000'000},       {"ms", 1'000'000},         {"us", 1'000},             {"ns", 1}};
  for (const auto& [name, ns] : suffixes) {
    if (suffix != name || digits == 0) continue;
    const std::int64_t count = parse_flag_int(flag, text.substr(0, digits));
    const std::int64_t ns_per_unit = 1'000'000'000 / per_second(unit);
    if (ns % ns_per_unit != 0) {
      throw input_error(flag, 0, "'" + text + "' is not a whole number of " + unit);
    }
    return scaled(flag, text, count, ns / ns_per_unit);
  }
  throw input_error(flag, 0, "'" + text + "' is neither an int64 nor a duration (1d, 6h, 30m, 15s, 500ms; w d h m s ms us ns)");
}

// The report's directory: refused up front when the path is something else than a
// directory; created (with missing parents) only once everything is ready to write, and
// removed again if writing fails, so a failed report leaves nothing behind.
class report_dir {
 public:
  explicit report_dir(std::string path) : path_(std::move(path)) {
    struct stat st {};
    if (::stat(path_.c_str(), &st) == 0 && !S_ISDIR(st.st_mode)) {
      throw input_error(path_, 0, "--out must name a directory, and this is a file");
    }
  }
  const std::string& path() const noexcept { return path_; }
  // Creates the directory and its missing parents, remembering which it made.
  void create() {
    std::filesystem::path p = std::filesystem::absolute(path_);
    std::vector<std::filesystem::path> missing;
    for (; !p.empty() && !std::filesystem::exists(p); p = p.parent_path()) {
      missing.push_back(p);
      if (p == p.parent_path()) break;
    }
    std::filesystem::create_directories(path_);
    created_ = std::move(missing);  // deepest first
  }
  void keep() noexcept { created_.clear(); }
  ~report_dir() {
    for (const std::filesystem::path& p : created_) {
      std::error_code ignored;
      std::filesystem::remove(p, ignored);  // only when empty
    }
  }
  report_dir(const report_dir&) = delete;
  report_dir& operator=(const report_dir&) = delete;

 private:
  std::string path_;
  std::vector<std::filesystem::path> created_;
};

// balances.csv (every account at every grid time) and summary.csv (each account over
// the window (from, to]) in DIR; both are complete before either replaces a file.
int run_report(const report_args& args) {
  const engine_options chosen = engine_request(args.backend_name, args.devices);
  const timestamp_t from = parse_time_flag("--from", args.from, args.time_unit);
  const timestamp_t to = parse_time_flag("--to", args.to, args.time_unit);
  const timestamp_t every = parse_duration_flag("--every", args.every, args.time_unit);
  if (from > to) throw input_error("--from", 0, "is after --to");
  if (every <= 0) throw input_error("--every", 0, "must be positive");
  const std::vector<timestamp_t> grid = report_grid(from, to, every);  // refuses grids too large
  report_dir out_dir(args.out);
  const std::filesystem::path dir(args.out);
  {
    std::vector<std::string> inputs{args.events};
    if (!args.accounts.empty()) inputs.push_back(args.accounts);
    refuse_clashing_outputs({{"--out", (dir / "balances.csv").string()},
                             {"--out", (dir / "summary.csv").string()},
                             {"--out", (dir / "report.html").string()}},
                            inputs);
  }

  phase_log tell(!args.quiet && ::isatty(STDERR_FILENO) != 0);  // progress on a terminal
  tell.say("reading " + args.events);
  const event_table events = read_events(args.events, parse_expiration_form(args.expiration));
  tell.lap("events read", events.size());
  std::vector<std::string> names;
  if (!args.accounts.empty()) {
    names = read_accounts(args.accounts);
  } else {
    for (std::uint32_t a = 0; a < events.accounts.size(); ++a) names.emplace_back(events.accounts[a]);
  }
  tell.say("replaying " + std::to_string(events.size()) + " events of " + std::to_string(events.accounts.size()) +
           " accounts");
  const ledger_result result = replay(events, parse_policy(args.policy));
  const std::vector<account_window> windows = window_summary(events, result, from, to);
  const engine answers = engine::create(result.intervals, result.account_count, chosen);
  tell.lap("events replayed and indexed", events.size());

  // The page: fleet series per grid time, the accounts with the most breakage and
  // shortfall, and the per-account view for the most active accounts.
  constexpr std::size_t ranked_max = 10;
  constexpr std::size_t accounts_shown_max = 200;
  tools::report_page page;
  page.title = "gpucredit report: " + std::filesystem::path(args.events).filename().string() + ", " +
               std::to_string(names.size()) + " accounts, " + std::to_string(grid.size()) + " times from " +
               shown_time(from, args.time_unit) + " to " + shown_time(to, args.time_unit);
  page.time_unit = args.time_unit;
  page.grid = grid;
  std::vector<std::uint32_t> index_of(names.size(), account_none);
  std::vector<char> included(events.accounts.size(), 0);
  std::vector<std::string_view> unknown;  // listed in --accounts, no events: their rows stay, all zero
  for (std::size_t i = 0; i < names.size(); ++i) {
    index_of[i] = events.accounts.find(names[i]).value_or(account_none);
    if (index_of[i] != account_none) {
      included[index_of[i]] = 1;
    } else {
      unknown.push_back(names[i]);
    }
  }
  if (!unknown.empty()) {  // said always, terminal or not: a typo gives zero rows silently otherwise
    std::string list;
    for (std::size_t k = 0; k < std::min<std::size_t>(unknown.size(), 10); ++k) {
      list += (k == 0 ? "'" : ", '") + std::string(unknown[k]) + "'";
    }
    if (unknown.size() > 10) list += ", ... (" + std::to_string(unknown.size() - 10) + " more)";
    std::fprintf(stderr, "gpucredit: report: %zu of the accounts in %s have no events (their rows are zero): %s\n",
                 unknown.size(), args.accounts.c_str(), list.c_str());
  }
  {
    step_flows flows = flows_per_step(events, result, grid, included);
    page.breakage = std::move(flows.breakage);
    page.shortfall = std::move(flows.shortfall);
  }
  std::vector<std::size_t> by_activity(names.size());
  for (std::size_t i = 0; i < names.size(); ++i) by_activity[i] = i;
  auto window_of = [&](std::size_t i) { return index_of[i] != account_none ? windows[index_of[i]] : account_window{}; };
  auto top = [&](auto amount_of) {
    std::vector<tools::report_page::ranked> rows;
    for (std::size_t i = 0; i < names.size(); ++i) {
      if (amount_of(window_of(i)) > 0) rows.push_back({names[i], amount_of(window_of(i))});
    }
    std::stable_sort(rows.begin(), rows.end(), [](const auto& a, const auto& b) { return a.amount > b.amount; });
    if (rows.size() > ranked_max) rows.resize(ranked_max);
    return rows;
  };
  page.top_breakage = top([](const account_window& w) { return w.expired; });
  page.top_shortfall = top([](const account_window& w) { return w.shortfall + w.rejected; });
  auto activity = [&](std::size_t i) {
    const account_window w = window_of(i);
    return wide{w.balance_from} + w.granted + w.consumed + w.expired + w.shortfall + w.rejected;
  };
  std::stable_sort(by_activity.begin(), by_activity.end(),
                   [&](std::size_t a, std::size_t b) { return activity(a) > activity(b); });
  std::vector<int> shown_slot(names.size(), -1);
  for (std::size_t k = 0; k < std::min(accounts_shown_max, by_activity.size()); ++k) {
    shown_slot[by_activity[k]] = static_cast<int>(page.accounts.size());
    page.accounts.push_back({names[by_activity[k]], {}});
  }

  // Every input error is behind us: only now is anything created.
  out_dir.create();
  output_file balances_file((dir / "balances.csv").string());
  output_file summary_file((dir / "summary.csv").string());
  output_file html_file((dir / "report.html").string());
  {
    csv_writer out(balances_file.fd(), balances_file.name(), balances_file.durable());
    out.raw(balances_header);
    out.end_row();
    tell.say("answering " + std::to_string(names.size() * grid.size()) + " queries on " +
             answers.describe());
    grid_balances(answers, index_of, report_time_grid(from, to, every), page.fleet_balance, [&](std::size_t first, std::span<const amount_t> b) {
      for (std::size_t q = 0; q < b.size(); ++q) {
        const std::size_t i = first + q / grid.size();
        if (shown_slot[i] >= 0) page.accounts[static_cast<std::size_t>(shown_slot[i])].balance.push_back(b[q]);
        out.field(names[i]);
        out.field(grid[q % grid.size()]);
        if (b[q] != 0) {
          out.field(b[q]);
        } else {
          out.empty_field();
        }
        out.end_row();
      }
    });
    out.finish();
    tell.lap("queries answered and written", names.size() * grid.size());
  }
  {
    csv_writer out(summary_file.fd(), summary_file.name(), summary_file.durable());
    out.raw("account,balance_from,granted,consumed,expired,shortfall,rejected,balance_to");
    out.end_row();
    for (std::size_t i = 0; i < names.size(); ++i) {
      const account_window w = window_of(i);
      out.field(names[i]);
      out.field(w.balance_from);
      for (const wide v : {w.granted, w.consumed, w.expired, w.shortfall, w.rejected}) out.total_field(v);
      out.field(w.balance_to);
      out.end_row();
    }
    out.finish();
  }
  {
    csv_writer out(html_file.fd(), html_file.name(), html_file.durable());
    out.raw(tools::render_report_html(page));
    out.finish();
  }
  tell.say("writing " + args.out);
  html_file.commit();
  balances_file.commit();
  summary_file.commit();
  out_dir.keep();
  return exit_ok;
}

}  // namespace

command add_report(CLI::App& app) {
  auto args = std::make_shared<report_args>();
  CLI::App* cmd = app.add_subcommand(
      "report",
      "Balances of every account on a time grid, and each account's window: writes DIR/balances.csv "
      "(account,timestamp,balance), DIR/summary.csv "
      "(account,balance_from,granted,consumed,expired,shortfall,rejected,balance_to over (FROM, TO]; "
      "balance_to = balance_from + granted - consumed - expired) and DIR/report.html (charts, opens offline)");
  cmd->add_option("--events", args->events, "Events CSV")->required();
  cmd->add_option("--from", args->from, "Start of the window and of the grid (an int64; a UTC date with --time-unit)")
      ->required();
  cmd->add_option("--to", args->to, "End of the window; the grid stops at or before it (an int64, or a date)")->required();
  cmd->add_option("--every", args->every, "Grid step > 0 (an int64; a duration such as 1d with --time-unit)")->required();
  cmd->add_option("--accounts", args->accounts, "Only these accounts: a CSV with the header 'account'");
  cmd->add_option("--out", args->out, "Output directory (created if missing)")->required();
  add_policy_option(*cmd, args->policy);
  add_expiration_option(*cmd, args->expiration);
  add_backend_options(*cmd, args->backend_name, args->devices);
  cmd->add_option("--time-unit", args->time_unit,
                  "Unit of the timestamps: report.html shows UTC dates, and --from/--to may be dates "
                  "(2026-10-01, 2026-10-01T12:00:00Z) and --every a duration (1d, 6h, 30m, 15s, 500ms)")
      ->check(CLI::IsMember({"s", "ms", "us", "ns"}));
  cmd->add_flag("--quiet", args->quiet, "No progress on standard error (shown only on a terminal)");
  return {cmd, [args] { return run_report(*args); }};
}

}  // namespace gpucredit::tools
