// `gpucredit breakdown`: one account's credits at a time T, to explain its balance.
#include <optional>

#include "cli.hpp"
#include "gpucredit/csv.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/ledger.hpp"
#include "output_file.hpp"

namespace gpucredit::tools {
namespace {

struct breakdown_args {
  std::string expiration = "duration";
  std::string events;
  std::string account;
  std::string at;
  std::string out = "-";
  std::string policy = "drain";
};

int run_breakdown(const breakdown_args& args) {
  refuse_clashing_outputs({{"--out", args.out}}, {args.events});
  const timestamp_t at = parse_flag_int("--at", args.at);
  const event_table events = read_events(args.events, parse_expiration_form(args.expiration));
  const std::optional<std::uint32_t> account = events.accounts.find(args.account);
  if (!account) throw input_error(args.events, 0, "no events for account '" + args.account + "'");
  const ledger_result result = replay(events, parse_policy(args.policy));
  output_file out_file(args.out);
  csv_writer out(out_file.fd(), out_file.name(), out_file.durable());
  // With jobs in the ledger, to_jobs: the part of consumed that job ticks drew (one rule,
  // as for the intervals' slope).
  const bool jobs = events.has_jobs();
  out.raw(jobs ? "credit_id,start,end,granted,consumed,remaining,expired,active,to_jobs"
               : "credit_id,start,end,granted,consumed,remaining,expired,active");
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
    if (jobs) out.field(c.to_jobs);
    out.end_row();
  }
  out.finish();
  out_file.commit();
  return exit_ok;
}

}  // namespace

command add_breakdown(CLI::App& app) {
  auto args = std::make_shared<breakdown_args>();
  CLI::App* cmd = app.add_subcommand(
      "breakdown",
      "The credits of one account at a time T, to explain its balance: "
      "credit_id,start,end,granted,consumed,remaining,expired,active (granted = consumed + remaining + expired)");
  cmd->add_option("--events", args->events, "Events CSV")->required();
  cmd->add_option("--account", args->account, "The account")->required();
  cmd->add_option("--at", args->at, "The time T (an int64)")->required();
  cmd->add_option("--out", args->out, "Output CSV, or - for standard output")->capture_default_str();
  add_policy_option(*cmd, args->policy);
  add_expiration_option(*cmd, args->expiration);
  return {cmd, [args] { return run_breakdown(*args); }};
}

}  // namespace gpucredit::tools
