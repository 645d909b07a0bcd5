// Proves the CLI holds on hostile input and failing output: each bad file gets exit code
// 2 and one "FILE:LINE: reason" (or "FILE: reason") line, never a crash or a hang; what
// the README says is accepted is accepted; an interrupted run leaves no partial file and
// the earlier output intact; running out of memory is a clear error; and the output
// bytes do not depend on the run, the thread count or the backend.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <random>

#include "gpucredit/csv.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/gpu_credit.hpp"
#include "gpucredit/ledger.hpp"

#include "test_support.hpp"

namespace gpucredit {
namespace {

namespace fs = std::filesystem;
using test::quote;
using test::read_file;

const std::string header = "op,account,credit_id,timestamp,amount,expiration\n";

class Hostile : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = test::scratch_dir(std::string("rel-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    test::write_file(dir_ / "q.csv", "account,timestamp\na,1\n");
  }
  void TearDown() override { fs::remove_all(dir_); }

  // Runs `balances` on events `text` (under a time limit: a hang fails).
  test::run_result run_events(const std::string& text, const std::string& extra = "") {
    test::write_file(dir_ / "e.csv", text);
    return test::run("timeout 60 " + test::cli_path() + " balances --events " + quote(dir_ / "e.csv") +
                         " --queries " + quote(dir_ / "q.csv") + " --out " + quote(dir_ / "out.csv") + extra,
                     dir_);
  }
  // Expects a refusal naming e.csv and `line` (0: no line) with `reason` in it.
  void expect_refused(const std::string& text, std::uint64_t line, const std::string& reason) {
    fs::remove(dir_ / "out.csv");
    const test::run_result r = run_events(text);
    EXPECT_EQ(r.exit_code, 2) << r.err;
    const std::string where = (dir_ / "e.csv").string() + (line != 0 ? ":" + std::to_string(line) : std::string()) + ": ";
    EXPECT_EQ(r.err.rfind(where, 0), 0U) << r.err;
    EXPECT_NE(r.err.find(reason), std::string::npos) << r.err;
    EXPECT_EQ(std::count(r.err.begin(), r.err.end(), '\n'), 1) << "one line: " << r.err;
    EXPECT_FALSE(fs::exists(dir_ / "out.csv"));
  }
  fs::path dir_;
};

TEST_F(Hostile, MegabyteLinesAreFineUpTo64MiB) {
  const std::string name(5 << 20, 'n');
  const test::run_result ok = run_events(header + "add," + name + ",g,1,5,10\n");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  expect_refused(header + "add,a,g,1,5,10\nadd," + std::string(65 << 20, 'n') + ",g,1,5,10\n", 3,
                 "record longer than 64 MiB");
}

TEST_F(Hostile, NulBytesAndInvalidUtf8AreRefused) {
  expect_refused(header + "add,a" + std::string(1, '\0') + "b,g,1,5,10\n", 2, "NUL byte in account");
  expect_refused(header + "add,a,g" + std::string(1, '\0') + ",1,5,10\n", 2, "NUL byte in credit_id");
  expect_refused(header + "add,a,g,1" + std::string(1, '\0') + ",5,10\n", 2, "timestamp is not an integer: '1\\x00'");
  expect_refused(header + "add,caf\xE9,g,1,5,10\n", 2, "invalid UTF-8 in account");        // Latin-1
  expect_refused(header + "add,\xC0\xAF,g,1,5,10\n", 2, "invalid UTF-8 in account");        // overlong
  expect_refused(header + "add,\xED\xA0\x80,g,1,5,10\n", 2, "invalid UTF-8 in account");    // surrogate
  expect_refused(header + "add,a\xF0\x9F\x98,g,1,5,10\n", 2, "invalid UTF-8 in account");   // cut short
  EXPECT_EQ(run_events(header + "add,\xF0\x9F\x98\x80-\xE6\x97\xA5,g,1,5,10\n").exit_code, 0);
}

TEST_F(Hostile, ByteOrderMarkIsAccepted) {
  test::write_file(dir_ / "q.csv", "\xEF\xBB\xBF" "account,timestamp\na,1\n");
  const test::run_result r = run_events("\xEF\xBB\xBF" + header + "add,a,g,1,5,10\n");
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(read_file(dir_ / "out.csv"), "account,timestamp,balance\na,1,5\n");
}

TEST_F(Hostile, AMillionColumns) {
  std::string line = "add";
  for (int i = 1; i < 1000000; ++i) line += ",x";
  expect_refused(header + line + "\n", 2, "expected 6 fields, got 1000000");
}

TEST_F(Hostile, NumbersMustBePlainIntegers) {
  expect_refused(header + "add,a,g,+1,5,10\n", 2, "timestamp is not an integer: '+1'");
  expect_refused(header + "add,a,g, 1,5,10\n", 2, "timestamp is not an integer: ' 1'");
  expect_refused(header + "add,a,g,1,5 ,10\n", 2, "amount is not an integer: '5 '");
  expect_refused(header + "add,a,g,1,5,1e3\n", 2, "expiration is not an integer: '1e3'");
  expect_refused(header + "add,a,g,,5,10\n", 2, "missing timestamp");
  expect_refused(header + "add,a,g,1,,10\n", 2, "missing amount");
}

TEST_F(Hostile, FilesEndingMidLine) {
  expect_refused(header + "add,a,g,1,5", 2, "expected 6 fields, got 5");
  expect_refused(header + "add,\"a,g,1,5,10", 2, "unterminated quoted field");
  EXPECT_EQ(run_events(header + "add,a,g,1,5,10").exit_code, 0);  // only the final newline missing
}

TEST_F(Hostile, RandomBytesNeverCrash) {
  std::mt19937_64 rng(17);
  for (int i = 0; i < 40; ++i) {
    std::string text = i % 2 == 0 ? header : std::string();
    const std::size_t n = rng() % 4000;
    for (std::size_t k = 0; k < n; ++k) text += static_cast<char>(rng() % 256);
    const test::run_result r = run_events(text);
    EXPECT_TRUE(r.exit_code == 0 || r.exit_code == 2) << "exit " << r.exit_code << ": " << r.err;
    if (r.exit_code == 2) {
      EXPECT_EQ(r.err.rfind((dir_ / "e.csv").string() + ":", 0), 0U) << r.err;
    }
  }
}

TEST_F(Hostile, DirectoryIsRefusedAndFifoIsRead) {
  fs::create_directory(dir_ / "d.csv");
  const test::run_result d = test::run(test::cli_path() + " balances --events " + quote(dir_ / "d.csv") +
                                           " --queries " + quote(dir_ / "q.csv") + " --out -",
                                       dir_);
  EXPECT_EQ(d.exit_code, 2);
  EXPECT_EQ(d.err, (dir_ / "d.csv").string() + ": is a directory, not a CSV file\n");

  test::write_file(dir_ / "e.csv", header + "add,a,g,1,5,10\n");
  ASSERT_EQ(::mkfifo((dir_ / "fifo.csv").c_str(), 0600), 0);
  const test::run_result f = test::run("(cat " + quote(dir_ / "e.csv") + " > " + quote(dir_ / "fifo.csv") + " &); timeout 20 " +
                                           test::cli_path() + " balances --events " + quote(dir_ / "fifo.csv") +
                                           " --queries " + quote(dir_ / "q.csv") + " --out -",
                                       dir_);
  EXPECT_EQ(f.exit_code, 0) << f.err;
  EXPECT_EQ(f.out, "account,timestamp,balance\na,1,5\n");
}

TEST_F(Hostile, InterruptedRunLeavesNoPartialFile) {
  // A large output takes long enough to write that the run can be caught while its
  // temporary file exists; SIGTERM then must remove it and keep the earlier output.
  // The run is stopped (SIGSTOP) first and the file looked for again: the main thread,
  // which makes the rename, is then stopped, so the file still there means the output
  // is not yet replaced, and SIGTERM lands before the rename, never just after it.
  std::string events = header;
  for (int a = 0; a < 100; ++a) events += "add,acct-" + std::to_string(a) + ",g,0,1000,1000000\n";
  test::write_file(dir_ / "e.csv", events);
  std::string queries = "account,timestamp\n";
  for (int i = 0; i < 3000000; ++i) queries += "acct-" + std::to_string(i % 100) + "," + std::to_string(i % 1000) + "\n";
  test::write_file(dir_ / "q.csv", queries);
  test::write_file(dir_ / "out.csv", "earlier output\n");
  const std::string script =
      "pending() { ls -a | grep -q '^\\.out\\.csv\\.gpucredit-'; }\n"
      "caught=0\n"
      "for attempt in 1 2 3 4 5 6 7 8 9 10; do\n"
      "  " + test::cli_path() + " balances --events e.csv --queries q.csv --out out.csv & pid=$!\n"
      "  for i in $(seq 1 20000); do\n"
      "    if pending; then\n"
      "      kill -STOP $pid\n"
      "      while state=$(cut -d' ' -f3 /proc/$pid/stat 2>/dev/null) && [ \"$state\" != T ] && [ \"$state\" != Z ]; do :; done\n"
      "      if pending; then kill -TERM $pid; caught=1; fi\n"
      "      kill -CONT $pid\n"
      "      break\n"
      "    fi\n"
      "    kill -0 $pid 2>/dev/null || break\n"
      "  done\n"
      "  wait $pid; status=$?\n"
      "  if [ $caught = 1 ]; then echo \"status=$status\"; break; fi\n"
      "  printf 'earlier output\\n' > out.csv\n"
      "done\n"
      "echo caught=$caught\n"
      "ls -a | grep -c 'gpucredit-' || true\n";
  test::write_file(dir_ / "kill.sh", script);
  const test::run_result r = test::run("cd " + quote(dir_) + " && bash kill.sh", dir_);
  ASSERT_NE(r.out.find("caught=1"), std::string::npos) << "the run was never caught mid-write: " << r.out;
  EXPECT_NE(r.out.find("status=143"), std::string::npos) << r.out;  // 128 + SIGTERM
  EXPECT_NE(r.out.find("\n0\n"), std::string::npos) << "a temporary file was left behind: " << r.out;
  EXPECT_EQ(read_file(dir_ / "out.csv"), "earlier output\n");
}

TEST_F(Hostile, OutOfMemoryIsAClearError) {
#if defined(__SANITIZE_ADDRESS__)
  GTEST_SKIP() << "AddressSanitizer reserves more address space than the limit allows";
#else
  std::string events = header;
  for (int i = 0; i < 2000000; ++i) events += "use,acct-" + std::to_string(i % 5000) + ",," + std::to_string(i) + ",1,\n";
  test::write_file(dir_ / "e.csv", events);
  const test::run_result r = test::run("ulimit -v 120000; " + test::cli_path() + " balances --events " +
                                           quote(dir_ / "e.csv") + " --queries " + quote(dir_ / "q.csv") +
                                           " --out " + quote(dir_ / "out.csv"),
                                       dir_);
  EXPECT_EQ(r.exit_code, 1) << r.err;
  EXPECT_EQ(r.err, "gpucredit: out of memory\n");
  EXPECT_FALSE(fs::exists(dir_ / "out.csv"));
#endif
}

TEST_F(Hostile, OutputBytesDoNotDependOnTheRun) {
  const fs::path v = test::vectors_dir() / "random-0007";
  const std::string want = read_file(v / "expected.csv");
  for (const std::string env : {"OMP_NUM_THREADS=1", "OMP_NUM_THREADS=2", "GPUCREDIT_BACKEND=cpu", ""}) {
    for (int run = 0; run < 2; ++run) {
      const test::run_result r = test::run(env + " " + test::cli_path() + " balances --events " + quote(v / "events.csv") +
                                               " --queries " + quote(v / "queries.csv") + " --out -",
                                           dir_);
      ASSERT_EQ(r.exit_code, 0) << r.err;
      EXPECT_EQ(r.out, want) << env;
    }
  }
}


// ---- Regressions: each defect found by testing, with the test that failed before its fix.

constexpr amount_t M = amount_max;

TEST(Regression, LateCallThatWouldOverflowALaterBalanceIsRefused) {
  // A late use under `reject` makes the use at 5 rejected, so the balance at 10 would be
  // M + 1: the call is refused and the account stays as it was (SPEC section 6).
  GPUCredit credits(overdraft_policy::reject);
  credits.addCredit("a", M, 0, 100);
  credits.useCredit("a", 5, M);
  credits.addCredit("a", 2, 10, 100);
  EXPECT_THROW(credits.useCredit("a", 3, 1), input_error);
  EXPECT_EQ(credits.getBalance("a", 4), M);
  EXPECT_EQ(credits.getBalance("a", 5), std::nullopt);
  EXPECT_EQ(credits.getBalance("a", 10), 2);
  credits.useCredit("a", 11, 1);  // the account still takes calls
  EXPECT_EQ(credits.getBalance("a", 11), 1);
  // The same late use under `drain` is fine: the use at 5 drains what is left.
  GPUCredit drained;
  drained.addCredit("a", M, 0, 100);
  drained.useCredit("a", 5, M);
  drained.addCredit("a", 2, 10, 100);
  drained.useCredit("a", 3, 1);
  EXPECT_EQ(drained.getBalance("a", 4), M - 1);
  EXPECT_EQ(drained.getBalance("a", 10), 2);
  // A late add that would overflow a later balance is refused the same way.
  GPUCredit late_add;
  late_add.addCredit("b", M, 10, 100);
  EXPECT_THROW(late_add.addCredit("b", 1, 5, 100), input_error);
  EXPECT_EQ(late_add.getBalance("b", 10), M);
  EXPECT_EQ(late_add.getBalance("b", 5), std::nullopt);
}

TEST(Regression, CompatibleClassRefusesBadNamesLikeTheReaders) {
  GPUCredit credits;
  EXPECT_THROW(credits.addCredit("", 5, 0, 10), input_error);
  EXPECT_THROW(credits.addCredit(std::string_view("a\0b", 3), 5, 0, 10), input_error);
  EXPECT_THROW(credits.useCredit("caf\xE9", 0, 1), input_error);
  try {
    credits.useCredit("", 0, 1);
    FAIL() << "an empty account was accepted";
  } catch (const input_error& e) {
    EXPECT_EQ(e.reason(), "missing account");
  }
  EXPECT_EQ(credits.getBalance("", 0), std::nullopt);
  credits.addCredit("\xF0\x9F\x98\x80", 5, 0, 10);  // valid UTF-8 is fine
  EXPECT_EQ(credits.getBalance("\xF0\x9F\x98\x80", 0), 5);
}

TEST_F(Hostile, BadHeadersAreShownWholeFieldByField) {
  // The difference is past the 40th character: both headers are listed in full.
  test::write_file(dir_ / "q.csv", "account,timestamp\na,1\n");
  const test::run_result r = run_events("op,account,credit_id,timestamp,amount,expiration_days\nadd,a,g,1,5,10\n");
  EXPECT_EQ(r.exit_code, 2) << r.err;
  EXPECT_NE(r.err.find("bad header: field 6 is 'expiration_days', expected 'expiration' (read: 'op' | 'account' | "
                       "'credit_id' | 'timestamp' | 'amount' | 'expiration_days'; expected: 'op' | 'account' | "
                       "'credit_id' | 'timestamp' | 'amount' | 'expiration')"),
            std::string::npos)
      << r.err;
}

TEST_F(Hostile, HeadersAreComparedFieldByField) {
  expect_refused("\"op,account\",credit_id,timestamp,amount,expiration\nadd,a,g,1,5,10\n", 1, "bad header");
  test::write_file(dir_ / "q.csv", "\"account,timestamp\"\na,1\n");
  const test::run_result q = run_events(header + "add,a,g,1,5,10\n");
  EXPECT_EQ(q.exit_code, 2) << q.err;
  EXPECT_EQ(q.err.rfind((dir_ / "q.csv").string() + ":1: bad header", 0), 0U) << q.err;
  // Quoting alone changes nothing: the fields are compared after unquoting.
  test::write_file(dir_ / "q.csv", "\"account\",\"timestamp\"\na,1\n");
  const test::run_result ok = run_events("\"op\",account,credit_id,timestamp,amount,\"expiration\"\nadd,a,g,1,5,10\n");
  EXPECT_EQ(ok.exit_code, 0) << ok.err;
  expect_refused("op,account,credit_id,timestamp,amount\nadd,a,g,1,5,10\n", 1, "field 6 is missing");
  expect_refused("op,account,credit_id,timestamp,amount,expiration,x\n", 1, "field 7 'x' is extra");
}

TEST_F(Hostile, BareCarriageReturnOutsideQuotesIsRefused) {
  expect_refused(header + "add,a\rb,g,1,5,10\n", 2, "carriage return (CR) outside quotes in field 2");
  expect_refused(header + "add,a,g,1,5,10\radd,b,g,1,5,10\n", 2, "carriage return (CR) outside quotes in field 6");
  expect_refused(header + "add,a,\"g\",1\r,5,10\n", 2, "carriage return (CR) outside quotes in field 4");
  expect_refused(header + "add,abcdefgh\rijklmnopq,g,1,5,10\n", 2, "outside quotes in field 2");  // in the 8-byte loop
  // Inside quotes a CR is part of the name; CRLF line ends are fine.
  const test::run_result quoted = run_events(header + "add,\"a\rb\",g,1,5,10\r\nadd,a,g,1,5,10\r\n");
  EXPECT_EQ(quoted.exit_code, 0) << quoted.err;
  EXPECT_EQ(read_file(dir_ / "out.csv"), "account,timestamp,balance\na,1,5\n");
}

TEST_F(Hostile, TwoOutputsOrAnOutputAndAnInputNeverShareAFile) {
  test::write_file(dir_ / "e.csv", header + "use,a,,1,5,\n");
  const std::string base = test::cli_path() + " balances --events " + quote(dir_ / "e.csv") + " --queries " +
                           quote(dir_ / "q.csv");
  const test::run_result same = test::run(base + " --out " + quote(dir_ / "x.csv") + " --unpaid " + quote(dir_ / "x.csv"), dir_);
  EXPECT_EQ(same.exit_code, 2);
  EXPECT_NE(same.err.find("--out and --unpaid name the same file"), std::string::npos) << same.err;
  EXPECT_FALSE(fs::exists(dir_ / "x.csv"));
  const test::run_result over = test::run(base + " --out " + quote(dir_ / "x.csv") + " --unpaid " + quote(dir_ / "e.csv"), dir_);
  EXPECT_EQ(over.exit_code, 2);
  EXPECT_NE(over.err.find("--unpaid names the input file"), std::string::npos) << over.err;
  EXPECT_EQ(read_file(dir_ / "e.csv"), header + "use,a,,1,5,\n");
  const test::run_result both = test::run(base + " --out - --unpaid -", dir_);
  EXPECT_EQ(both.exit_code, 2);
  EXPECT_NE(both.err.find("name the same standard output"), std::string::npos) << both.err;
  const test::run_result fine = test::run(base + " --out " + quote(dir_ / "x.csv") + " --unpaid " + quote(dir_ / "u.csv"), dir_);
  EXPECT_EQ(fine.exit_code, 0) << fine.err;
  EXPECT_EQ(read_file(dir_ / "u.csv"), "account,timestamp,amount,outcome\na,1,5,shortfall\n");
}

TEST_F(Hostile, ARegularFileUnderDevIsReplacedNotAppendedTo) {
  if (!fs::is_directory("/dev/shm")) GTEST_SKIP() << "no /dev/shm here";
  const fs::path shm = fs::path("/dev/shm") / ("gpucredit-test-" + std::to_string(::getpid()));
  fs::remove_all(shm);
  fs::create_directories(shm);
  test::write_file(dir_ / "e.csv", header + "add,a,g,1,5,10\n");
  for (int run = 0; run < 2; ++run) {
    const test::run_result r = test::run(test::cli_path() + " balances --events " + quote(dir_ / "e.csv") + " --queries " +
                                             quote(dir_ / "q.csv") + " --out " + quote(shm / "out.csv"),
                                         dir_);
    EXPECT_EQ(r.exit_code, 0) << r.err;
    const test::run_result rep = test::run(test::cli_path() + " report --events " + quote(dir_ / "e.csv") +
                                               " --from 0 --to 2 --every 1 --out " + quote(shm / "report"),
                                           dir_);
    EXPECT_EQ(rep.exit_code, 0) << rep.err;
  }
  EXPECT_EQ(read_file(shm / "out.csv"), "account,timestamp,balance\na,1,5\n");
  EXPECT_EQ(read_file(shm / "report" / "balances.csv"), "account,timestamp,balance\na,0,\na,1,5\na,2,5\n");
  fs::remove_all(shm);
  // This process's standard output, redirected to a file, is written through once.
  const test::run_result r = test::run(test::cli_path() + " balances --events " + quote(dir_ / "e.csv") + " --queries " +
                                           quote(dir_ / "q.csv") + " --out /dev/stdout",
                                       dir_);
  EXPECT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(r.out, "account,timestamp,balance\na,1,5\n");
}

TEST_F(Hostile, AClosedPipeIsAnErrorNotASignalDeath) {
  std::string events = header;
  for (int a = 0; a < 50; ++a) events += "add,acct-" + std::to_string(a) + ",g,0,1000,1000000\n";
  test::write_file(dir_ / "e.csv", events);
  std::string queries = "account,timestamp\n";
  for (int i = 0; i < 400000; ++i) queries += "acct-" + std::to_string(i % 50) + "," + std::to_string(i) + "\n";
  test::write_file(dir_ / "q.csv", queries);
  const test::run_result r = test::run("bash -c '" + test::cli_path() + " balances --events " + (dir_ / "e.csv").string() +
                                           " --queries " + (dir_ / "q.csv").string() +
                                           " --out - | head -1; echo status=${PIPESTATUS[0]}'",
                                       dir_);
  EXPECT_NE(r.out.find("status=1\n"), std::string::npos) << r.out << r.err;
  EXPECT_NE(r.err.find("Broken pipe"), std::string::npos) << r.err;
}

TEST_F(Hostile, ReportGridReachesTheEndsOfInt64) {
  test::write_file(dir_ / "e.csv", header + "add,a,g,-9223372036854775808,5,10\n");
  const std::string base = "timeout 60 " + test::cli_path() + " report --events " + quote(dir_ / "e.csv") + " --out " +
                           quote(dir_ / "r");
  const test::run_result one = test::run(base + " --from -10 --to -2 --every 9223372036854775807", dir_);
  EXPECT_EQ(one.exit_code, 0) << one.err;
  EXPECT_EQ(read_file(dir_ / "r" / "balances.csv"), "account,timestamp,balance\na,-10,\n");
  const test::run_result low =
      test::run(base + " --from -9223372036854775808 --to -9223372036854775807 --every 2", dir_);
  EXPECT_EQ(low.exit_code, 0) << low.err;
  EXPECT_EQ(read_file(dir_ / "r" / "balances.csv"), "account,timestamp,balance\na,-9223372036854775808,5\n");
  const test::run_result high = test::run(base + " --from 9223372036854775806 --to 9223372036854775807 --every 1", dir_);
  EXPECT_EQ(high.exit_code, 0) << high.err;
  EXPECT_EQ(read_file(dir_ / "r" / "balances.csv"),
            "account,timestamp,balance\na,9223372036854775806,\na,9223372036854775807,\n");
  const test::run_result all = test::run(base + " --from -9223372036854775808 --to 9223372036854775807 --every 1", dir_);
  EXPECT_EQ(all.exit_code, 2) << all.err;
  EXPECT_NE(all.err.find("18446744073709551616 times"), std::string::npos) << all.err;
}

TEST_F(Hostile, ReportTotalsBeyondInt64AreWrittenInFull) {
  const std::string m = std::to_string(M);
  test::write_file(dir_ / "e.csv", header + "add,a,g,0," + m + ",100\nadd,b,g,0,1,100\nadd,c,g,1," + m +
                                       ",0\nadd,c,g,2," + m + ",0\nuse,d,,1," + m + ",\nuse,d,,2," + m + ",\n");
  const test::run_result r = test::run(test::cli_path() + " report --events " + quote(dir_ / "e.csv") +
                                           " --from 0 --to 10 --every 10 --out " + quote(dir_ / "r"),
                                       dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  const std::string two_m = "18446744073709551614";
  EXPECT_EQ(read_file(dir_ / "r" / "summary.csv"),
            "account,balance_from,granted,consumed,expired,shortfall,rejected,balance_to\n"
            "a," + m + ",0,0,0,0,0," + m + "\n"
            "b,1,0,0,0,0,0,1\n"
            "c,0," + two_m + ",0," + two_m + ",0,0,0\n"
            "d,0,0,0,0," + two_m + ",0,0\n");
  const std::string html = read_file(dir_ / "r" / "report.html");
  EXPECT_NE(html.find("\"fleet_balance\":[\"9223372036854775808\",\"9223372036854775808\"]"), std::string::npos);
}

TEST_F(Hostile, ARefusedReportWritesNothingNotEvenItsDirectory) {
  test::write_file(dir_ / "e.csv", header + "add,a,g,0,5,-1\n");
  const test::run_result bad = test::run(test::cli_path() + " report --events " + quote(dir_ / "e.csv") +
                                             " --from 0 --to 10 --every 1 --out " + quote(dir_ / "new" / "r"),
                                         dir_);
  EXPECT_EQ(bad.exit_code, 2) << bad.err;
  EXPECT_FALSE(fs::exists(dir_ / "new"));
  // A failing write removes the directories the report made.
  test::write_file(dir_ / "e.csv", header + "add,a,g,0,5,10\n");
  fs::create_directories(dir_ / "ro");
  ::chmod((dir_ / "ro").c_str(), 0500);
  if (::access((dir_ / "ro").c_str(), W_OK) != 0) {  // root can write anyway
    const test::run_result io = test::run(test::cli_path() + " report --events " + quote(dir_ / "e.csv") +
                                              " --from 0 --to 10 --every 1 --out " + quote(dir_ / "ro" / "r"),
                                          dir_);
    EXPECT_EQ(io.exit_code, 1) << io.err;
  }
  ::chmod((dir_ / "ro").c_str(), 0700);
  // --out naming a file is a usage error, said plainly.
  test::write_file(dir_ / "file", "keep me\n");
  const test::run_result file = test::run(test::cli_path() + " report --events " + quote(dir_ / "e.csv") +
                                              " --from 0 --to 10 --every 1 --out " + quote(dir_ / "file"),
                                          dir_);
  EXPECT_EQ(file.exit_code, 2) << file.err;
  EXPECT_EQ(file.err, (dir_ / "file").string() + ": --out must name a directory, and this is a file\n");
  EXPECT_EQ(read_file(dir_ / "file"), "keep me\n");
}

TEST_F(Hostile, BreakdownOfAHugeAccountIsNotQuadratic) {
  // 300,000 lots in one account: the quadratic breakdown took about a minute here, and
  // the 20 s limit stops it (a guard, not a measurement: bench/ measures); O(n log n)
  // takes well under a second. Every credit's amounts are checked.
  std::string events = header;
  constexpr int lots = 300000;
  for (int i = 0; i < lots; ++i) {
    events += "add,a,lot-" + std::to_string(i) + "," + std::to_string(i) + ",10," + std::to_string(lots) + "\n";
    if (i % 3 == 2) events += "use,a,," + std::to_string(i) + ",15,\n";
  }
  test::write_file(dir_ / "e.csv", events);
  const test::run_result r = test::run("timeout 20 " + test::cli_path() + " breakdown --events " + quote(dir_ / "e.csv") +
                                           " --account a --at " + std::to_string(lots - 1),
                                       dir_);
  ASSERT_EQ(r.exit_code, 0) << r.err;
  EXPECT_EQ(std::count(r.out.begin(), r.out.end(), '\n'), lots + 1);
  // Every third add's 10 and half the next: each use of 15 takes the oldest credits first.
  const event_table table = parse_events(events);
  const ledger_result result = replay(table);
  const std::vector<credit_state> credits = credits_at(table, result, 0, lots - 1);
  ASSERT_EQ(credits.size(), static_cast<std::size_t>(lots));
  amount_t remaining = 0;
  for (const credit_state& c : credits) {
    EXPECT_EQ(c.granted, c.consumed + c.remaining + c.expired);
    remaining += c.remaining;
  }
  EXPECT_EQ(remaining, amount_t{10} * lots - amount_t{15} * (lots / 3));
}

}  // namespace
}  // namespace gpucredit
