// Proves the CLI holds on hostile input and failing output: each bad file gets exit code
// 2 and one "FILE:LINE: reason" (or "FILE: reason") line, never a crash or a hang; what
// the README says is accepted is accepted; an interrupted run leaves no partial file and
// the earlier output intact; running out of memory is a clear error; and the output
// bytes do not depend on the run, the thread count or the backend.
#include <gtest/gtest.h>

#include <sys/stat.h>

#include <random>

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
  std::string events = header;
  for (int a = 0; a < 100; ++a) events += "add,acct-" + std::to_string(a) + ",g,0,1000,1000000\n";
  test::write_file(dir_ / "e.csv", events);
  std::string queries = "account,timestamp\n";
  for (int i = 0; i < 3000000; ++i) queries += "acct-" + std::to_string(i % 100) + "," + std::to_string(i % 1000) + "\n";
  test::write_file(dir_ / "q.csv", queries);
  test::write_file(dir_ / "out.csv", "earlier output\n");
  const std::string script =
      "caught=0\n"
      "for attempt in 1 2 3 4 5; do\n"
      "  " + test::cli_path() + " balances --events e.csv --queries q.csv --out out.csv & pid=$!\n"
      "  for i in $(seq 1 20000); do\n"
      "    if ls -a | grep -q '^\\.out\\.csv\\.gpucredit-'; then kill -TERM $pid; caught=1; break; fi\n"
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

}  // namespace
}  // namespace gpucredit
