// Proves that every case in tests/vectors (a copy of the shared vectors) is answered
// byte for byte, through the library and through the CLI, and that every bad-* case is
// refused: a typed input_error naming file and line from the library; exit code 2, one
// "FILE:LINE: reason" line and no output file (an existing one left intact) from the CLI.
#include <gtest/gtest.h>

#include <cstdio>

#include "gpucredit/csv.hpp"
#include "gpucredit/engine.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/ledger.hpp"
#include "test_support.hpp"

namespace gpucredit {
namespace {

namespace fs = std::filesystem;
using test::read_file;

struct vector_case {
  std::string name;
  fs::path dir;
  bool bad() const { return fs::exists(dir / "expect-error"); }
  std::string policy() const {
    if (!fs::exists(dir / "policy")) return "drain";
    std::string text = read_file(dir / "policy");
    while (!text.empty() && (text.back() == '\n' || text.back() == '\r' || text.back() == ' ')) text.pop_back();
    return text;
  }
};

void PrintTo(const vector_case& c, std::ostream* os) { *os << c.name; }

std::vector<vector_case> all_cases() {
  std::vector<vector_case> cases;
  for (const auto& entry : fs::directory_iterator(test::vectors_dir())) {
    if (entry.is_directory()) cases.push_back({entry.path().filename().string(), entry.path()});
  }
  std::sort(cases.begin(), cases.end(), [](const vector_case& a, const vector_case& b) { return a.name < b.name; });
  return cases;
}

std::string test_name(const ::testing::TestParamInfo<vector_case>& info) {
  std::string name = info.param.name;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

// Runs the whole library path and returns the balances CSV.
std::string library_balances(const vector_case& c) {
  const event_table events = read_events(c.dir / "events.csv");
  const query_batch queries = read_queries(c.dir / "queries.csv");
  const ledger_result result = replay(events, c.policy() == "reject" ? overdraft_policy::reject : overdraft_policy::drain);
  const engine answers = engine::create(result, test::backend_under_test());
  const std::vector<amount_t> balances = answers.balances(queries.resolve(events.accounts), queries.timestamp);
  std::FILE* file = std::tmpfile();
  csv_writer out(fileno(file), "tmpfile");
  write_balances(out, queries, balances);
  out.finish();
  std::string text(static_cast<std::size_t>(std::ftell(file)), '\0');
  std::rewind(file);
  const std::size_t got = std::fread(text.data(), 1, text.size(), file);
  std::fclose(file);
  text.resize(got);
  return text;
}

// Whether `err` is exactly one line "FILE:LINE: reason" with LINE >= 1.
bool located_message(const std::string& err, const std::string& file) {
  if (err.rfind(file + ":", 0) != 0 || err.empty() || err.back() != '\n') return false;
  if (std::count(err.begin(), err.end(), '\n') != 1) return false;
  std::size_t i = file.size() + 1;
  const std::size_t digits_begin = i;
  while (i < err.size() && std::isdigit(static_cast<unsigned char>(err[i]))) ++i;
  if (i == digits_begin || err[digits_begin] == '0') return false;
  return err.compare(i, 2, ": ") == 0 && err.size() > i + 3;
}

class Vectors : public ::testing::TestWithParam<vector_case> {};

TEST_P(Vectors, Library) {
  const vector_case& c = GetParam();
  if (!c.bad()) {
    EXPECT_EQ(library_balances(c), read_file(c.dir / "expected.csv"));
    return;
  }
  try {
    library_balances(c);
    FAIL() << "bad input accepted";
  } catch (const input_error& e) {
    EXPECT_EQ(e.source(), (c.dir / "events.csv").string());
    EXPECT_GE(e.line(), 1U);
    EXPECT_FALSE(e.reason().empty());
  }
}

#ifdef GPUCREDIT_CLI
TEST_P(Vectors, Cli) {
  const vector_case& c = GetParam();
  const fs::path dir = test::scratch_dir("vector-" + c.name);
  const fs::path out = dir / "balances.csv";
  const std::string command = test::cli_path() + " balances --events " + test::quote(c.dir / "events.csv") +
                              " --queries " + test::quote(c.dir / "queries.csv") + " --policy " + c.policy() +
                              " --out ";
  if (!c.bad()) {
    const test::run_result to_file = test::run(command + test::quote(out), dir);
    EXPECT_EQ(to_file.exit_code, 0) << to_file.err;
    EXPECT_EQ(to_file.err, "");
    EXPECT_EQ(read_file(out), read_file(c.dir / "expected.csv"));
    const test::run_result to_stdout = test::run(command + "-", dir);
    EXPECT_EQ(to_stdout.exit_code, 0);
    EXPECT_EQ(to_stdout.out, read_file(c.dir / "expected.csv"));
  } else {
    const test::run_result refused = test::run(command + test::quote(out), dir);
    EXPECT_EQ(refused.exit_code, 2);
    EXPECT_TRUE(located_message(refused.err, (c.dir / "events.csv").string())) << refused.err;
    EXPECT_FALSE(fs::exists(out)) << "an output file was created";
    // An earlier output stays exactly as it was.
    test::write_file(out, "earlier output\n");
    EXPECT_EQ(test::run(command + test::quote(out), dir).exit_code, 2);
    EXPECT_EQ(read_file(out), "earlier output\n");
  }
  // Nothing else is left in the directory (no temporary files).
  std::size_t entries = 0;
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string name = entry.path().filename().string();
    if (name != "stdout.txt" && name != "stderr.txt" && name != "balances.csv") ++entries;
  }
  EXPECT_EQ(entries, 0U);
  fs::remove_all(dir);
}
#endif

INSTANTIATE_TEST_SUITE_P(Shared, Vectors, ::testing::ValuesIn(all_cases()), test_name);

TEST(VectorsLines, BadCasesNameTheRightLine) {
  // The line each refusal must name, read off the files by hand.
  const std::vector<std::pair<std::string, std::uint64_t>> expected_lines = {
      {"bad-balance-overflow", 3}, {"bad-expiry-overflow", 2}, {"bad-field-count", 2},
      {"bad-header", 1},           {"bad-int64-range", 2},     {"bad-integer", 2},
      {"bad-negative-amount", 2},  {"bad-negative-expiration", 2}, {"bad-op", 2}};
  for (const auto& [name, line] : expected_lines) {
    const vector_case c{name, test::vectors_dir() / name};
    ASSERT_TRUE(c.bad()) << name;
    try {
      library_balances(c);
      ADD_FAILURE() << name << ": accepted";
    } catch (const input_error& e) {
      EXPECT_EQ(e.line(), line) << name << ": " << e.what();
    }
  }
}

}  // namespace
}  // namespace gpucredit
