// `gpucredit balances`: answers point-in-time balance queries (and, with --unpaid, lists
// the uses not paid in full).
#include <algorithm>
#include <chrono>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "cli.hpp"
#include "gpucredit/csv.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/ledger.hpp"
#include "output_file.hpp"

namespace gpucredit::tools {
namespace {

// account,timestamp,amount,outcome for every use not paid in full, in arrival order. With
// jobs in the ledger (SPEC section 10) the file gains job_id, after the account: one
// record per job not paid in full, at its first tick not paid in full, with its total
// unpaid (job_id empty for a plain use). One rule, the same as the intervals' slope.
void write_unpaid(csv_writer& out, const event_table& events, const ledger_result& result) {
  struct row {
    event_row event;
    timestamp_t timestamp;
    amount_t amount;
    const char* outcome;
  };
  std::vector<row> rows;
  for (std::size_t i = 0; i < result.shortfalls.size(); ++i) {
    rows.push_back({result.shortfalls.row[i], result.shortfalls.timestamp[i], result.shortfalls.amount[i], "shortfall"});
  }
  for (std::size_t i = 0; i < result.rejections.size(); ++i) {
    rows.push_back({result.rejections.row[i], result.rejections.timestamp[i], result.rejections.amount[i], "rejected"});
  }
  std::sort(rows.begin(), rows.end(), [](const row& a, const row& b) { return a.event < b.event; });
  const bool jobs = events.has_jobs();
  out.raw(jobs ? "account,job_id,timestamp,amount,outcome" : "account,timestamp,amount,outcome");
  out.end_row();
  for (const row& r : rows) {
    out.field(events.accounts[events.account[r.event]]);
    if (jobs) {
      if (events.kind[r.event] == op::run) {
        out.field(events.credit_label(r.event));
      } else {
        out.empty_field();
      }
    }
    out.field(r.timestamp);
    out.field(r.amount);
    out.field(r.outcome);
    out.end_row();
  }
}

struct balances_args {
  std::string expiration = "duration";
  std::string events;
  std::string queries;
  std::string out;
  std::string policy = "drain";
  std::string backend_name = "auto";
  std::string devices;
  std::string unpaid;
  bool timings = false;
};

int run_balances(const balances_args& args) {
  const engine_options chosen = engine_request(args.backend_name, args.devices);
  refuse_clashing_outputs({{"--out", args.out}, {"--unpaid", args.unpaid}}, {args.events, args.queries});

  phase_log clock(args.timings);
  event_table events = read_events(args.events, parse_expiration_form(args.expiration));
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
  const engine answers = engine::create(result.intervals, result.account_count, chosen);
  result.intervals = interval_table{};
  clock.lap("index");
  // `--timings`: "queries" is the names resolved, the answers' buffer made and the time
  // in the engine; "write" the rest of the answering loop below. The buffer is not
  // zero-filled first: the engine writes every answer, its first touch of each page on
  // the core that answers there.
  const auto resolve_start = std::chrono::steady_clock::now();
  const std::vector<account_index> accounts = queries.resolve(events.accounts);
  constexpr std::size_t batch = std::size_t{1} << 21;
  const std::size_t buffer_size = std::min(batch, queries.size());
  const std::unique_ptr<amount_t[]> buffer = std::make_unique_for_overwrite<amount_t[]>(buffer_size);
  const std::span<amount_t> balances(buffer.get(), buffer_size);
  double query_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - resolve_start).count();

  // Every input error is behind us: only now is anything written.
  std::optional<output_file> unpaid_file;
  if (!args.unpaid.empty()) {
    unpaid_file.emplace(args.unpaid);
    csv_writer unpaid(unpaid_file->fd(), unpaid_file->name(), unpaid_file->durable());
    write_unpaid(unpaid, events, result);
    unpaid.finish();
  }
  // The queries are answered a batch at a time, each batch's rows written while the next
  // is answered: the disk's writeback of the answers overlaps the queries, and the final
  // fsync has less to wait for.
  output_file out_file(args.out);
  csv_writer out(out_file.fd(), out_file.name(), out_file.durable());
  balances_writer rows(out, queries);
  for (std::size_t first = 0; first < queries.size(); first += batch) {
    const std::size_t count = std::min(batch, queries.size() - first);
    const auto start = std::chrono::steady_clock::now();
    answers.balances(std::span(accounts).subspan(first, count), std::span(queries.timestamp).subspan(first, count),
                     balances.first(count));
    query_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    rows.write(balances.first(count));
  }
  rows.finish();
  out.finish();
  out_file.commit();
  if (unpaid_file) unpaid_file->commit();
  clock.split_lap("queries", query_seconds, "write");
  return exit_ok;
}

}  // namespace

command add_balances(CLI::App& app) {
  auto args = std::make_shared<balances_args>();
  CLI::App* cmd = app.add_subcommand(
      "balances", "Answer point-in-time balance queries: writes account,timestamp,balance in query order");
  cmd->add_option("--events", args->events, "Events CSV: op,account,credit_id,timestamp,amount,expiration")
      ->required();
  cmd->add_option("--queries", args->queries, "Queries CSV: account,timestamp")->required();
  cmd->add_option("--out", args->out, "Output CSV, or - for standard output")->required();
  add_policy_option(*cmd, args->policy);
  add_expiration_option(*cmd, args->expiration);
  add_backend_options(*cmd, args->backend_name, args->devices);
  cmd->add_flag("--timings", args->timings,
                         "Print the wall-clock seconds of each phase (read, replay, index, queries, write) to standard error");
  cmd->add_option("--unpaid", args->unpaid,
                           "Also write the uses not paid in full: account,timestamp,amount,outcome "
                           "(outcome: shortfall under drain, rejected under reject); with jobs in the ledger, "
                           "account,job_id,timestamp,amount,outcome, one record per job at its first tick not "
                           "paid in full with its total unpaid");
  return {cmd, [args] { return run_balances(*args); }};
}

}  // namespace gpucredit::tools
