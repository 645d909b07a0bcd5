// gpucredit: the command-line tool. Reads events and queries as CSV, replays the ledger,
// answers the queries, and writes CSV. It is the only part of gpucredit that talks to
// people: input errors print "FILE:LINE: reason" and exit 2; nothing is written then.
// Outputs go to a temporary file beside the destination that is renamed over it only
// once it is complete, so an existing output is never left half-written.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <charconv>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <new>
#include <optional>
#include <string>
#include <vector>

#include "gpucredit/csv.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/ledger.hpp"
#include "gpucredit/version.hpp"
#include "report_html.hpp"

namespace {

using namespace gpucredit;

constexpr int exit_ok = 0;
constexpr int exit_failure = 1;     // the system failed us: a write, memory
constexpr int exit_bad_input = 2;  // the user's input or command line is at fault

std::string errno_text(int errnum) { return std::strerror(errnum); }

// The temporary output file being written, for the signal handler to remove: a run
// interrupted by SIGINT, SIGTERM or SIGHUP leaves no partial file behind. (SIGKILL
// cannot be caught: then a hidden ".NAME.gpucredit-XXXXXX" file may stay, and the
// destination still holds its earlier content.)
char pending_temp[4096] = {};
volatile std::sig_atomic_t pending_temp_set = 0;

extern "C" void remove_pending_temp(int signal_number) {
  if (pending_temp_set != 0) ::unlink(pending_temp);
  std::signal(signal_number, SIG_DFL);
  std::raise(signal_number);
}

void track_temp(const std::string& path) {
  pending_temp_set = 0;
  if (path.size() >= sizeof pending_temp) return;
  std::memcpy(pending_temp, path.c_str(), path.size() + 1);
  pending_temp_set = 1;
}

void untrack_temp() { pending_temp_set = 0; }

// An output destination: "-" is standard output; anything else is written to a
// temporary file in the same directory and renamed over the destination by commit().
class output_file {
 public:
  explicit output_file(std::string path) : path_(std::move(path)) {
    if (path_ == "-") {
      fd_ = STDOUT_FILENO;
      return;
    }
    std::filesystem::path target(path_);
    struct stat existing {};
    if (::stat(path_.c_str(), &existing) == 0) {
      if (S_ISDIR(existing.st_mode)) throw input_error(path_, 0, "is a directory");
      struct stat standard_output {};
      const bool is_standard_output = ::fstat(STDOUT_FILENO, &standard_output) == 0 &&
                                      standard_output.st_dev == existing.st_dev &&
                                      standard_output.st_ino == existing.st_ino;
      if (is_standard_output && S_ISREG(existing.st_mode)) {
        // This process's own standard output (`--out /dev/stdout > file`): write through
        // it, so the shell's redirection (truncate or append) holds.
        fd_ = STDOUT_FILENO;
        return;
      }
      if (!S_ISREG(existing.st_mode)) {
        // What the path is decides, never its name: a device, FIFO or socket
        // (/dev/stdout on a pipe, /dev/null, /dev/full, a named pipe) is written into as
        // it is; renaming a file over it would replace the name itself. A regular file,
        // wherever it lives (/dev/shm too), is replaced whole below.
        fd_ = ::open(path_.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
        if (fd_ < 0) throw io_error(path_ + ": cannot open for writing: " + errno_text(errno));
        owned_ = true;
        return;
      }
      // Through a symbolic link, replace the file it names, not the link.
      target = std::filesystem::canonical(target);
    }
    const std::filesystem::path dir = target.has_parent_path() ? target.parent_path() : ".";
    std::string pattern = (dir / ("." + target.filename().string() + ".gpucredit-XXXXXX")).string();
    fd_ = ::mkstemp(pattern.data());
    if (fd_ < 0) throw io_error(path_ + ": cannot create a file there: " + errno_text(errno));
    temp_ = pattern;
    target_ = target.string();
    track_temp(temp_);
    // mkstemp makes the file 0600; give it what a plain create would (0666 less umask).
    const mode_t mask = ::umask(0);
    ::umask(mask);
    ::fchmod(fd_, 0666 & ~mask);
  }
  ~output_file() {
    if (!temp_.empty()) {
      untrack_temp();
      ::close(fd_);
      ::unlink(temp_.c_str());
    } else if (owned_ && fd_ >= 0) {
      ::close(fd_);
    }
  }
  output_file(const output_file&) = delete;
  output_file& operator=(const output_file&) = delete;

  int fd() const noexcept { return fd_; }
  const std::string& name() const noexcept { return path_; }

  // Makes the written bytes durable and visible under the destination's name.
  void commit() {
    if (owned_) {
      const int fd = fd_;
      fd_ = -1;
      if (::close(fd) != 0) throw io_error(path_ + ": cannot close: " + errno_text(errno));
      return;
    }
    if (temp_.empty()) return;
    if (::fsync(fd_) != 0) throw io_error(path_ + ": cannot flush to disk: " + errno_text(errno));
    if (::close(fd_) != 0) {
      fd_ = -1;
      throw io_error(path_ + ": cannot close: " + errno_text(errno));
    }
    fd_ = -1;
    if (::rename(temp_.c_str(), target_.c_str()) != 0) {
      const int errnum = errno;
      untrack_temp();
      ::unlink(temp_.c_str());
      temp_.clear();
      throw io_error(path_ + ": cannot replace: " + errno_text(errnum));
    }
    untrack_temp();
    temp_.clear();
  }

 private:
  std::string path_;
  std::string temp_;
  std::string target_;  // the regular file that commit() replaces
  int fd_ = -1;
  bool owned_ = false;  // an existing non-regular file opened directly
};

// One output of a command: the flag that names it and its path ("-": standard output).
struct named_output {
  std::string flag;
  std::string path;
};

// Whether two paths name the same file: the same inode when both exist, else the same
// path once made absolute and normal.
bool same_file(const std::string& a, const std::string& b) {
  struct stat sa {};
  struct stat sb {};
  const bool a_exists = ::stat(a.c_str(), &sa) == 0;
  const bool b_exists = ::stat(b.c_str(), &sb) == 0;
  if (a_exists && b_exists) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (a_exists != b_exists) return false;
  std::error_code ec;
  const std::filesystem::path ca = std::filesystem::weakly_canonical(a, ec);
  if (ec) return a == b;
  const std::filesystem::path cb = std::filesystem::weakly_canonical(b, ec);
  if (ec) return a == b;
  return ca == cb;
}

// Refuses outputs that would lose data: one naming an input (replacing it would lose
// it), or two naming the same file (one would replace the other). Names the flags.
void refuse_clashing_outputs(const std::vector<named_output>& outputs, const std::vector<std::string>& inputs) {
  for (std::size_t i = 0; i < outputs.size(); ++i) {
    const named_output& out = outputs[i];
    if (out.path.empty()) continue;
    for (std::size_t j = 0; j < i; ++j) {
      const named_output& other = outputs[j];
      if (other.path.empty()) continue;
      const bool both_stdout = out.path == "-" && other.path == "-";
      if (both_stdout || (out.path != "-" && other.path != "-" && same_file(out.path, other.path))) {
        throw input_error(out.path, 0,
                          other.flag + " and " + out.flag + " name the same " +
                              (both_stdout ? std::string("standard output") : "file") + "; give each its own");
      }
    }
    if (out.path == "-") continue;
    struct stat out_stat {};
    if (::stat(out.path.c_str(), &out_stat) != 0) continue;  // does not exist yet
    for (const std::string& in : inputs) {
      struct stat in_stat {};
      if (::stat(in.c_str(), &in_stat) == 0 && in_stat.st_dev == out_stat.st_dev && in_stat.st_ino == out_stat.st_ino &&
          S_ISREG(out_stat.st_mode)) {
        throw input_error(out.path, 0, out.flag + " names the input file '" + in + "'; refusing to overwrite it");
      }
    }
  }
}

overdraft_policy parse_policy(const std::string& name) {
  return name == "reject" ? overdraft_policy::reject : overdraft_policy::drain;
}

// account,timestamp,amount,outcome for every use not paid in full, in arrival order.
void write_unpaid(csv_writer& out, const event_table& events, const ledger_result& result) {
  struct row {
    event_row event;
    amount_t amount;
    const char* outcome;
  };
  std::vector<row> rows;
  for (std::size_t i = 0; i < result.shortfalls.size(); ++i) {
    rows.push_back({result.shortfalls.row[i], result.shortfalls.amount[i], "shortfall"});
  }
  for (std::size_t i = 0; i < result.rejections.size(); ++i) {
    rows.push_back({result.rejections.row[i], result.rejections.amount[i], "rejected"});
  }
  std::sort(rows.begin(), rows.end(), [](const row& a, const row& b) { return a.event < b.event; });
  out.raw("account,timestamp,amount,outcome");
  out.end_row();
  for (const row& r : rows) {
    out.field(events.accounts[events.account[r.event]]);
    out.field(events.timestamp[r.event]);
    out.field(r.amount);
    out.field(r.outcome);
    out.end_row();
  }
}

struct balances_args {
  std::string events;
  std::string queries;
  std::string out;
  std::string policy = "drain";
  std::string backend_name = "auto";
  std::string unpaid;
  bool timings = false;
};

// Timed phases on standard error: `balances --timings` asks for them, and `report`
// shows them on a terminal unless --quiet. Each lap is timed from the one before.
class phase_log {
 public:
  explicit phase_log(bool on) : on_(on), last_(std::chrono::steady_clock::now()) {}
  void say(const std::string& line) const {
    if (on_) std::fprintf(stderr, "gpucredit: %s\n", line.c_str());
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

int run_balances(const balances_args& args) {
  const backend chosen = select_backend(args.backend_name);
  refuse_clashing_outputs({{"--out", args.out}, {"--unpaid", args.unpaid}}, {args.events, args.queries});

  phase_log clock(args.timings);
  event_table events = read_events(args.events);
  clock.lap("read events");
  const query_batch queries = read_queries(args.queries);
  clock.lap("read queries");
  ledger_result result = replay(events, parse_policy(args.policy));
  clock.lap("replay");
  // Peak memory: the event rows are not needed past the replay (unless --unpaid names
  // them), nor the interval table once the engine holds its index.
  if (args.unpaid.empty()) {
    event_table names_only;
    names_only.accounts = std::move(events.accounts);
    events = std::move(names_only);
  }
  const engine answers = engine::create(result, chosen);
  result.intervals = interval_table{};
  clock.lap("index");
  const std::vector<account_index> accounts = queries.resolve(events.accounts);
  const std::vector<amount_t> balances = answers.balances(accounts, queries.timestamp);
  clock.lap("queries");

  // Every input error is behind us: only now is anything written.
  std::optional<output_file> unpaid_file;
  if (!args.unpaid.empty()) {
    unpaid_file.emplace(args.unpaid);
    csv_writer unpaid(unpaid_file->fd(), unpaid_file->name());
    write_unpaid(unpaid, events, result);
    unpaid.finish();
  }
  output_file out_file(args.out);
  csv_writer out(out_file.fd(), out_file.name());
  write_balances(out, queries, balances);
  out.finish();
  out_file.commit();
  if (unpaid_file) unpaid_file->commit();
  clock.lap("write");
  return exit_ok;
}

struct intervals_args {
  std::string events;
  std::string out;
  std::string policy = "drain";
};

int run_intervals(const intervals_args& args) {
  refuse_clashing_outputs({{"--out", args.out}}, {args.events});
  const event_table events = read_events(args.events);
  const ledger_result result = replay(events, parse_policy(args.policy));
  output_file out_file(args.out);
  csv_writer out(out_file.fd(), out_file.name());
  write_intervals(out, events, result.intervals);
  out.finish();
  out_file.commit();
  return exit_ok;
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

struct breakdown_args {
  std::string events;
  std::string account;
  std::string at;
  std::string out = "-";
  std::string policy = "drain";
};

int run_breakdown(const breakdown_args& args) {
  refuse_clashing_outputs({{"--out", args.out}}, {args.events});
  const timestamp_t at = parse_flag_int("--at", args.at);
  const event_table events = read_events(args.events);
  const std::optional<std::uint32_t> account = events.accounts.find(args.account);
  if (!account) throw input_error(args.events, 0, "no events for account '" + args.account + "'");
  const ledger_result result = replay(events, parse_policy(args.policy));
  output_file out_file(args.out);
  csv_writer out(out_file.fd(), out_file.name());
  out.raw("credit_id,start,end,granted,consumed,remaining,expired,active");
  out.end_row();
  for (const credit_state& c : credits_at(events, result, *account, at)) {
    out.field(events.credit_label(c.credit));
    out.field(c.start);
    out.field(c.end);
    out.field(c.granted);
    out.field(c.consumed);
    out.field(c.remaining);
    out.field(c.expired);
    out.field(c.active ? "true" : "false");
    out.end_row();
  }
  out.finish();
  out_file.commit();
  return exit_ok;
}

struct report_args {
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

// Grids larger than this are refused: each time costs a balance per account in memory.
constexpr std::uint64_t grid_times_max = std::uint64_t{1} << 31;

// The report grid from, from + every, ... <= to, computed in unsigned arithmetic so that
// nothing overflows at the ends of int64 (SPEC section 11).
std::vector<timestamp_t> report_grid(timestamp_t from, timestamp_t to, timestamp_t every) {
  const std::uint64_t span = static_cast<std::uint64_t>(to) - static_cast<std::uint64_t>(from);  // to >= from
  const std::uint64_t steps = span / static_cast<std::uint64_t>(every);
  if (steps >= grid_times_max) {
    throw input_error("--every", 0,
                      "the grid from --from to --to has " + to_decimal(wide{steps} + 1) + " times; at most " +
                          std::to_string(grid_times_max) + " are allowed");
  }
  std::vector<timestamp_t> grid(steps + 1);
  for (std::uint64_t k = 0; k <= steps; ++k) {
    grid[k] = static_cast<timestamp_t>(static_cast<std::uint64_t>(from) + k * static_cast<std::uint64_t>(every));
  }
  return grid;
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
  const backend chosen = select_backend(args.backend_name);
  const timestamp_t from = parse_flag_int("--from", args.from);
  const timestamp_t to = parse_flag_int("--to", args.to);
  const timestamp_t every = parse_flag_int("--every", args.every);
  if (from > to) throw input_error("--from", 0, "is after --to");
  if (every <= 0) throw input_error("--every", 0, "must be positive");
  const std::vector<timestamp_t> grid = report_grid(from, to, every);
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
  const event_table events = read_events(args.events);
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
  for (std::size_t i = 0; i < names.size(); ++i) {
    index_of[i] = events.accounts.find(names[i]).value_or(account_none);
    if (index_of[i] != account_none) included[index_of[i]] = 1;
  }
  page.breakage.assign(grid.size(), 0);
  page.shortfall.assign(grid.size(), 0);
  {
    const interval_table& iv = result.intervals;
    for (std::size_t r = 0; r < iv.size(); ++r) {  // held until its end, then expired
      if (included[iv.account[r]] == 0 || iv.end[r] != events.end[iv.credit[r]]) continue;
      const auto i = static_cast<std::size_t>(std::upper_bound(grid.begin(), grid.end(), iv.end[r]) - grid.begin());
      if (i >= 1 && i < grid.size()) page.breakage[i] += iv.amount[r];
    }
    for (const usage_table* usage : {&result.shortfalls, &result.rejections}) {
      for (std::size_t u = 0; u < usage->size(); ++u) {
        if (included[usage->account[u]] == 0) continue;
        const auto i = static_cast<std::size_t>(
            std::lower_bound(grid.begin(), grid.end(), usage->timestamp[u]) - grid.begin());
        if (i >= 1 && i < grid.size()) page.shortfall[i] += usage->amount[u];
      }
    }
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
  page.fleet_balance.assign(grid.size(), 0);

  // Every input error is behind us: only now is anything created.
  out_dir.create();
  output_file balances_file((dir / "balances.csv").string());
  output_file summary_file((dir / "summary.csv").string());
  output_file html_file((dir / "report.html").string());
  {
    csv_writer out(balances_file.fd(), balances_file.name());
    out.raw(balances_header);
    out.end_row();
    // Accounts x grid times through the engine, a bounded slice of accounts at a time.
    constexpr std::size_t grid_queries_per_batch = std::size_t{1} << 22;
    const std::size_t accounts_per_batch = std::max<std::size_t>(1, grid_queries_per_batch / grid.size());
    tell.say("answering " + std::to_string(names.size() * grid.size()) + " queries on " +
             std::string(to_string(answers.kind())));
    std::vector<account_index> qa;
    std::vector<timestamp_t> qt;
    for (std::size_t first = 0; first < names.size(); first += accounts_per_batch) {
      const std::size_t last = std::min(names.size(), first + accounts_per_batch);
      qa.clear();
      qt.clear();
      for (std::size_t i = first; i < last; ++i) {
        for (const timestamp_t t : grid) {
          qa.push_back(index_of[i]);
          qt.push_back(t);
        }
      }
      const std::vector<amount_t> b = answers.balances(qa, qt);
      for (std::size_t q = 0; q < b.size(); ++q) {
        const std::size_t i = first + q / grid.size();
        page.fleet_balance[q % grid.size()] += b[q];
        if (shown_slot[i] >= 0) page.accounts[static_cast<std::size_t>(shown_slot[i])].balance.push_back(b[q]);
        out.field(names[i]);
        out.field(qt[q]);
        if (b[q] != 0) {
          out.field(b[q]);
        } else {
          out.empty_field();
        }
        out.end_row();
      }
    }
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

std::string version_text() {
  std::string text = std::string("gpucredit ") + version_string + "\nbackends:";
  for (const backend b : compiled_backends()) text += " " + std::string(to_string(b));
  return text;
}

}  // namespace

int main(int argc, char** argv) {
  for (const int signal_number : {SIGINT, SIGTERM, SIGHUP}) std::signal(signal_number, remove_pending_temp);
  // A reader that goes away (`--out - | head`) makes a write fail with EPIPE: a system
  // failure reported with exit code 1, never a death by SIGPIPE.
  std::signal(SIGPIPE, SIG_IGN);
  CLI::App app{"gpucredit: exact point-in-time balances of expiring GPU credits.\n"
               "Semantics: SPEC.md in the source tree. Exit codes: 0 ok, 1 system failure "
               "(write, memory), 2 bad input or usage."};
  app.set_version_flag("--version", version_text(), "Print the version and the backends compiled in");
  app.require_subcommand(1);

  balances_args balances;
  CLI::App* balances_cmd = app.add_subcommand(
      "balances", "Answer point-in-time balance queries: writes account,timestamp,balance in query order");
  balances_cmd->add_option("--events", balances.events, "Events CSV: op,account,credit_id,timestamp,amount,expiration")
      ->required();
  balances_cmd->add_option("--queries", balances.queries, "Queries CSV: account,timestamp")->required();
  balances_cmd->add_option("--out", balances.out, "Output CSV, or - for standard output")->required();
  balances_cmd->add_option("--policy", balances.policy, "Overdraft policy")
      ->check(CLI::IsMember({"drain", "reject"}))
      ->capture_default_str();
  balances_cmd
      ->add_option("--backend", balances.backend_name,
                   "Query backend: auto, cpu or cuda (auto honours GPUCREDIT_BACKEND)")
      ->capture_default_str();
  balances_cmd->add_flag("--timings", balances.timings,
                         "Print the wall-clock seconds of each phase (read, replay, index, queries, write) to standard error");
  balances_cmd->add_option("--unpaid", balances.unpaid,
                           "Also write the uses not paid in full: account,timestamp,amount,outcome "
                           "(outcome: shortfall under drain, rejected under reject)");

  intervals_args intervals;
  CLI::App* intervals_cmd = app.add_subcommand(
      "intervals", "Dump the flattened ledger: account,credit_id,begin,end,amount (both ends included)");
  intervals_cmd->add_option("--events", intervals.events, "Events CSV")->required();
  intervals_cmd->add_option("--out", intervals.out, "Output CSV, or - for standard output")->required();
  intervals_cmd->add_option("--policy", intervals.policy, "Overdraft policy")
      ->check(CLI::IsMember({"drain", "reject"}))
      ->capture_default_str();

  breakdown_args breakdown;
  CLI::App* breakdown_cmd = app.add_subcommand(
      "breakdown",
      "The credits of one account at a time T, to explain its balance: "
      "credit_id,start,end,granted,consumed,remaining,expired,active (granted = consumed + remaining + expired)");
  breakdown_cmd->add_option("--events", breakdown.events, "Events CSV")->required();
  breakdown_cmd->add_option("--account", breakdown.account, "The account")->required();
  breakdown_cmd->add_option("--at", breakdown.at, "The time T (an int64)")->required();
  breakdown_cmd->add_option("--out", breakdown.out, "Output CSV, or - for standard output")->capture_default_str();
  breakdown_cmd->add_option("--policy", breakdown.policy, "Overdraft policy")
      ->check(CLI::IsMember({"drain", "reject"}))
      ->capture_default_str();

  report_args report;
  CLI::App* report_cmd = app.add_subcommand(
      "report",
      "Balances of every account on a time grid, and each account's window: writes DIR/balances.csv "
      "(account,timestamp,balance), DIR/summary.csv "
      "(account,balance_from,granted,consumed,expired,shortfall,rejected,balance_to over (FROM, TO]; "
      "balance_to = balance_from + granted - consumed - expired) and DIR/report.html (charts, opens offline)");
  report_cmd->add_option("--events", report.events, "Events CSV")->required();
  report_cmd->add_option("--from", report.from, "Start of the window and of the grid")->required();
  report_cmd->add_option("--to", report.to, "End of the window; the grid stops at or before it")->required();
  report_cmd->add_option("--every", report.every, "Grid step (> 0)")->required();
  report_cmd->add_option("--accounts", report.accounts, "Only these accounts: a CSV with the header 'account'");
  report_cmd->add_option("--out", report.out, "Output directory (created if missing)")->required();
  report_cmd->add_option("--policy", report.policy, "Overdraft policy")
      ->check(CLI::IsMember({"drain", "reject"}))
      ->capture_default_str();
  report_cmd->add_option("--backend", report.backend_name, "Query backend: auto, cpu or cuda")->capture_default_str();
  report_cmd->add_option("--time-unit", report.time_unit, "Unit of the timestamps, to show UTC dates in report.html")
      ->check(CLI::IsMember({"s", "ms", "us", "ns"}));
  report_cmd->add_flag("--quiet", report.quiet, "No progress on standard error (shown only on a terminal)");

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
    if (balances_cmd->parsed()) return run_balances(balances);
    if (intervals_cmd->parsed()) return run_intervals(intervals);
    if (breakdown_cmd->parsed()) return run_breakdown(breakdown);
    if (report_cmd->parsed()) return run_report(report);
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
