// Fuzzes the CSV readers: any bytes either parse or are refused with input_error (any
// other exception, crash, leak or sanitizer finding fails). What parses is written back
// with the writer and read again: the round trip must give the same table. And the
// three ways in must agree, table for table or message for message: text in memory
// (records applied a group at a time), a file streamed (a record at a time), and a file
// read whole and cut into parts parsed on several cores.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "gpucredit/csv.hpp"
#include "gpucredit/error.hpp"
#include "table_text.hpp"

namespace {

using namespace gpucredit;

[[noreturn]] void fail(const char* what) {
  std::fprintf(stderr, "csv_fuzz: %s\n", what);
  std::abort();
}

template <class Write>
std::string written(Write&& write) {
  const int fd = ::memfd_create("csv_fuzz", 0);
  if (fd < 0) fail("memfd_create");
  {
    csv_writer out(fd, "memfd");
    write(out);
    out.finish();
  }
  std::string text(static_cast<std::size_t>(::lseek(fd, 0, SEEK_END)), '\0');
  if (::pread(fd, text.data(), text.size(), 0) != static_cast<ssize_t>(text.size())) fail("pread");
  ::close(fd);
  return text;
}

void round_trip_events(const event_table& events) {
  const std::string text = written([&](csv_writer& out) {
    out.raw(events_header);
    out.end_row();
    for (std::size_t r = 0; r < events.size(); ++r) {
      const op kind = events.kind[r];
      out.field(kind == op::add ? "add" : kind == op::use ? "use" : "run");
      out.field(events.accounts[events.account[r]]);
      if (kind != op::use) {
        out.field(events.credit_label(static_cast<event_row>(r)));
      } else {
        out.empty_field();
      }
      out.field(events.timestamp[r]);
      out.field(events.amount[r]);
      if (kind == op::add) {
        out.field(events.end[r] - events.timestamp[r]);
      } else if (kind == op::run) {  // the tick count (a 0-tick job is kept as rate 0, one tick)
        out.field(events.end[r] - events.timestamp[r] + 1);
      } else {
        out.empty_field();
      }
      out.end_row();
    }
  });
  const event_table back = parse_events(text);
  if (back.size() != events.size() || back.timestamp != events.timestamp || back.amount != events.amount ||
      back.end != events.end || back.kind != events.kind || back.account != events.account) {
    fail("events round trip differs");
  }
  for (std::size_t r = 0; r < events.size(); ++r) {
    if (back.accounts[back.account[r]] != events.accounts[events.account[r]]) fail("account name round trip differs");
  }
}

template <class Read>
std::string outcome(Read read) {
  try {
    return test::describe(read());
  } catch (const input_error& e) {
    return std::string("error: ") + e.what();
  }
}

// The text as a file (in memory, named by its /proc path), read streamed and read whole
// in parts, and the text read from memory: the three must agree. (Reading in parts
// starts threads, slow under the sanitizers: one input in 8 is read that way too.)
template <class ReadFile, class ParseText>
void ways_in_agree(std::string_view text, bool in_parts, ReadFile read_file, ParseText parse_text) {
  const int fd = ::memfd_create("csv_fuzz_in", 0);
  if (fd < 0) fail("memfd_create");
  if (::write(fd, text.data(), text.size()) != static_cast<ssize_t>(text.size())) fail("write");
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  ::setenv("GPUCREDIT_CSV_PARALLEL_MIN", "1000000000000", 1);
  const std::string streamed = outcome([&] { return read_file(path); });
  std::string parts = streamed;
  if (in_parts) {
    ::setenv("GPUCREDIT_CSV_PARALLEL_MIN", "1", 1);
    ::setenv("GPUCREDIT_CSV_PARTS", "3", 1);
    parts = outcome([&] { return read_file(path); });
    ::unsetenv("GPUCREDIT_CSV_PARTS");
  }
  ::unsetenv("GPUCREDIT_CSV_PARALLEL_MIN");
  ::close(fd);
  const std::string memory = outcome([&] { return parse_text(text, path); });
  if (streamed != memory) {
    std::fprintf(stderr, "streamed: %.300s\nmemory:   %.300s\n", streamed.c_str(), memory.c_str());
    fail("a file streamed and the same text in memory read differently");
  }
  if (streamed != parts) {
    std::fprintf(stderr, "streamed: %.300s\nparts:    %.300s\n", streamed.c_str(), parts.c_str());
    fail("a file streamed and the same file read in parts read differently");
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
  std::uint32_t mix = 2166136261U;  // which inputs are also read in parts: a hash of the bytes
  for (std::size_t i = 0; i < size; ++i) mix = (mix ^ data[i]) * 16777619U;
  const bool in_parts = (mix & 7U) == 0;
  ways_in_agree(
      text, in_parts, [](const std::string& path) { return read_events(path); },
      [](std::string_view t, const std::string& source) { return parse_events(t, source); });
  ways_in_agree(
      text, in_parts, [](const std::string& path) { return read_queries(path); },
      [](std::string_view t, const std::string& source) { return parse_queries(t, source); });
  try {
    round_trip_events(parse_events(text, "fuzz"));
  } catch (const input_error&) {
  }
  try {
    const query_batch queries = parse_queries(text, "fuzz");
    std::vector<amount_t> none(queries.size(), 0);
    const query_batch back = parse_queries(written([&](csv_writer& out) {
      out.raw(queries_header);
      out.end_row();
      for (std::size_t i = 0; i < queries.size(); ++i) {
        out.field(queries.accounts[queries.account[i]]);
        out.field(queries.timestamp[i]);
        out.end_row();
      }
    }));
    if (back.timestamp != queries.timestamp || back.account != queries.account) fail("queries round trip differs");
  } catch (const input_error&) {
  }
  return 0;
}
