// `gpucredit report`: every account's balance on a time grid (through the query
// engine), each account's window summary (SPEC section 11), and a page of charts.
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
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
  std::string time_unit;
  bool quiet = false;
};

using wide = total_t;  // fleet-wide sums may pass int64 (SPEC section 11)

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
  const backend chosen = select_backend(args.backend_name);
  const timestamp_t from = parse_flag_int("--from", args.from);
  const timestamp_t to = parse_flag_int("--to", args.to);
  const timestamp_t every = parse_flag_int("--every", args.every);
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
  const engine answers = engine::create(result, chosen);
  tell.lap("events replayed and indexed", events.size());

  // The page: fleet series per grid time, the accounts with the most breakage and
  // shortfall, and the per-account view for the most active accounts.
  constexpr std::size_t ranked_max = 10;
  constexpr std::size_t accounts_shown_max = 200;
  tools::report_page page;
  page.title = "gpucredit report: " + std::filesystem::path(args.events).filename().string() + ", " +
               std::to_string(names.size()) + " accounts, " + std::to_string(grid.size()) + " times from " +
               std::to_string(from) + " to " + std::to_string(to);
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
    csv_writer out(balances_file.fd(), balances_file.name());
    out.raw(balances_header);
    out.end_row();
    tell.say("answering " + std::to_string(names.size() * grid.size()) + " queries on " +
             std::string(to_string(answers.kind())));
    grid_balances(answers, index_of, grid, page.fleet_balance, [&](std::size_t first, std::span<const amount_t> b) {
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
    csv_writer out(summary_file.fd(), summary_file.name());
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
    csv_writer out(html_file.fd(), html_file.name());
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
  cmd->add_option("--from", args->from, "Start of the window and of the grid")->required();
  cmd->add_option("--to", args->to, "End of the window; the grid stops at or before it")->required();
  cmd->add_option("--every", args->every, "Grid step (> 0)")->required();
  cmd->add_option("--accounts", args->accounts, "Only these accounts: a CSV with the header 'account'");
  cmd->add_option("--out", args->out, "Output directory (created if missing)")->required();
  add_policy_option(*cmd, args->policy);
  add_expiration_option(*cmd, args->expiration);
  cmd->add_option("--backend", args->backend_name, "Query backend: auto, cpu or cuda")->capture_default_str();
  cmd->add_option("--time-unit", args->time_unit, "Unit of the timestamps, to show UTC dates in args->html")
      ->check(CLI::IsMember({"s", "ms", "us", "ns"}));
  cmd->add_flag("--quiet", args->quiet, "No progress on standard error (shown only on a terminal)");
  return {cmd, [args] { return run_report(*args); }};
}

}  // namespace gpucredit::tools
