// Proves the CLI's contract beyond the vectors: --version and --help on every command,
// usage errors exit 2, an unavailable backend exits 2 with a clear message, an output
// that names an input is refused and the input kept, unreadable inputs exit 2, failed
// writes exit 1 and leave no file (and an earlier output intact), the intervals dump,
// the unpaid-usage report, and the bundled example.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <sstream>

#include "gpucredit/csv.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/version.hpp"
#include "test_support.hpp"

namespace gpucredit {
namespace {

namespace fs = std::filesystem;
using test::quote;
using test::read_file;
using test::run;

const std::string cli = test::cli_path();
const fs::path vectors = test::vectors_dir();
const fs::path examples = GPUCREDIT_TEST_EXAMPLES;

class Cli : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string balances_of(const std::string& vector) const {
    return cli + " balances --events " + quote(vectors / vector / "events.csv") + " --queries " +
           quote(vectors / vector / "queries.csv");
  }
  fs::path dir_;
};

TEST_F(Cli, Version) {
  const test::run_result r = run(cli + " --version", dir_);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.out.find(std::string("gpucredit ") + version_string), std::string::npos) << r.out;
  std::string backends = "backends:";
  for (const backend b : compiled_backends()) backends += " " + std::string(to_string(b));
  EXPECT_NE(r.out.find(backends + "\n"), std::string::npos) << r.out;
}

TEST_F(Cli, HelpOnEveryCommand) {
  for (const std::string command : {"", " balances", " intervals", " breakdown", " report"}) {
    const test::run_result r = run(cli + command + " --help", dir_);
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_NE(r.out.find("--"), std::string::npos) << command;
  }
  EXPECT_NE(run(cli + " balances --help", dir_).out.find("--policy"), std::string::npos);
  EXPECT_NE(run(cli + " intervals --help", dir_).out.find("--events"), std::string::npos);
}

TEST_F(Cli, UsageErrorsExit2) {
  EXPECT_EQ(run(cli, dir_).exit_code, 2);
  EXPECT_EQ(run(cli + " frobnicate", dir_).exit_code, 2);
  EXPECT_EQ(run(cli + " balances --events x.csv", dir_).exit_code, 2);
  EXPECT_EQ(run(balances_of("seed-example-2") + " --out - --policy lenient", dir_).exit_code, 2);
}

TEST_F(Cli, UnknownSubcommandsAndOptionsAreNamedWithTheNearest) {
  const test::run_result sub = run(cli + " balanc --events x", dir_);
  EXPECT_EQ(sub.exit_code, 2);
  EXPECT_EQ(sub.err, "gpucredit: unknown subcommand 'balanc' (did you mean 'balances'?)\nRun with --help for more information.\n");
  const test::run_result option = run(cli + " balances --event x --queries y --out -", dir_);
  EXPECT_EQ(option.exit_code, 2);
  EXPECT_NE(option.err.find("balances: unknown option '--event' (did you mean '--events'?)"), std::string::npos) << option.err;
  const test::run_result far = run(cli + " report --zzzzzzzz=1", dir_);
  EXPECT_EQ(far.exit_code, 2);
  EXPECT_NE(far.err.find("report: unknown option '--zzzzzzzz'\n"), std::string::npos) << far.err;
  EXPECT_EQ(run(cli + " balances --help", dir_).exit_code, 0);
}

TEST_F(Cli, ExpirationCanBeGivenAsTheLastUsableTimestamp) {
  // Billing tables store expires_at: --expiration end reads the sixth column of an add
  // as the last usable timestamp, and answers what the duration form answers.
  test::write_file(dir_ / "duration.csv",
                   "op,account,credit_id,timestamp,amount,expiration\nadd,a,plan,86400,300,2591999\nuse,a,,90000,25,\n");
  test::write_file(dir_ / "end.csv",
                   "op,account,credit_id,timestamp,amount,expiration\nadd,a,plan,86400,300,2678399\nuse,a,,90000,25,\n");
  test::write_file(dir_ / "q.csv", "account,timestamp\na,86399\na,86400\na,2678399\na,2678400\n");
  const std::string q = " --queries " + quote(dir_ / "q.csv") + " --out -";
  const test::run_result d = run(cli + " balances --events " + quote(dir_ / "duration.csv") + q, dir_);
  const test::run_result e = run(cli + " balances --expiration end --events " + quote(dir_ / "end.csv") + q, dir_);
  ASSERT_EQ(d.exit_code, 0) << d.err;
  ASSERT_EQ(e.exit_code, 0) << e.err;
  EXPECT_EQ(d.out, "account,timestamp,balance\na,86399,\na,86400,300\na,2678399,275\na,2678400,\n");
  EXPECT_EQ(e.out, d.out);
  test::write_file(dir_ / "bad.csv", "op,account,credit_id,timestamp,amount,expiration\nadd,a,plan,100,5,99\n");
  const test::run_result bad = run(cli + " balances --expiration end --events " + quote(dir_ / "bad.csv") + q, dir_);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err, (dir_ / "bad.csv").string() + ":2: expiration end 99 is before the timestamp 100\n");
  EXPECT_EQ(run(cli + " balances --expiration expires_at --events x" + q, dir_).exit_code, 2);
}

TEST_F(Cli, ReportListsAccountsWithoutEvents) {
  test::write_file(dir_ / "accounts.csv", "account\norg-17\nnobody\n");
  const test::run_result r = run(cli + " report --events " + quote(examples / "events.csv") +
                                     " --from 0 --to 86400 --every 86400 --accounts " + quote(dir_ / "accounts.csv") +
                                     " --out " + quote(dir_ / "r"),
                                 dir_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.err, "gpucredit: report: 1 of the accounts in " + (dir_ / "accounts.csv").string() +
                       " have no events (their rows are zero): 'nobody'\n");
  EXPECT_NE(read_file(dir_ / "r" / "balances.csv").find("nobody,0,\n"), std::string::npos);
}

TEST_F(Cli, ReportTakesDatesAndDurationsWithATimeUnit) {
  const std::string base = cli + " report --events " + quote(examples / "events.csv") + " --quiet";
  // 2026-10-01 is 1790812800 s; 1d is 86400 s, or 86400000 ms.
  ASSERT_EQ(run(base + " --from 1790812800 --to 1791072000 --every 86400 --out " + quote(dir_ / "ints"), dir_).exit_code, 0);
  ASSERT_EQ(run(base + " --time-unit s --from 2026-10-01 --to 2026-10-04T00:00:00Z --every 1d --out " + quote(dir_ / "dates"),
                dir_)
                .exit_code,
            0);
  EXPECT_EQ(read_file(dir_ / "dates" / "balances.csv"), read_file(dir_ / "ints" / "balances.csv"));
  const test::run_result ms = run(base + " --time-unit ms --from 1970-01-01T00:00:01 --to 1970-01-01T00:00:02 --every 500ms"
                                         " --out " + quote(dir_ / "ms"),
                                  dir_);
  ASSERT_EQ(ms.exit_code, 0) << ms.err;
  EXPECT_NE(read_file(dir_ / "ms" / "balances.csv").find(",1500,"), std::string::npos);
  const test::run_result half = run(base + " --time-unit s --from 0 --to 10 --every 500ms --out " + quote(dir_ / "x"), dir_);
  EXPECT_EQ(half.exit_code, 2);
  EXPECT_EQ(half.err, "--every: '500ms' is not a whole number of s\n");
  const test::run_result bad = run(base + " --time-unit s --from 2026-02-30 --to 0 --every 1 --out " + quote(dir_ / "x"), dir_);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("neither an int64 nor a UTC date"), std::string::npos) << bad.err;
  // Without --time-unit only integers are read.
  EXPECT_EQ(run(base + " --from 2026-10-01 --to 0 --every 1 --out " + quote(dir_ / "x"), dir_).exit_code, 2);
  EXPECT_FALSE(fs::exists(dir_ / "x"));
}

TEST_F(Cli, UnavailableBackendExits2) {
  if (backend_available(backend::cuda)) GTEST_SKIP() << "a CUDA device is present";
  const test::run_result r = run(balances_of("seed-example-2") + " --out - --backend cuda", dir_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("CUDA"), std::string::npos) << r.err;
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(run(balances_of("seed-example-2") + " --out - --backend tpu", dir_).exit_code, 2);
  EXPECT_EQ(run("GPUCREDIT_BACKEND=cuda " + balances_of("seed-example-2") + " --out -", dir_).exit_code, 2);
  EXPECT_EQ(run("GPUCREDIT_BACKEND=cpu " + balances_of("seed-example-2") + " --out -", dir_).exit_code, 0);
}

TEST_F(Cli, DeviceChoiceIsCheckedAndSaysWhy) {
  const std::string base = balances_of("random-0003") + " --out -";
  const test::run_result cpu = run(base + " --backend cpu --device 0", dir_);
  EXPECT_EQ(cpu.exit_code, 2);
  EXPECT_NE(cpu.err.find("--device"), std::string::npos) << cpu.err;
  const test::run_result bad = run(base + " --device 0,x", dir_);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_NE(bad.err.find("'0,x' is not a device index"), std::string::npos) << bad.err;
  const test::run_result missing = run(base + " --device 4096", dir_);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.out, "");
  if (backend_available(backend::cuda)) {
    EXPECT_NE(missing.err.find("4096"), std::string::npos) << missing.err;
    const test::run_result one = run(base + " --device 0", dir_);
    EXPECT_EQ(one.exit_code, 0) << one.err;
    EXPECT_EQ(one.out, read_file(vectors / "random-0003" / "expected.csv"));
  } else {
    const std::vector<backend> built = compiled_backends();
    const bool cuda_built = std::find(built.begin(), built.end(), backend::cuda) != built.end();
    EXPECT_NE(missing.err.find(cuda_built ? "cannot run here" : "not compiled into this build"), std::string::npos)
        << missing.err;
  }
}

TEST_F(Cli, EventsFromStandardInput) {
  // As from `psql -c "COPY (SELECT ...) TO STDOUT WITH CSV HEADER" | gpucredit balances --events - ...`.
  // (run() sends /dev/null to the command's standard input: the pipelines run in a subshell.)
  const test::run_result r = run("(cat " + quote(vectors / "random-0003" / "events.csv") + " | " + cli +
                                     " balances --events - --queries " + quote(vectors / "random-0003" / "queries.csv") +
                                     " --out -)",
                                 dir_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, read_file(vectors / "random-0003" / "expected.csv"));
  const test::run_result bad = run("(printf 'op,account\\nadd,a\\n' | " + cli + " balances --events - --queries " +
                                       quote(vectors / "random-0003" / "queries.csv") + " --out -)",
                                   dir_);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_EQ(bad.err.rfind("stdin:1: bad header", 0), 0U) << bad.err;
  const test::run_result both = run("true | " + cli + " balances --events - --queries - --out -", dir_);
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("two inputs read standard input"), std::string::npos) << both.err;
}

TEST_F(Cli, ExplicitCpuBackendGivesTheSameBytes) {
  const test::run_result a = run(balances_of("random-0003") + " --out - --backend cpu", dir_);
  const test::run_result b = run(balances_of("random-0003") + " --out - --backend auto", dir_);
  EXPECT_EQ(a.exit_code, 0);
  EXPECT_EQ(a.out, read_file(vectors / "random-0003" / "expected.csv"));
  EXPECT_EQ(a.out, b.out);
}

TEST_F(Cli, OutputNamingAnInputIsRefused) {
  fs::copy_file(vectors / "seed-example-2" / "events.csv", dir_ / "events.csv");
  fs::copy_file(vectors / "seed-example-2" / "queries.csv", dir_ / "queries.csv");
  const std::string before = read_file(dir_ / "queries.csv");
  const test::run_result r = run(cli + " balances --events " + quote(dir_ / "events.csv") + " --queries " +
                                     quote(dir_ / "queries.csv") + " --out " + quote(dir_ / "queries.csv"),
                                 dir_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.err.find("input"), std::string::npos) << r.err;
  EXPECT_EQ(read_file(dir_ / "queries.csv"), before);
  fs::create_symlink(dir_ / "events.csv", dir_ / "alias.csv");
  EXPECT_EQ(run(cli + " intervals --events " + quote(dir_ / "events.csv") + " --out " + quote(dir_ / "alias.csv"), dir_)
                .exit_code,
            2);
}

TEST_F(Cli, UnreadableInputsExit2) {
  const test::run_result missing = run(cli + " balances --events " + quote(dir_ / "none.csv") + " --queries " +
                                           quote(vectors / "seed-example-2" / "queries.csv") + " --out -",
                                       dir_);
  EXPECT_EQ(missing.exit_code, 2);
  EXPECT_EQ(missing.err.rfind((dir_ / "none.csv").string() + ": cannot open", 0), 0U) << missing.err;
  const test::run_result directory = run(cli + " balances --events " + quote(dir_) + " --queries " +
                                             quote(vectors / "seed-example-2" / "queries.csv") + " --out -",
                                         dir_);
  EXPECT_EQ(directory.exit_code, 2);
  EXPECT_NE(directory.err.find("directory"), std::string::npos);
}

TEST_F(Cli, BadQueriesNameTheirFileAndLine) {
  test::write_file(dir_ / "queries.csv", "account,timestamp\nacct,1\nacct,soon\n");
  const test::run_result r = run(cli + " balances --events " + quote(vectors / "seed-example-2" / "events.csv") +
                                     " --queries " + quote(dir_ / "queries.csv") + " --out " + quote(dir_ / "out.csv"),
                                 dir_);
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_EQ(r.err, (dir_ / "queries.csv").string() + ":3: timestamp is not an integer: 'soon'\n");
  EXPECT_FALSE(fs::exists(dir_ / "out.csv"));
}

TEST_F(Cli, FailedWritesExit1AndLeaveNothing) {
  const test::run_result full = run(balances_of("seed-example-2") + " --out /dev/full", dir_);
  EXPECT_EQ(full.exit_code, 1);
  EXPECT_NE(full.err.find("/dev/full"), std::string::npos) << full.err;
  EXPECT_TRUE(fs::is_character_file("/dev/full")) << "the device node must stay a device";

  const test::run_result nodir = run(balances_of("seed-example-2") + " --out " + quote(dir_ / "no" / "such" / "out.csv"), dir_);
  EXPECT_EQ(nodir.exit_code, 1);
  EXPECT_NE(nodir.err.find("cannot create"), std::string::npos) << nodir.err;

  const test::run_result is_dir = run(balances_of("seed-example-2") + " --out " + quote(dir_), dir_);
  EXPECT_EQ(is_dir.exit_code, 2);

  if (::geteuid() != 0) {  // root writes anywhere
    fs::create_directory(dir_ / "locked");
    test::write_file(dir_ / "locked" / "out.csv", "earlier\n");
    ::chmod((dir_ / "locked").c_str(), 0555);
    EXPECT_EQ(run(balances_of("seed-example-2") + " --out " + quote(dir_ / "locked" / "out.csv"), dir_).exit_code, 1);
    EXPECT_EQ(read_file(dir_ / "locked" / "out.csv"), "earlier\n");
    ::chmod((dir_ / "locked").c_str(), 0755);
  }
}

TEST_F(Cli, ReplacesAnExistingOutputWholeAndThroughSymlinks) {
  test::write_file(dir_ / "real.csv", std::string(100000, 'x'));
  fs::create_symlink(dir_ / "real.csv", dir_ / "link.csv");
  EXPECT_EQ(run(balances_of("seed-example-2") + " --out " + quote(dir_ / "link.csv"), dir_).exit_code, 0);
  EXPECT_TRUE(fs::is_symlink(dir_ / "link.csv"));
  EXPECT_EQ(read_file(dir_ / "real.csv"), read_file(vectors / "seed-example-2" / "expected.csv"));
}

TEST_F(Cli, IntervalsDump) {
  const test::run_result r =
      run(cli + " intervals --events " + quote(vectors / "seed-example-2" / "events.csv") + " --out -", dir_);
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_EQ(r.out,
            "account,credit_id,begin,end,amount\n"
            "acct,amazon,10,29,40\n"
            "acct,amazon,30,60,10\n"
            "acct,google,60,70,20\n");
  const test::run_result quoted =
      run(cli + " intervals --events " + quote(vectors / "quoted-fields" / "events.csv") + " --out -", dir_);
  EXPECT_EQ(quoted.out,
            "account,credit_id,begin,end,amount\n"
            "\"org,with,commas\",g,1,1,5\n"
            "\"org,with,commas\",g,2,11,3\n");
  const test::run_result bad =
      run(cli + " intervals --events " + quote(vectors / "bad-op" / "events.csv") + " --out " + quote(dir_ / "i.csv"), dir_);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_FALSE(fs::exists(dir_ / "i.csv"));
}

TEST_F(Cli, UnpaidUsageReport) {
  EXPECT_EQ(run(balances_of("overdraft-drain") + " --out " + quote(dir_ / "b.csv") + " --unpaid " + quote(dir_ / "u.csv"),
                dir_)
                .exit_code,
            0);
  EXPECT_EQ(read_file(dir_ / "u.csv"), "account,timestamp,amount,outcome\na,6,980,shortfall\n");
  EXPECT_EQ(run(balances_of("overdraft-reject") + " --policy reject --out " + quote(dir_ / "b.csv") + " --unpaid " +
                    quote(dir_ / "u.csv"),
                dir_)
                .exit_code,
            0);
  EXPECT_EQ(read_file(dir_ / "u.csv"), "account,timestamp,amount,outcome\na,6,1000,rejected\n");
  EXPECT_EQ(read_file(dir_ / "b.csv"), read_file(vectors / "overdraft-reject" / "expected.csv"));
}

TEST_F(Cli, JobsThroughEveryCommand) {
  // SPEC section 10 through the CLI: one record per unpaid job (job_id, first tick not
  // paid in full, total), the slope column, and what each credit gave to jobs.
  test::write_file(dir_ / "e.csv",
                   "op,account,credit_id,timestamp,amount,expiration\n"
                   "add,a,plan,0,50,200\n"
                   "add,a,promo,5,10,9\n"  // [5, 14]: drawn first while active
                   "run,a,job-1,10,3,10\n"  // 3 at 10 .. 19
                   "use,a,,30,100,\n"       // 100 against 30: 70 short
                   "run,a,job-2,40,5,4\n");  // nothing left: 20 short
  test::write_file(dir_ / "q.csv", "account,timestamp\na,9\na,10\na,13\na,19\na,30\n");
  const std::string base = cli + " balances --events " + quote(dir_ / "e.csv") + " --queries " + quote(dir_ / "q.csv");
  const test::run_result r = run(base + " --out - --unpaid " + quote(dir_ / "u.csv"), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "account,timestamp,balance\na,9,60\na,10,57\na,13,48\na,19,30\na,30,\n");
  EXPECT_EQ(read_file(dir_ / "u.csv"),
            "account,job_id,timestamp,amount,outcome\n"
            "a,,30,70,shortfall\n"
            "a,job-2,40,20,shortfall\n");
  const test::run_result iv = run(cli + " intervals --events " + quote(dir_ / "e.csv") + " --out -", dir_);
  ASSERT_EQ(iv.exit_code, 0) << iv.err;
  EXPECT_EQ(iv.out,
            "account,credit_id,begin,end,amount,slope\n"
            "a,plan,0,12,50,0\n"
            "a,plan,13,19,48,3\n"
            "a,plan,20,29,30,0\n"
            "a,promo,5,9,10,0\n"  // 10 at 5..9, then 7, 4, 1 at 10..12: one row with a slope
            "a,promo,10,12,7,3\n");
  const test::run_result bd = run(cli + " breakdown --events " + quote(dir_ / "e.csv") + " --account a --at 19", dir_);
  ASSERT_EQ(bd.exit_code, 0) << bd.err;
  EXPECT_EQ(bd.out,
            "credit_id,start,end,granted,consumed,remaining,expired,active,to_jobs\n"
            "plan,0,200,50,20,30,0,true,20\n"
            "promo,5,14,10,10,0,0,false,10\n");
}

TEST_F(Cli, CrlfInputWithoutFinalNewline) {
  test::write_file(dir_ / "e.csv", "op,account,credit_id,timestamp,amount,expiration\r\nadd,a,g,1,5,10\r\nuse,a,,2,2,");
  test::write_file(dir_ / "q.csv", "account,timestamp\r\na,1\r\na,2\r\na,12");
  const test::run_result r =
      run(cli + " balances --events " + quote(dir_ / "e.csv") + " --queries " + quote(dir_ / "q.csv") + " --out -", dir_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "account,timestamp,balance\na,1,5\na,2,3\na,12,\n");
}

TEST_F(Cli, BreakdownExplainsABalance) {
  const std::string events = quote(examples / "events.csv");
  const test::run_result early = run(cli + " breakdown --events " + events + " --account org-17 --at 100000", dir_);
  EXPECT_EQ(early.exit_code, 0) << early.err;
  EXPECT_EQ(early.out,
            "credit_id,start,end,granted,consumed,remaining,expired,active\n"
            "plan-30d,0,2591999,3000,0,3000,0,true\n"
            "promo-7d,86400,691199,500,200,300,0,true\n");
  const test::run_result late = run(cli + " breakdown --events " + events + " --account org-17 --at 2600000", dir_);
  EXPECT_EQ(late.out,
            "credit_id,start,end,granted,consumed,remaining,expired,active\n"
            "plan-30d,0,2591999,3000,150,0,2850,false\n"
            "promo-7d,86400,691199,500,500,0,0,false\n");
  const test::run_result unknown = run(cli + " breakdown --events " + events + " --account nobody --at 1", dir_);
  EXPECT_EQ(unknown.exit_code, 2);
  EXPECT_NE(unknown.err.find("no events for account 'nobody'"), std::string::npos) << unknown.err;
  EXPECT_EQ(run(cli + " breakdown --events " + events + " --account org-17 --at 1.5", dir_).exit_code, 2);
  EXPECT_EQ(run(cli + " breakdown --help", dir_).exit_code, 0);
}

TEST_F(Cli, ReportWritesGridBalancesAndWindowSummary) {
  const std::string events = quote(examples / "events.csv");
  const fs::path out = dir_ / "report";
  const test::run_result r =
      run(cli + " report --events " + events + " --from 0 --to 2600000 --every 864000 --out " + quote(out), dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  // Worked by hand from examples/events.csv; balance_to = balance_from + granted - consumed - expired.
  EXPECT_EQ(read_file(out / "summary.csv"),
            "account,balance_from,granted,consumed,expired,shortfall,rejected,balance_to\n"
            "org-17,3000,500,650,2850,5000,0,0\n"
            "\"acme, inc.\",100000,0,1200,0,0,0,98800\n"
            "org-42,100,0,50,50,0,0,0\n");
  // The grid answers equal `balances` on the same queries.
  std::string queries = "account,timestamp\n";
  for (const std::string account : {"org-17", "\"acme, inc.\"", "org-42"}) {
    for (const char* t : {"0", "864000", "1728000", "2592000"}) queries += account + "," + t + "\n";
  }
  test::write_file(dir_ / "grid.csv", queries);
  const test::run_result grid =
      run(cli + " balances --events " + events + " --queries " + quote(dir_ / "grid.csv") + " --out -", dir_);
  EXPECT_EQ(read_file(out / "balances.csv"), grid.out);

  // Listed accounts, one unknown: it reports none and zeros.
  test::write_file(dir_ / "accounts.csv", "account\norg-42\nnobody\n");
  const fs::path listed = dir_ / "listed";
  ASSERT_EQ(run(cli + " report --events " + events + " --from 0 --to 100 --every 50 --accounts " +
                    quote(dir_ / "accounts.csv") + " --out " + quote(listed),
                dir_)
                .exit_code,
            0);
  EXPECT_EQ(read_file(listed / "balances.csv"),
            "account,timestamp,balance\norg-42,0,100\norg-42,50,100\norg-42,100,100\n"
            "nobody,0,\nnobody,50,\nnobody,100,\n");
  EXPECT_EQ(read_file(listed / "summary.csv"),
            "account,balance_from,granted,consumed,expired,shortfall,rejected,balance_to\n"
            "org-42,100,0,0,0,0,0,100\nnobody,0,0,0,0,0,0,0\n");
}

TEST_F(Cli, ReportRefusesBadArgumentsAndWritesNothing) {
  const std::string events = quote(examples / "events.csv");
  const fs::path out = dir_ / "report";
  EXPECT_EQ(run(cli + " report --events " + events + " --from 0 --to 10 --every 0 --out " + quote(out), dir_).exit_code, 2);
  EXPECT_EQ(run(cli + " report --events " + events + " --from 10 --to 0 --every 1 --out " + quote(out), dir_).exit_code, 2);
  EXPECT_EQ(run(cli + " report --events " + events + " --from x --to 0 --every 1 --out " + quote(out), dir_).exit_code, 2);
  const test::run_result bad = run(cli + " report --events " + quote(vectors / "bad-op" / "events.csv") +
                                       " --from 0 --to 10 --every 1 --out " + quote(out),
                                   dir_);
  EXPECT_EQ(bad.exit_code, 2);
  EXPECT_FALSE(fs::exists(out / "balances.csv"));
  EXPECT_FALSE(fs::exists(out / "summary.csv"));
  EXPECT_EQ(run(cli + " report --help", dir_).exit_code, 0);
}

TEST_F(Cli, ReportOnEveryVectorAgreesWithBalancesAndItsIdentity) {
  for (const auto& entry : fs::directory_iterator(vectors)) {
    const fs::path v = entry.path();
    if (!entry.is_directory() || fs::exists(v / "expect-error")) continue;
    const std::string policy = fs::exists(v / "policy") ? "reject" : "drain";
    const fs::path out = dir_ / v.filename();
    const test::run_result r = run(cli + " report --events " + quote(v / "events.csv") + " --from -20 --to 500 --every 7" +
                                       " --policy " + policy + " --out " + quote(out),
                                   dir_);
    ASSERT_EQ(r.exit_code, 0) << v << ": " << r.err;
    // Every grid balance equals what `balances` answers for the same query.
    std::string queries = "account,timestamp\n";
    std::string balances = read_file(out / "balances.csv");
    for (std::size_t line = balances.find('\n') + 1; line < balances.size();) {
      const std::size_t end = balances.find('\n', line);
      const std::string row = balances.substr(line, end - line);
      queries += row.substr(0, row.rfind(',')) + "\n";
      line = end + 1;
    }
    test::write_file(dir_ / "q.csv", queries);
    const test::run_result direct = run(cli + " balances --events " + quote(v / "events.csv") + " --queries " +
                                            quote(dir_ / "q.csv") + " --policy " + policy + " --out -",
                                        dir_);
    EXPECT_EQ(balances, direct.out) << v;
    // Each summary row equals the naive reference over (-20, 500], and holds
    // balance_to = balance_from + granted - consumed - expired.
    const event_table table = read_events(v / "events.csv");
    std::vector<test::naive_event> naive;
    for (std::size_t row = 0; row < table.size(); ++row) {
      const timestamp_t span = table.end[row] - table.timestamp[row];  // a job: its last tick - start
      naive.push_back({table.kind[row], static_cast<int>(table.account[row]), table.timestamp[row], table.amount[row],
                       table.kind[row] == op::run ? span + 1 : span});
    }
    const overdraft_policy p = policy == "reject" ? overdraft_policy::reject : overdraft_policy::drain;
    std::istringstream summary(read_file(out / "summary.csv"));
    std::string row;
    std::getline(summary, row);
    std::size_t account = 0;
    while (std::getline(summary, row)) {
      std::vector<long long> n;
      std::size_t end = row.size();
      for (int k = 0; k < 7; ++k) {  // the seven numbers are the last fields (names may hold commas)
        const std::size_t comma = row.rfind(',', end - 1);
        n.insert(n.begin(), std::stoll(row.substr(comma + 1, end - comma - 1)));
        end = comma;
      }
      EXPECT_TRUE(test::wide{n[6]} == test::wide{n[0]} + n[1] - n[2] - n[3]) << v << ": " << row;
      const test::naive_answer f = test::naive_at(naive, static_cast<int>(account), -20, p);
      const test::naive_answer t = test::naive_at(naive, static_cast<int>(account), 500, p);
      const std::vector<test::wide> want = {f.balance, t.granted - f.granted, t.consumed - f.consumed,
                                            t.expired - f.expired, p == overdraft_policy::drain ? t.unpaid - f.unpaid : 0,
                                            p == overdraft_policy::reject ? t.unpaid - f.unpaid : 0, t.balance};
      for (std::size_t k = 0; k < 7; ++k) {
        EXPECT_TRUE(want[k] == n[k]) << v << ": " << row << " (field " << k + 1 << " of the numbers)";
      }
      ++account;
    }
    EXPECT_EQ(account, table.accounts.size());
  }
}

TEST_F(Cli, ReportHtmlRendersInChromiumWithoutScriptErrors) {
  if (std::system("command -v chromium >/dev/null 2>&1") != 0) GTEST_SKIP() << "chromium is not installed";
  const fs::path out = dir_ / "report";
  ASSERT_EQ(run(cli + " report --events " + quote(vectors / "random-0003" / "events.csv") +
                    " --from 0 --to 500 --every 10 --time-unit s --out " + quote(out),
                dir_)
                .exit_code,
            0);
  const std::string html = read_file(out / "report.html");
  for (const char* fetch : {"src=\"http", "href=\"http", "url(http", "src='http", "href='http", "<link", "fetch("}) {
    EXPECT_EQ(html.find(fetch), std::string::npos) << "a network resource: " << fetch;
  }
  EXPECT_NE(html.find("Dygraph"), std::string::npos) << "the chart library is inlined";
  const test::run_result dom =
      run("HOME=" + quote(dir_) + " timeout 120 chromium --headless --no-sandbox --disable-gpu --enable-logging=stderr " +
              "--v=0 --dump-dom " + quote("file://" + (out / "report.html").string()),
          dir_);
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  EXPECT_NE(dom.out.find("data-report=\"ok\""), std::string::npos) << "the script did not finish cleanly";
  EXPECT_EQ(dom.err.find("Uncaught"), std::string::npos) << dom.err;
  for (const std::string chart : {"fleet-balance", "flows", "top-breakage", "account-balance"}) {
    EXPECT_NE(dom.out.find("data-chart=\"" + chart + "\""), std::string::npos) << chart;
  }
  // dygraphs draws on canvases, one set per chart, with axis labels, gridlines and a legend.
  std::size_t canvases = 0;
  for (std::size_t at = dom.out.find("<canvas"); at != std::string::npos; at = dom.out.find("<canvas", at + 1)) ++canvases;
  EXPECT_GE(canvases, 3U) << "the three time-series charts are drawn";
  EXPECT_NE(dom.out.find("dygraph-axis-label"), std::string::npos) << "axes have labels";
  EXPECT_NE(dom.out.find("</div> fleet balance</span>"), std::string::npos) << "the legend names the series";
  EXPECT_NE(dom.out.find("class=\"amount\""), std::string::npos) << "the ranked accounts are listed";
  EXPECT_NE(dom.out.find("1970-01-01T"), std::string::npos) << "times shown as UTC dates";
  // Screenshots at a phone's, a laptop's and a wide screen's width render without error.
  for (const char* size : {"420,1200", "1280,1600", "1920,1400"}) {
    const fs::path png = dir_ / (std::string("report-") + size + ".png");
    const test::run_result shot = run("HOME=" + quote(dir_) + " timeout 120 chromium --headless --no-sandbox --disable-gpu " +
                                          "--hide-scrollbars --window-size=" + size + " --screenshot=" + quote(png) + " " +
                                          quote("file://" + (out / "report.html").string()),
                                      dir_);
    EXPECT_EQ(shot.exit_code, 0) << shot.err;
    EXPECT_GT(fs::exists(png) ? fs::file_size(png) : 0, 10000U) << size;
  }
}

TEST_F(Cli, ReportPageStaysSmallAndRendersOnFineGrids) {
  // --every 10 over 30 days: 259,201 grid times. The page draws at most 1,500 points a
  // chart (the CSVs keep every value), says so, and its script still finishes.
  const fs::path out = dir_ / "fine";
  ASSERT_EQ(run(cli + " report --events " + quote(examples / "events.csv") + " --from 0 --to 2592000 --every 10 --time-unit s" +
                    " --quiet --out " + quote(out),
                dir_)
                .exit_code,
            0);
  EXPECT_LT(fs::file_size(out / "report.html"), std::uintmax_t{1} << 20);
  EXPECT_EQ(std::count(std::istreambuf_iterator<char>(*std::make_unique<std::ifstream>(out / "balances.csv")),
                       std::istreambuf_iterator<char>(), '\n'),
            1 + 3 * 259201);
  const std::string html = read_file(out / "report.html");
  EXPECT_NE(html.find("\"per_point\":173"), std::string::npos);
  if (std::system("command -v chromium >/dev/null 2>&1") != 0) GTEST_SKIP() << "chromium is not installed";
  const test::run_result dom =
      run("HOME=" + quote(dir_) + " timeout 120 chromium --headless --no-sandbox --disable-gpu --dump-dom " +
              quote("file://" + (out / "report.html").string()),
          dir_);
  ASSERT_EQ(dom.exit_code, 0) << dom.err;
  EXPECT_NE(dom.out.find("data-report=\"ok\""), std::string::npos) << "the script did not finish cleanly";
  EXPECT_NE(dom.out.find("each point drawn stands for 173"), std::string::npos);
}

TEST_F(Cli, ReportProgressOnlyOnATerminal) {
  const std::string command = cli + " report --events " + quote(examples / "events.csv") +
                              " --from 0 --to 100 --every 10 --out " + quote(dir_ / "r");
  EXPECT_EQ(run(command, dir_).err, "") << "silent when standard error is a file";
  if (std::system("command -v script >/dev/null 2>&1") != 0) GTEST_SKIP() << "script (util-linux) is not installed";
  // script(1) runs the command on a pseudo-terminal.
  const test::run_result tty = run("script -qec \"" + command + "\" /dev/null", dir_);
  EXPECT_EQ(tty.exit_code, 0);
  EXPECT_NE(tty.out.find("gpucredit: queries answered and written: 33 in"), std::string::npos) << tty.out;
  const test::run_result quiet = run("script -qec \"" + command + " --quiet\" /dev/null", dir_);
  EXPECT_EQ(quiet.out.find("gpucredit:"), std::string::npos) << quiet.out;
}

TEST_F(Cli, BundledExample) {
  const test::run_result r = run(cli + " balances --events " + quote(examples / "events.csv") + " --queries " +
                                     quote(examples / "queries.csv") + " --out -",
                                 dir_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, read_file(examples / "expected.csv"));
}

}  // namespace
}  // namespace gpucredit
