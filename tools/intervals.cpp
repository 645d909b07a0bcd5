// `gpucredit intervals`: dumps the flattened ledger (SPEC section 5).
#include "cli.hpp"
#include "gpucredit/csv.hpp"
#include "gpucredit/ledger.hpp"
#include "output_file.hpp"

namespace gpucredit::tools {
namespace {

struct intervals_args {
  std::string expiration = "duration";
  std::string events;
  std::string out;
  std::string policy = "drain";
};

int run_intervals(const intervals_args& args) {
  refuse_clashing_outputs({{"--out", args.out}}, {args.events});
  const event_table events = read_events(args.events, parse_expiration_form(args.expiration));
  const ledger_result result = replay(events, parse_policy(args.policy));
  output_file out_file(args.out);
  csv_writer out(out_file.fd(), out_file.name(), out_file.durable());
  write_intervals(out, events, result.intervals);
  out.finish();
  out_file.commit();
  return exit_ok;
}

}  // namespace

command add_intervals(CLI::App& app) {
  auto args = std::make_shared<intervals_args>();
  CLI::App* cmd = app.add_subcommand(
      "intervals", "Dump the flattened ledger: account,credit_id,begin,end,amount (both ends included)");
  cmd->add_option("--events", args->events, "Events CSV")->required();
  cmd->add_option("--out", args->out, "Output CSV, or - for standard output")->required();
  add_policy_option(*cmd, args->policy);
  add_expiration_option(*cmd, args->expiration);
  return {cmd, [args] { return run_intervals(*args); }};
}

}  // namespace gpucredit::tools
