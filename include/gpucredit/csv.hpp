// CSV input and output in the CLI's formats (SPEC section 7). Readers stream the file
// through a fixed buffer, accept RFC 4180 quoting, CRLF line ends, a UTF-8 byte order
// mark and a missing final newline, and skip empty lines. Writers quote a field only
// when it holds a comma, a double quote, CR or LF, and end every line with LF.
#pragma once

#include <cstdio>
#include <filesystem>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gpucredit/events.hpp"
#include "gpucredit/ledger.hpp"

namespace gpucredit {

/// Header of an events file.
inline constexpr std::string_view events_header = "op,account,credit_id,timestamp,amount,expiration";
/// Header of a queries file.
inline constexpr std::string_view queries_header = "account,timestamp";
/// Header of a balances file.
inline constexpr std::string_view balances_header = "account,timestamp,balance";
/// Header of an intervals file of a ledger without jobs (SPEC section 5).
inline constexpr std::string_view intervals_header = "account,credit_id,begin,end,amount";
/// Header of an intervals file of a ledger with jobs (SPEC section 10): rows hold
/// amount - slope * (t - begin).
inline constexpr std::string_view intervals_slope_header = "account,credit_id,begin,end,amount,slope";

/// Reads an events file ("-": standard input, named "stdin" in errors). Throws
/// `input_error` ("FILE:LINE: reason") for bad input,
/// including a file that cannot be opened. With `expiration_form::end` the sixth column
/// of an `add` is its last usable timestamp (refused when before its timestamp).
/// Blocks.
event_table read_events(const std::filesystem::path& path, expiration_form form = expiration_form::duration);
/// Parses events from memory; `source` names it in errors.
event_table parse_events(std::string_view text, std::string source = "events",
                         expiration_form form = expiration_form::duration);

/// Reads a queries file; throws `input_error` like `read_events`.
query_batch read_queries(const std::filesystem::path& path);
query_batch parse_queries(std::string_view text, std::string source = "queries");

/// Reads a list of account names: a CSV file with the header `account`, one name a row.
/// Throws `input_error` like `read_events`.
std::vector<std::string> read_accounts(const std::filesystem::path& path);

/// Buffered CSV writer over a stdio stream or a file descriptor. Throws `io_error`
/// when a write fails (full disk, closed pipe).
class csv_writer {
 public:
  /// Writes to `fd` (not owned). `name` names the destination in errors.
  /// `write_back_early`: for a file that will be made durable (fsync) once complete, the
  /// disk's writeback of each few MiB is started as soon as they are written (Linux
  /// `sync_file_range`), so that writing to the disk overlaps formatting and the final
  /// fsync waits for little. Only a hint: where it is refused, nothing changes.
  csv_writer(int fd, std::string name, bool write_back_early = false);
  ~csv_writer();  // does not flush: call finish()
  csv_writer(const csv_writer&) = delete;
  csv_writer& operator=(const csv_writer&) = delete;

  void field(std::string_view text);  ///< quoted only when needed
  void field(std::int64_t value);
  void total_field(total_t value);  ///< an exact total (may pass int64)
  void empty_field();
  void raw(std::string_view text);    ///< bytes as they are (headers)
  /// Whole rows already formatted (ending in LF), written now after what is buffered.
  void raw_block(std::string_view text);
  void end_row();
  /// Flushes everything written so far.
  void finish();

 private:
  void separator();
  void flush_if_full();
  void write_out(std::string_view bytes);
  int fd_;
  std::string name_;
  std::string buffer_;
  bool row_started_ = false;
  bool write_back_ = false;
  std::size_t not_written_back_ = 0;  // bytes written since writeback was last started
};

/// Writes the balances of `queries` (one row per query, in query order, empty balance
/// for none) with a header. `balances[i]` answers query i (0 = none).
void write_balances(csv_writer& out, const query_batch& queries, std::span<const amount_t> balances);

/// The same, a batch of answers at a time, so that answering the next batch overlaps
/// writing this one (and the disk's writeback of it): the header when constructed, then
/// write() for consecutive batches, then finish(). Rows are formatted on every core; the
/// last batch's bytes are handed to `out` on a thread of their own while the caller goes
/// on. `out` and `queries` must outlive the writer.
class balances_writer {
 public:
  balances_writer(csv_writer& out, const query_batch& queries);
  ~balances_writer();  // waits for a pending write (its error is lost: call finish())
  balances_writer(const balances_writer&) = delete;
  balances_writer& operator=(const balances_writer&) = delete;
  /// The next balances.size() rows: balances[i] answers the query after the last one
  /// written before.
  void write(std::span<const amount_t> balances);
  /// Waits until every row is handed to `out`; throws the io_error of a failed write.
  void finish();

 private:
  struct state;
  std::unique_ptr<state> state_;
};

/// Writes the interval table with a header: account,credit_id,begin,end,amount, and a
/// slope column when the ledger has jobs.
void write_intervals(csv_writer& out, const event_table& events, const interval_table& intervals);

}  // namespace gpucredit
