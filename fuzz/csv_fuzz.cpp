// Fuzzes the CSV readers: any bytes either parse or are refused with input_error (any
// other exception, crash, leak or sanitizer finding fails). What parses is written back
// with the writer and read again: the round trip must give the same table.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "gpucredit/csv.hpp"
#include "gpucredit/error.hpp"

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

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view text(reinterpret_cast<const char*>(data), size);
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
