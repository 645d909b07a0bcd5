// Proves the CSV reader and writer follow SPEC section 7: RFC 4180 quoting (commas,
// doubled quotes and line breaks inside quotes), CRLF, a missing final newline, a byte
// order mark, empty lines, names kept byte for byte; streaming across buffer refills,
// records larger than the buffer; every refusal names the right line; and the writer
// quotes only when it must.
#include <gtest/gtest.h>

#include <fcntl.h>
#include <sys/mman.h>
#include <csignal>
#include <unistd.h>

#include <algorithm>
#include <thread>
#include <cstdlib>
#include <limits>
#include <random>
#include <string>

#include "cpu/io/mapped_file.hpp"
#include "gpucredit/csv.hpp"
#include "gpucredit/error.hpp"
#include "table_text.hpp"
#include "test_support.hpp"

namespace gpucredit {
namespace {

const std::string header = "op,account,credit_id,timestamp,amount,expiration\n";

// The line and reason of the refusal of `text` as events.
std::pair<std::uint64_t, std::string> events_refusal(const std::string& text) {
  try {
    parse_events(text, "e.csv");
  } catch (const input_error& e) {
    EXPECT_EQ(e.source(), "e.csv");
    return {e.line(), e.reason()};
  }
  ADD_FAILURE() << "accepted: " << text;
  return {0, ""};
}

TEST(CsvRead, PlainEvents) {
  const event_table t = parse_events(header + "add,a,g1,10,40,50\nuse,a,,30,30,\n");
  ASSERT_EQ(t.size(), 2U);
  EXPECT_EQ(t.kind[0], op::add);
  EXPECT_EQ(t.timestamp[0], 10);
  EXPECT_EQ(t.amount[0], 40);
  EXPECT_EQ(t.end[0], 60);
  EXPECT_EQ(t.credit_label(0), "g1");
  EXPECT_EQ(t.kind[1], op::use);
  EXPECT_EQ(t.amount[1], 30);
  EXPECT_EQ(t.line[0], 2U);
  EXPECT_EQ(t.line[1], 3U);
  EXPECT_EQ(t.accounts.size(), 1U);
}

TEST(CsvRead, QuotedFieldsCrlfAndNoFinalNewline) {
  const event_table t = parse_events(
      "op,account,credit_id,timestamp,amount,expiration\r\n"
      "add,\"org,with,commas\",\"say \"\"hi\"\"\",1,5,10\r\n"
      "add,\"two\nlines\",g,2,5,10\r\n"
      "use,plain,,3,1,");
  ASSERT_EQ(t.size(), 3U);
  EXPECT_EQ(t.accounts[t.account[0]], "org,with,commas");
  EXPECT_EQ(t.credit_label(0), "say \"hi\"");
  EXPECT_EQ(t.accounts[t.account[1]], "two\nlines");
  EXPECT_EQ(t.line[2], 5U) << "a line break inside quotes still counts as a line";
  EXPECT_EQ(t.accounts[t.account[2]], "plain");
}

TEST(CsvRead, ByteOrderMarkAndEmptyLinesAndUtf8) {
  const event_table t = parse_events("\xEF\xBB\xBF" + header + "\nadd,caf\xC3\xA9-\xE6\x97\xA5,g,1,5,10\n\r\n\n");
  ASSERT_EQ(t.size(), 1U);
  EXPECT_EQ(t.line[0], 3U);
  EXPECT_EQ(t.accounts[0], "caf\xC3\xA9-\xE6\x97\xA5");
}

TEST(CsvRead, HeaderOnlyIsAnEmptyLedger) {
  EXPECT_EQ(parse_events(header).size(), 0U);
  EXPECT_EQ(parse_queries("account,timestamp").size(), 0U);
}

TEST(CsvRead, Refusals) {
  EXPECT_EQ(events_refusal(""), std::make_pair(std::uint64_t{0}, std::string("missing header line '") +
                                                                      std::string(events_header) + "'"));
  EXPECT_EQ(events_refusal("op,account,timestamp,amount\n").first, 1U);
  // Only empty lines: no header, on line 1, as the file reader says (a file with no
  // bytes at all names no line).
  EXPECT_EQ(events_refusal("\n").first, 1U);
  EXPECT_EQ(events_refusal("\r\n\n").first, 1U);
  EXPECT_EQ(events_refusal(header + "add,a,g,1,5\n"), std::make_pair(std::uint64_t{2}, std::string("expected 6 fields, got 5")));
  EXPECT_EQ(events_refusal(header + "add,a,g,1,5,10,7\n").second, "expected 6 fields, got 7");
  EXPECT_EQ(events_refusal(header + "refund,a,g,1,5,10\n").second, "unknown op 'refund'");
  EXPECT_EQ(events_refusal(header + "add,,g,1,5,10\n").second, "missing account");
  EXPECT_EQ(events_refusal(header + "add,a,g,,5,10\n").second, "missing timestamp");
  EXPECT_EQ(events_refusal(header + "add,a,g,1.5,5,10\n").second, "timestamp is not an integer: '1.5'");
  EXPECT_EQ(events_refusal(header + "add,a,g,+1,5,10\n").second, "timestamp is not an integer: '+1'");
  EXPECT_EQ(events_refusal(header + "add,a,g, 1,5,10\n").second, "timestamp is not an integer: ' 1'");
  EXPECT_EQ(events_refusal(header + "add,a,g,1 ,5,10\n").second, "timestamp is not an integer: '1 '");
  EXPECT_EQ(events_refusal(header + "add,a,g,0x1,5,10\n").second, "timestamp is not an integer: '0x1'");
  EXPECT_EQ(events_refusal(header + "add,a,g,1,99999999999999999999,10\n").second, "amount out of int64 range");
  EXPECT_EQ(events_refusal(header + "add,a,g,1,-5,10\n").second, "negative amount");
  EXPECT_EQ(events_refusal(header + "add,a,g,1,5,-1\n").second, "negative expiration");
  EXPECT_EQ(events_refusal(header + "add,a,g,1,5,\n").second, "missing expiration");
  EXPECT_EQ(events_refusal(header + "use,a,,1,-5,\n").second, "negative amount");
  EXPECT_EQ(events_refusal(header + "use,a,,1,5,3\n").second, "use takes no expiration (got '3')");
  EXPECT_EQ(events_refusal(header + "add,a,g,9223372036854775804,5,4\n").second, "timestamp + expiration beyond int64");
  EXPECT_EQ(events_refusal(header + "add,a,g,1,5,10\nadd,\"a,g,1,5,10\n"),
            std::make_pair(std::uint64_t{3}, std::string("unterminated quoted field at end of file")));
  EXPECT_EQ(events_refusal(header + "add,\"a\"x,g,1,5,10\n").second, "unexpected character after a closing quote in field 2");
  EXPECT_EQ(events_refusal(header + "add,a\"b,g,1,5,10\n").second, "double quote inside an unquoted field 2");
}

TEST(CsvRead, LongFieldsInErrorsAreShortened) {
  const std::string reason = events_refusal(header + "add,a,g,x" + std::string(1000, '7') + ",5,10\n").second;
  EXPECT_LT(reason.size(), 100U);
  EXPECT_NE(reason.find("..."), std::string::npos);
}

TEST(CsvRead, Queries) {
  const query_batch q = parse_queries("account,timestamp\na,1\n\"b,c\",-9223372036854775808\na,3\n");
  ASSERT_EQ(q.size(), 3U);
  EXPECT_EQ(q.accounts.size(), 2U);
  EXPECT_EQ(q.account[0], q.account[2]);
  EXPECT_EQ(q.accounts[q.account[1]], "b,c");
  EXPECT_EQ(q.timestamp[1], timestamp_min);
  try {
    parse_queries("account,timestamp\na,1,2\n", "q.csv");
    FAIL();
  } catch (const input_error& e) {
    EXPECT_STREQ(e.what(), "q.csv:2: expected 2 fields, got 3");
  }
  EXPECT_THROW(parse_queries("acct,time\n"), input_error);
}

TEST(CsvRead, FilesStreamAcrossBufferRefills) {
  // Many records, and one whose account is larger than the reader's first buffer.
  const std::filesystem::path dir = test::scratch_dir("csv-stream");
  std::string text = header;
  for (int i = 0; i < 100000; ++i) {
    text += "add,\"acct,";
    text += std::to_string(i % 97);
    text += "\",g" + std::to_string(i) + "," + std::to_string(i) + ",5,10\r\n";
  }
  const std::string huge(3 << 20, 'x');
  text += "use," + huge + ",,7,1,\n";
  text += "use,\"" + huge + "\"\"q\",,8,1,";  // quoted, escaped, no final newline
  test::write_file(dir / "events.csv", text);

  const event_table from_file = read_events(dir / "events.csv");
  const event_table from_memory = parse_events(text);
  ASSERT_EQ(from_file.size(), 100002U);
  EXPECT_EQ(from_file.timestamp, from_memory.timestamp);
  EXPECT_EQ(from_file.account, from_memory.account);
  EXPECT_EQ(from_file.line, from_memory.line);
  EXPECT_EQ(from_file.accounts[from_file.account[100000]], huge);
  EXPECT_EQ(from_file.accounts[from_file.account[100001]], huge + "\"q");
  EXPECT_EQ(from_file.line[100001], 100003U);
  std::filesystem::remove_all(dir);
}

// Reads `path` in one pass and on every core (several part counts, forced on small files
// by the environment), and says whether all agree: the same table, or the same error.
template <class Read>
void expect_parallel_reads_agree(const std::filesystem::path& path, Read read, const std::string& what) {
  auto outcome = [&]() -> std::string {
    try {
      return read(path);
    } catch (const input_error& e) {
      return std::string("error: ") + e.what();
    }
  };
  ::setenv("GPUCREDIT_CSV_PARALLEL_MIN", "1000000000000", 1);
  const std::string one_pass = outcome();
  for (const char* parts : {"2", "3", "7", "64"}) {
    ::setenv("GPUCREDIT_CSV_PARALLEL_MIN", "1", 1);
    ::setenv("GPUCREDIT_CSV_PARTS", parts, 1);
    const std::string got = outcome();
    ::unsetenv("GPUCREDIT_CSV_PARTS");
    ::unsetenv("GPUCREDIT_CSV_PARALLEL_MIN");
    if (got != one_pass) {  // the first difference and a little context: the texts can be megabytes
      const auto at = static_cast<std::size_t>(
          std::mismatch(got.begin(), got.begin() + static_cast<std::ptrdiff_t>(std::min(got.size(), one_pass.size())),
                        one_pass.begin())
              .first -
          got.begin());
      const std::size_t from = at < 200 ? 0 : at - 200;
      FAIL() << what << " in " << parts << " parts: differs from one pass at byte " << at << "\n  parts: "
             << got.substr(from, 400) << "\n  one pass: " << one_pass.substr(from, 400);
    }
  }
}

using test::describe;

TEST(CsvRead, ReadingOnEveryCoreGivesTheOnePassTableOrError) {
  // Quoted fields with commas, quotes and newlines inside, CRLF, empty lines, a byte
  // order mark, jobs; then the same with one defect at a random line.
  std::mt19937_64 rng(test::base_seed(17));
  const test::fs::path dir = test::scratch_dir("parallel-csv");
  for (int round = 0; round < 60; ++round) {
    std::string text = round % 3 == 0 ? "\xEF\xBB\xBF" : "";
    text += std::string(events_header) + (round % 2 == 0 ? "\r\n" : "\n");
    std::string queries = "account,timestamp\n";
    const int rows = 1 + static_cast<int>(rng() % 300);
    const int defect = round % 2 == 1 ? static_cast<int>(rng() % static_cast<unsigned>(rows)) : -1;
    for (int i = 0; i < rows; ++i) {
      const std::string name = rng() % 5 == 0 ? "\"org,\"\"" + std::to_string(rng() % 9) + "\"\"\n x\""
                                              : "org-" + std::to_string(rng() % 20);
      const std::string end = rng() % 4 == 0 ? "\r\n" : "\n";
      if (rng() % 10 == 0) text += end;  // an empty line
      switch (rng() % 4) {
        case 0:
        case 1:
          text += "add," + name + ",\"c\n" + std::to_string(i) + "\"," + std::to_string(rng() % 100) + "," +
                  std::to_string(rng() % 50) + "," + std::to_string(rng() % 40) + end;
          break;
        case 2:
          text += "use," + name + ",," + std::to_string(rng() % 100) + "," + std::to_string(rng() % 30) + "," + end;
          break;
        default:
          text += "run," + name + ",job" + std::to_string(i) + "," + std::to_string(rng() % 100) + ",2," +
                  std::to_string(rng() % 5) + end;
      }
      if (i == defect) {
        // Parsing defects, and defects found only when the event is applied (a negative
        // amount or rate), alone or just before a parsing defect: records are applied a
        // group at a time, and the first bad line must still be the one reported.
        const char* defects[] = {"add,a,b,1,2\n",          "add,a\"b,c,1,2,3\n",       "use,a,,x,1,\n",
                                 "add,\"a,c,1,2,3\n",       "bogus,a,c,1,2,3\n",       "add,a,c,1,2,3\rx\n",
                                 "add,a,neg,1,-2,3\n",      "run,a,j,1,-1,2\n",        "add,a,neg,1,-2,3\nuse,a,,x,1,\n",
                                 "run,a,j,1,-1,2\nadd,a,c,1,2,3\rx\n", "use,a,,1,-1,\nadd,a\"b,c,1,2,3\n"};
        text += defects[rng() % 11];
      }
      queries += name + "," + std::to_string(static_cast<std::int64_t>(rng() % 200) - 50) + end;
    }
    if (round % 5 == 4) text.pop_back();  // no final newline
    test::write_file(dir / "events.csv", text);
    test::write_file(dir / "queries.csv", queries);
    expect_parallel_reads_agree(dir / "events.csv", [](const test::fs::path& p) { return describe(read_events(p)); },
                                "events round " + std::to_string(round));
    expect_parallel_reads_agree(dir / "queries.csv", [](const test::fs::path& p) { return describe(read_queries(p)); },
                                "queries round " + std::to_string(round));
    if (HasFatalFailure()) return;
  }
  test::fs::remove_all(dir);
}

TEST(CsvRead, AnErrorFoundWhenApplyingComesBeforeARecordThatCannotBeRead) {
  // A record read fine but refused when applied (a negative amount), then, a few lines
  // on, one that cannot be read at all (a bare CR, a stray quote): records are applied
  // a group at a time, and the first bad line is still the one reported, in one pass
  // and on every core, for events and for queries.
  const test::fs::path dir = test::scratch_dir("csv-apply-then-read");
  for (const std::string unreadable : {"add,a,c,1,2,3\rx\n", "add,a\"b,c,1,2,3\n", "add,a,\"c\"x,1,2,3\n"}) {
    std::string text = std::string(events_header) + "\n";
    for (int i = 0; i < 40; ++i) text += "add,org-" + std::to_string(i) + ",c,1,5,10\n";
    text += "use,org-1,,2,-1,\n";  // line 42
    for (int i = 0; i < 5; ++i) text += "use,org-2,,3,1,\n";
    text += unreadable;  // line 48
    for (int i = 0; i < 40; ++i) text += "add,org-" + std::to_string(i) + ",c,1,5,10\n";
    test::write_file(dir / "events.csv", text);
    const std::string path = (dir / "events.csv").string();
    try {
      read_events(dir / "events.csv");
      ADD_FAILURE() << "read";
    } catch (const input_error& e) {
      EXPECT_EQ(std::string(e.what()), path + ":42: negative amount");
    }
    expect_parallel_reads_agree(dir / "events.csv", [](const test::fs::path& p) { return describe(read_events(p)); },
                                "events with " + unreadable);
  }
  std::string queries = "account,timestamp\n";
  for (int i = 0; i < 40; ++i) queries += "org-" + std::to_string(i) + ",5\n";
  queries += "org-1,x\n";          // line 42: not an integer
  queries += "org-\"2\",5\n";     // line 43: a stray quote
  test::write_file(dir / "queries.csv", queries);
  expect_parallel_reads_agree(dir / "queries.csv", [](const test::fs::path& p) { return describe(read_queries(p)); },
                              "queries");
  test::fs::remove_all(dir);
}

TEST(CsvRead, AStrayQuoteThatMisleadsACutGivesTheOnePassMessage) {
  // The quotes' parity puts the cut inside the first record as one pass reads it (its
  // stray quote and a quote opening a later field keep it going): in parts, the first
  // part ran out inside a quoted field. Every way in names the one-pass reason. A
  // doubled quote before it checks that the parts leave the bytes as the file has them.
  const test::fs::path dir = test::scratch_dir("csv-stray-quote-cut");
  const std::string queries =
      "account,timestamp\n\"a\"\"b\",1\n\"xrs with,mocm\nestamp\"org,with,moam[s\",0c,wito,\",217\n\n\"org,with,commas\",12\n";
  test::write_file(dir / "queries.csv", queries);
  expect_parallel_reads_agree(dir / "queries.csv", [](const test::fs::path& p) { return describe(read_queries(p)); },
                              "queries");
  try {
    read_queries(dir / "queries.csv");
    ADD_FAILURE() << "read";
  } catch (const input_error& e) {
    EXPECT_EQ(e.line(), 3U);
    EXPECT_EQ(e.reason(), "unexpected character after a closing quote in field 1");
  }
  const std::string events = std::string(events_header) +
                             "\nadd,\"a\"\"b\",c,1,2,3\nadd,\"xrs with,mocm\nestamp\"org,c,1,2,3\nadd,a\",c,\",2,3,4\n\nadd,"
                             "\"org,with,commas\",c,1,2,3\n";
  test::write_file(dir / "events.csv", events);
  expect_parallel_reads_agree(dir / "events.csv", [](const test::fs::path& p) { return describe(read_events(p)); },
                              "events");
  test::fs::remove_all(dir);
}

TEST(CsvRead, LargeInputsJoinTheSameFromEveryNumberOfParts) {
  // Enough rows that joining the parts copies them on every core, in pieces that cross
  // the parts' boundaries; names shared between parts and new in each.
  std::mt19937_64 rng(test::base_seed(23));
  const test::fs::path dir = test::scratch_dir("parallel-csv-large");
  std::string events = std::string(events_header) + "\n";
  std::string queries = "account,timestamp\n";
  for (int i = 0; i < 200000; ++i) {
    const std::string name = "org-" + std::to_string(rng() % (i < 100000 ? 3000 : 6000));
    if (rng() % 3 == 0) {
      events += "add," + name + ",c" + std::to_string(i) + "," + std::to_string(i) + ",50,1000\n";
    } else if (rng() % 10 == 0) {
      events += "run," + name + ",j" + std::to_string(i) + "," + std::to_string(i) + ",1,3\n";
    } else {
      events += "use," + name + ",," + std::to_string(i) + ",7,\n";
    }
    queries += name + "," + std::to_string(rng() % 400000) + "\n";
  }
  test::write_file(dir / "events.csv", events);
  test::write_file(dir / "queries.csv", queries);
  expect_parallel_reads_agree(dir / "events.csv", [](const test::fs::path& p) { return describe(read_events(p)); },
                              "large events");
  expect_parallel_reads_agree(dir / "queries.csv", [](const test::fs::path& p) { return describe(read_queries(p)); },
                              "large queries");
  test::fs::remove_all(dir);
}

TEST(CsvRead, UnreadableInputs) {
  const std::filesystem::path dir = test::scratch_dir("csv-unreadable");
  try {
    read_events(dir / "missing.csv");
    FAIL();
  } catch (const input_error& e) {
    EXPECT_EQ(e.line(), 0U);
    EXPECT_NE(e.reason().find("cannot open"), std::string::npos);
  }
  try {
    read_events(dir);
    FAIL();
  } catch (const input_error& e) {
    EXPECT_NE(e.reason().find("directory"), std::string::npos);
  }
  std::filesystem::remove_all(dir);
}

std::string written(const std::function<void(csv_writer&)>& write) {
  std::FILE* file = std::tmpfile();
  csv_writer out(fileno(file), "tmp");
  write(out);
  out.finish();
  std::string text(static_cast<std::size_t>(std::ftell(file)), '\0');
  std::rewind(file);
  text.resize(std::fread(text.data(), 1, text.size(), file));
  std::fclose(file);
  return text;
}

TEST(CsvWrite, QuotesOnlyWhenNeeded) {
  const std::string text = written([](csv_writer& out) {
    out.field("plain name");
    out.field("a,b");
    out.field("say \"hi\"");
    out.field("cr\rhere");
    out.field("lf\nhere");
    out.field("caf\xC3\xA9");
    out.field(std::int64_t{-9223372036854775807 - 1});
    out.empty_field();
    out.end_row();
  });
  EXPECT_EQ(text, "plain name,\"a,b\",\"say \"\"hi\"\"\",\"cr\rhere\",\"lf\nhere\",caf\xC3\xA9,-9223372036854775808,\n");
}

TEST(CsvWrite, RoundTripsThroughTheReader) {
  const std::vector<std::string> names = {"a", "b,c", "\"q\"", "x\r\ny", " spaced ", "\xE6\x97\xA5"};
  query_batch batch;
  for (std::size_t i = 0; i < names.size(); ++i) batch.push(names[i], static_cast<timestamp_t>(i) - 3);
  std::vector<amount_t> balances(names.size(), 0);
  balances[1] = 42;
  const std::string text = written([&](csv_writer& out) { write_balances(out, batch, balances); });
  EXPECT_EQ(text.substr(0, text.find('\n')), balances_header);
  // Names written by the writer read back byte for byte.
  const query_batch back = parse_queries(
      written([&](csv_writer& out) {
        out.raw(queries_header);
        out.end_row();
        for (std::size_t i = 0; i < batch.size(); ++i) {
          out.field(batch.accounts[batch.account[i]]);
          out.field(batch.timestamp[i]);
          out.end_row();
        }
      }));
  ASSERT_EQ(back.size(), names.size());
  for (std::size_t i = 0; i < names.size(); ++i) {
    EXPECT_EQ(back.accounts[back.account[i]], names[i]);
    EXPECT_EQ(back.timestamp[i], batch.timestamp[i]);
  }
  EXPECT_NE(text.find("\"b,c\",-2,42\n"), std::string::npos);
}

TEST(CsvWrite, BalancesFormattedOnEveryCoreMatchRowByRow) {
  // More rows than a round of blocks (64 Ki rows each), names that need quotes, none and negative times;
  // first, every number of digits (each power of 10, one less and their negatives, the
  // int64 ends) as time and balance, and names of 31 to 33 bytes and longer (the
  // formatter copies names of up to 32 bytes as a fixed 32).
  query_batch q;
  std::vector<amount_t> balances;
  std::vector<std::int64_t> edges = {0, std::numeric_limits<std::int64_t>::min(), std::numeric_limits<std::int64_t>::max()};
  for (std::int64_t p = 1; p <= std::numeric_limits<std::int64_t>::max() / 10; p *= 10) {
    for (const std::int64_t v : {p, p - 1, p * 10 - 1}) {
      edges.push_back(v);
      edges.push_back(-v);
    }
  }
  for (std::size_t i = 0; i < edges.size(); ++i) {
    const std::string name(30 + i % 40, static_cast<char>('a' + i % 26));
    q.push(name, edges[i]);
    balances.push_back(edges[edges.size() - 1 - i]);
  }
  for (std::size_t i = 0; i < 2500000; ++i) {
    q.push(i % 1000 == 7 ? "a,\"b\"" : "acct-" + std::to_string(i % 5000), static_cast<timestamp_t>(i * 7919) - 1000000);
    balances.push_back(i % 3 == 0 ? 0 : static_cast<amount_t>(i * 104729));
  }
  const test::fs::path dir = test::scratch_dir("parallel-write");
  // How: 0 row by row through csv_writer, 1 write_balances, 2 balances_writer in
  // batches of uneven sizes (the CLI's way).
  auto written = [&](int how) {
    const test::fs::path path = dir / ("way-" + std::to_string(how) + ".csv");
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
    csv_writer out(fd, path.string());
    if (how == 2) {
      balances_writer batches(out, q);
      for (std::size_t first = 0, size = 1; first < q.size(); first += size, size = size * 7 + 3) {
        size = std::min(size, q.size() - first);
        batches.write(std::span<const amount_t>(balances).subspan(first, size));
      }
      batches.finish();
    } else if (how == 0) {
      out.raw(balances_header);
      out.end_row();
      for (std::size_t i = 0; i < q.size(); ++i) {
        out.field(q.accounts[q.account[i]]);
        out.field(q.timestamp[i]);
        balances[i] != 0 ? out.field(balances[i]) : out.empty_field();
        out.end_row();
      }
    } else {
      write_balances(out, q, balances);
    }
    out.finish();
    ::close(fd);
    return test::read_file(path);
  };
  const std::string rows = written(0);
  for (const int how : {1, 2}) {
    const std::string blocks = written(how);
    // (Not EXPECT_EQ on the texts: a failure would print two 60 MB strings.)
    const auto [at, _] = std::mismatch(blocks.begin(), blocks.end(), rows.begin(), rows.end());
    const auto first = static_cast<std::size_t>(at - blocks.begin());
    EXPECT_TRUE(blocks == rows) << "way " << how << ": first difference at byte " << first << ": \""
                                << blocks.substr(first - std::min<std::size_t>(first, 40), 80) << "\" against \""
                                << rows.substr(first - std::min<std::size_t>(first, 40), 80) << "\"";
    EXPECT_EQ(std::count(blocks.begin(), blocks.end(), '\n'), static_cast<std::ptrdiff_t>(q.size() + 1));
  }
  test::fs::remove_all(dir);
}

TEST(CsvWrite, BalancesOntoAFullDiskAreAnIoError) {
  // write_balances writes each round on a thread of its own while it formats the next:
  // the failure of that thread is the caller's io_error, for the first round and later.
  for (const std::size_t rows : {std::size_t{10}, std::size_t{1000000}}) {
    query_batch q;
    for (std::size_t i = 0; i < rows; ++i) q.push("acct-" + std::to_string(i % 100), static_cast<timestamp_t>(i));
    const std::vector<amount_t> balances(rows, 5);
    const int fd = ::open("/dev/full", O_WRONLY);
    ASSERT_GE(fd, 0);
    csv_writer out(fd, "/dev/full");
    EXPECT_THROW(
        {
          write_balances(out, q, balances);
          out.finish();
        },
        io_error)
        << rows << " rows";
    ::close(fd);
  }
}

TEST(CsvWrite, EarlyWritebackKeepsEveryByteOnFilesAndPipes) {
  // A writer asked to start the disk's writeback as it goes writes the same bytes to a
  // regular file (where the kernel takes the hint) and to a pipe (where it refuses it).
  const std::filesystem::path dir = test::scratch_dir("csv-write-back");
  const std::string row(1000, 'x');
  constexpr int rows = 20000;  // 20 MB: writeback is started twice
  const std::filesystem::path path = dir / "out.csv";
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(fd, 0);
  {
    csv_writer out(fd, path.string(), true);
    for (int i = 0; i < rows; ++i) {
      out.field(row);
      out.field(std::int64_t{i});
      out.end_row();
    }
    out.finish();
  }
  ::close(fd);
  EXPECT_EQ(std::filesystem::file_size(path), static_cast<std::uintmax_t>(rows) * 1001 + 108890);
  int ends[2];
  ASSERT_EQ(::pipe(ends), 0);
  std::size_t got = 0;
  std::thread reader([&] {
    char chunk[1 << 16];
    for (ssize_t n; (n = ::read(ends[0], chunk, sizeof chunk)) > 0;) got += static_cast<std::size_t>(n);
  });
  {
    csv_writer out(ends[1], "pipe", true);
    for (int i = 0; i < rows; ++i) {
      out.field(row);
      out.end_row();
    }
    out.finish();
  }
  ::close(ends[1]);
  reader.join();
  ::close(ends[0]);
  EXPECT_EQ(got, static_cast<std::size_t>(rows) * 1001);
}

TEST(CsvWrite, FullDiskIsAnIoError) {
  const int fd = ::open("/dev/full", O_WRONLY);
  ASSERT_GE(fd, 0);
  csv_writer out(fd, "/dev/full");
  out.field("x");
  out.end_row();
  EXPECT_THROW(out.finish(), io_error);
  ::close(fd);
}

}  // namespace
}  // namespace gpucredit

namespace gpucredit {
namespace {

TEST(Dictionary, InternsFindsAndTakesBackAtScale) {
  // Open addressing over stored hashes, names in an arena: every name keeps its index
  // through growth and copies, views stay valid, and a name taken back leaves no trace.
  dictionary names;
  constexpr std::uint32_t count = 200000;
  std::vector<std::string_view> views;
  for (std::uint32_t i = 0; i < count; ++i) {
    const std::string name = "name-" + std::to_string(i * 7919u % 1000003u);
    ASSERT_EQ(names.intern(name), i);
    views.push_back(names[i]);
  }
  EXPECT_EQ(names.intern(""), count);  // the empty name is a name like any other here
  for (std::uint32_t i = 0; i < count; i += 997) {
    const std::string name = "name-" + std::to_string(i * 7919u % 1000003u);
    EXPECT_EQ(names.find(name), i);
    EXPECT_EQ(names.intern(name), i);
    EXPECT_EQ(views[i], name);  // the arena never moved
  }
  EXPECT_EQ(names.find("absent"), std::nullopt);
  bool added = false;
  const std::uint32_t taken = names.intern("taken-back", added);
  EXPECT_TRUE(added);
  names.pop_last();
  EXPECT_EQ(names.find("taken-back"), std::nullopt);
  EXPECT_EQ(names.size(), std::size_t{count} + 1);
  EXPECT_EQ(names.intern("taken-back"), taken);  // the index is free again
  const dictionary copy = names;
  EXPECT_EQ(copy.size(), names.size());
  EXPECT_EQ(copy.find("name-0"), 0U);
  EXPECT_EQ(copy[count - 1], names[count - 1]);
}

TEST(Dictionary, InternAllGivesTheIndicesOfInterningOneByOne) {
  // Batches of names, new and known, short and long, through a table that grows past
  // the size where intern_all prefetches: the same indices as intern() one by one.
  dictionary batched;
  dictionary single;
  std::mt19937_64 rng(11 + test::base_seed(0));
  std::vector<std::string> pool;
  for (int i = 0; i < 60000; ++i) pool.push_back((i % 3 == 0 ? "customer-account-" : "o-") + std::to_string(i));
  std::vector<std::string_view> batch;
  std::vector<std::uint32_t> got(100);
  for (int round = 0; round < 3000; ++round) {
    batch.clear();
    const std::size_t size = rng() % 100;
    const std::size_t known = std::min<std::size_t>(pool.size(), std::size_t{1000} + static_cast<std::size_t>(round) * 20);
    for (std::size_t k = 0; k < size; ++k) batch.push_back(pool[rng() % known]);
    batched.intern_all(batch, got.data());
    for (std::size_t k = 0; k < size; ++k) ASSERT_EQ(got[k], single.intern(batch[k])) << "round " << round;
  }
  EXPECT_GT(batched.size(), std::size_t{1} << 14);  // the table passed 2^15 slots
  EXPECT_EQ(batched.size(), single.size());
}

TEST(Dictionary, TellsApartNamesOfEverySizeThatDifferInOneByte) {
  // Names of up to 16 bytes are compared as the words of their slot, longer ones by hash
  // and bytes: names of every size from 0 to 40 that differ in a single byte (first,
  // middle or last), or only by trailing NUL bytes (which the zero padding of a short
  // name's words must not hide), each get their own index, found again after growth.
  dictionary names;
  std::vector<std::string> all;
  for (std::size_t size = 0; size <= 40; ++size) {
    const std::string base(size, 'a');
    all.push_back(base);
    for (const std::size_t at : {std::size_t{0}, size / 2, size == 0 ? 0 : size - 1}) {
      if (size == 0) break;
      for (const char c : {'b', '\0', '\xff'}) {
        std::string other = base;
        other[at] = c;
        all.push_back(other);
      }
    }
    all.push_back(base + std::string(1, '\0'));
    all.push_back(base + std::string(2, '\0'));
  }
  std::sort(all.begin(), all.end());
  all.erase(std::unique(all.begin(), all.end()), all.end());
  for (std::size_t i = 0; i < all.size(); ++i) {
    ASSERT_EQ(names.intern(all[i]), i) << "size " << all[i].size();
  }
  for (std::size_t i = 0; i < all.size(); ++i) {
    EXPECT_EQ(names.find(all[i]), i) << "size " << all[i].size();
    EXPECT_EQ(names[static_cast<std::uint32_t>(i)], all[i]);
  }
  // Long names that share their first 16 bytes and their size.
  for (int i = 0; i < 1000; ++i) names.intern("customer-account-" + std::to_string(100000 + i));
  EXPECT_EQ(names.size(), all.size() + 1000);
  EXPECT_EQ(names.find("customer-account-100500"), all.size() + 500);
  EXPECT_EQ(names.find("customer-account-101000"), std::nullopt);
  EXPECT_EQ(names.find(std::string_view("aaaa\0", 5)), names.find(std::string("aaaa") + '\0'));
  EXPECT_NE(names.find(std::string_view("aaaa\0", 5)), names.find("aaaa"));
}

}  // namespace
}  // namespace gpucredit

namespace gpucredit {
namespace {

#if defined(__linux__)
// A file of three pages of 'x', open for reading.
int three_pages(const std::filesystem::path& path, std::size_t page) {
  const std::string bytes(3 * page, 'x');
  const int out = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  EXPECT_EQ(::write(out, bytes.data(), bytes.size()), static_cast<ssize_t>(bytes.size()));
  ::close(out);
  return ::open(path.c_str(), O_RDONLY);
}

TEST(MappedFile, AFileThatShrinksUnderItsMappingReadsZerosAndSaysSo) {
  // Another program truncates the file while it is mapped: the pages past its new end
  // read as zeros instead of killing the process with SIGBUS, and the mapping says so.
  const std::filesystem::path dir = test::scratch_dir("mapped-file");
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  const int fd = three_pages(dir / "in.csv", page);
  ASSERT_GE(fd, 0);
  std::optional<detail::mapped_file> m = detail::mapped_file::map(fd, 3 * page);
  ASSERT_TRUE(m.has_value());
  EXPECT_EQ(m->data()[2 * page], 'x');
  EXPECT_FALSE(m->shrank());
  std::filesystem::resize_file(dir / "in.csv", page);
  const char* volatile bytes = m->data();
  EXPECT_EQ(bytes[2 * page + 5], '\0');
  EXPECT_TRUE(m->shrank());
  EXPECT_EQ(bytes[0], 'x');  // the part still in the file is the file's
  detail::mapped_file moved = std::move(*m);
  EXPECT_TRUE(moved.shrank());
  ::close(fd);
}

// Killed by SIGBUS; under AddressSanitizer, whose own handler (the one before ours)
// reports the fault and exits, any death.
bool killed_by_bus_error(int status) {
#if defined(__SANITIZE_ADDRESS__)
  return status != 0;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
  return status != 0;
#endif
#endif
  return testing::KilledBySignal(SIGBUS)(status);
}

TEST(MappedFileDeathTest, ABusErrorOutsideTheMappingsStillEndsTheProcess) {
  // The handler takes only faults inside its own mappings: a file mapped by anyone else
  // that shrinks still ends the process with SIGBUS, as it would without the handler.
  const std::filesystem::path dir = test::scratch_dir("mapped-file-death");
  const auto page = static_cast<std::size_t>(::sysconf(_SC_PAGESIZE));
  EXPECT_EXIT(
      {
        const int fd = three_pages(dir / "in.csv", page);
        const std::optional<detail::mapped_file> ours = detail::mapped_file::map(fd, 3 * page);  // installs the handler
        if (!ours) std::_Exit(0);
        void* theirs = ::mmap(nullptr, 3 * page, PROT_READ, MAP_PRIVATE, fd, 0);
        std::filesystem::resize_file(dir / "in.csv", page);
        const volatile char c = static_cast<const char*>(theirs)[2 * page];
        std::_Exit(c == 0 ? 0 : 0);  // surviving the fault fails the test
      },
      killed_by_bus_error, "");
}
#endif

}  // namespace
}  // namespace gpucredit
