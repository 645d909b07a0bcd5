// Streaming CSV reader and minimal-quoting writer (SPEC section 7).
//
// The reader keeps one buffer (1 MiB to start) and finds each record's extent first,
// honouring quotes, then splits its fields in place (unescaping "" into the bytes it
// has already read), so fields are views into the buffer and nothing is copied per
// field. A record that outgrows the buffer doubles it, up to `record_bytes_max`.
#include "gpucredit/csv.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <algorithm>
#include <bit>
#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <exception>
#include <memory>
#include <optional>
#include <thread>
#include <utility>

#include "cpu/env.hpp"
#include "cpu/io/mapped_file.hpp"
#include "cpu/io/validate.hpp"
#include "cpu/parallel.hpp"
#include "gpucredit/error.hpp"

namespace gpucredit {
namespace {

constexpr std::size_t chunk_bytes = std::size_t{1} << 20;
constexpr std::size_t record_bytes_max = std::size_t{64} << 20;

// How errors name an input: its path, or "stdin" for "-".
std::string source_name(const std::filesystem::path& path) { return path == "-" ? "stdin" : path.string(); }

std::string system_reason(const char* what, int errnum) {
  return std::string(what) + ": " + std::strerror(errnum);
}


}  // namespace

namespace {

// Decimal text of an int64, written at w (at most 20 bytes); returns the end. Every
// writer's integers, inline for their loops: the digits are counted first, then written
// two at a time from the back, each pair a division by 100 and a copy from a table.
constexpr char digit_pairs[] =
    "00010203040506070809101112131415161718192021222324252627282930313233343536373839"
    "40414243444546474849505152535455565758596061626364656667686970717273747576777879"
    "8081828384858687888990919293949596979899";
constexpr std::uint64_t powers_of_10[20] = {1ULL,
                                            10ULL,
                                            100ULL,
                                            1000ULL,
                                            10000ULL,
                                            100000ULL,
                                            1000000ULL,
                                            10000000ULL,
                                            100000000ULL,
                                            1000000000ULL,
                                            10000000000ULL,
                                            100000000000ULL,
                                            1000000000000ULL,
                                            10000000000000ULL,
                                            100000000000000ULL,
                                            1000000000000000ULL,
                                            10000000000000000ULL,
                                            100000000000000000ULL,
                                            1000000000000000000ULL,
                                            10000000000000000000ULL};

[[gnu::always_inline]] inline char* format_int(char* w, std::int64_t value) noexcept {
  std::uint64_t v = static_cast<std::uint64_t>(value);
  if (value < 0) {
    *w++ = '-';
    v = 0 - v;  // also right for the smallest int64
  }
  // The digits: about bits * log10(2), less one below the next power of 10 (v | 1 has as
  // many digits as v, and is never 0).
  const auto bits = static_cast<unsigned>(std::bit_width(v | 1));
  const unsigned guess = (bits * 1233) >> 12;
  const unsigned digits = guess + 1 - ((v | 1) < powers_of_10[guess] ? 1U : 0U);
  char* const end = w + digits;
  char* p = end;
  while (v >= 100) {
    const std::uint64_t pair = v % 100;
    v /= 100;
    p -= 2;
    std::memcpy(p, digit_pairs + 2 * pair, 2);
  }
  if (v >= 10) {
    std::memcpy(p - 2, digit_pairs + 2 * v, 2);
  } else {
    p[-1] = static_cast<char>('0' + v);
  }
  return end;
}

// Eight bytes as one word (SWAR): bit 7 of each byte of `x` that equals `byte`. Exact at
// the lowest mark; a mark can also follow a true one (a borrow), so candidates above the
// lowest are checked.
constexpr std::uint64_t lane_ones = 0x0101010101010101ULL;
constexpr std::uint64_t lane_highs = 0x8080808080808080ULL;
inline std::uint64_t byte_marks(std::uint64_t x, unsigned char byte) noexcept {
  const std::uint64_t y = x ^ (lane_ones * byte);
  return (y - lane_ones) & ~y & lane_highs;
}

// One task at a time on a thread of its own: start() runs it, wait() joins it and
// rethrows what it threw. Joined on destruction too (an exception elsewhere must not
// leave the thread running).
class background_writer {
 public:
  background_writer() = default;
  background_writer(const background_writer&) = delete;
  background_writer& operator=(const background_writer&) = delete;
  ~background_writer() {
    if (thread_.joinable()) thread_.join();
  }
  template <class Task>
  void start(Task task) {
    thread_ = detail::start_helper([this, task = std::move(task)] {
      try {
        task();
      } catch (...) {
        failure_ = std::current_exception();
      }
    });
  }
  void wait() {
    if (thread_.joinable()) thread_.join();
    if (failure_) std::rethrow_exception(std::exchange(failure_, nullptr));
  }

 private:
  std::thread thread_;
  std::exception_ptr failure_;
};

// A whole file in memory, not zero-filled first, or mapped (detail::mapped_file).
struct file_bytes {
  std::unique_ptr<char[]> bytes;
  std::optional<detail::mapped_file> mapped;
  std::size_t size = 0;
  std::size_t capacity = 0;
  char* data() noexcept { return mapped ? mapped->data() : bytes.get(); }
  // Whether the file shrank while mapped (what was read past its new end was zeros).
  bool shrank() const noexcept { return mapped && mapped->shrank(); }
  // `count` bytes, keeping the first min(size, count); grows geometrically (not mapped).
  void resize(std::size_t count) {
    if (count > capacity) {
      const std::size_t grown = std::max(count, 2 * capacity);
      std::unique_ptr<char[]> bigger = std::make_unique_for_overwrite<char[]>(grown);
      if (size != 0) std::memcpy(bigger.get(), bytes.get(), size);
      bytes = std::move(bigger);
      capacity = grown;
    }
    size = count;
  }
};

class record_reader {
 public:
  // Reads the file at `path`; throws input_error when it cannot be opened or is not a
  // regular file or pipe.
  record_reader(const std::filesystem::path& path, std::string source) : source_(std::move(source)) {
    // "-" is standard input (a pipe from `psql -c "COPY (...) TO STDOUT WITH CSV HEADER"`, say).
    fd_ = path == "-" ? ::fcntl(STDIN_FILENO, F_DUPFD_CLOEXEC, 0) : ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd_ < 0) throw input_error(source_, 0, system_reason("cannot open", errno));
    struct stat st {};
    if (::fstat(fd_, &st) != 0) {
      const int errnum = errno;
      ::close(fd_);
      throw input_error(source_, 0, system_reason("cannot stat", errnum));
    }
    if (S_ISDIR(st.st_mode)) {
      ::close(fd_);
      throw input_error(source_, 0, "is a directory, not a CSV file");
    }
    if (S_ISREG(st.st_mode)) size_hint_ = static_cast<std::size_t>(st.st_size);
    // A small file gets a buffer its size (it grows if the file does), not a whole chunk.
    buffer_.resize(S_ISREG(st.st_mode) ? std::clamp<std::size_t>(size_hint_ + 1, 4096, chunk_bytes)
                                       : chunk_bytes);
  }
  // Reads `text` (copied: fields are unescaped in place).
  record_reader(std::string_view text, std::string source)
      : source_(std::move(source)),
        buffer_(text.begin(), text.end()),
        size_(text.size()),
        eof_(true),
        saw_bytes_(!text.empty()) {}
  // Reads the bytes [first, last) in place, leaving them as they are (a field with
  // doubled quotes is unescaped into a copy), the first of them on line `first_line`;
  // `file_start`: whether they begin the file (a byte order mark is skipped only there).
  // A record longer than record_bytes_max is refused as the streaming reader refuses it.
  record_reader(char* first, char* last, std::string source, std::uint64_t first_line, bool file_start)
      : source_(std::move(source)),
        external_(first),
        size_(static_cast<std::size_t>(last - first)),
        eof_(true),
        bom_checked_(!file_start),
        saw_bytes_(last != first),
        next_line_(first_line) {}
  ~record_reader() {
    if (fd_ >= 0) ::close(fd_);
  }

  // Reads the rest of a regular file of at least `min_bytes` into `bytes` (nothing is
  // read yet); false, reading nothing, for a smaller file, a pipe or text in memory.
  bool read_whole(std::size_t min_bytes, file_bytes& bytes) {
    if (fd_ < 0 || size_hint_ < min_bytes || size_ != 0) return false;
    // Mapped where the system allows: no copy, no zero-filled pages (the parts fault in
    // the kernel's cached pages of the file on every core).
    if (std::optional<detail::mapped_file> m = detail::mapped_file::map(fd_, size_hint_)) {
      bytes.mapped = std::move(m);
      bytes.size = size_hint_;
      return true;
    }
    // The file's bytes as stat saw them, read by every core at once (pread: the
    // kernel's copies run in parallel), then whatever follows if the file grew.
    bytes.resize(size_hint_);
    const std::size_t parts = detail::part_count(size_hint_, std::size_t{1} << 22);
    std::vector<std::size_t> got(parts, 0);
    detail::run_parts(parts, [&](std::size_t k) {
      const std::size_t first = size_hint_ * k / parts;
      const std::size_t last = size_hint_ * (k + 1) / parts;
      while (first + got[k] < last) {
        const ssize_t n = ::pread(fd_, bytes.data() + first + got[k], last - first - got[k],
                                  static_cast<off_t>(first + got[k]));
        if (n < 0 && errno == EINTR) continue;
        if (n < 0) throw input_error(source_, 1, system_reason("read failed", errno));
        if (n == 0) break;  // the file shrank
        got[k] += static_cast<std::size_t>(n);
      }
    });
    std::size_t have = 0;
    for (std::size_t k = 0; k < parts; ++k) {
      const std::size_t first = size_hint_ * k / parts;
      if (first != have) break;  // a part came up short: the file changed under us
      have = first + got[k];
    }
    bytes.resize(have);
    for (;;) {  // the rest, if the file is longer now than stat said (usually nothing)
      char more[1 << 16];
      const ssize_t n = ::pread(fd_, more, sizeof more, static_cast<off_t>(have));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw input_error(source_, 1, system_reason("read failed", errno));
      if (n == 0) break;
      bytes.resize(have + static_cast<std::size_t>(n));
      std::memcpy(bytes.data() + have, more, static_cast<std::size_t>(n));
      have += static_cast<std::size_t>(n);
    }
    bytes.resize(have);
    return true;
  }
  // Where the unread bytes begin, and the line of the next record (for splitting the rest).
  std::size_t offset() const noexcept { return begin_; }
  std::uint64_t next_line() const noexcept { return next_line_; }
  record_reader(const record_reader&) = delete;
  record_reader& operator=(const record_reader&) = delete;

  const std::string& source() const noexcept { return source_; }
  // The line on which the last record returned by next() began (1-based).
  std::uint64_t line() const noexcept { return record_line_; }
  // The input's size in bytes when it is a regular file, else 0.
  std::size_t size_hint() const noexcept { return size_hint_; }
  // An estimate of the records in the input, from the lines in the bytes read so far
  // (0 when unknown). Used to size columns once instead of regrowing them.
  std::size_t records_estimate() const {
    const std::size_t seen = std::min(size_ - begin_, chunk_bytes);
    const std::size_t whole = size_hint_ != 0 ? size_hint_ : (external_ != nullptr ? size_ - begin_ : 0);
    if (whole == 0 || seen == 0) return 0;
    std::size_t lines = 0;
    for (const char* p = data() + begin_; (p = static_cast<const char*>(std::memchr(
                                                         p, '\n', static_cast<std::size_t>(data() + begin_ + seen - p)))) != nullptr;
         ++p) {
      ++lines;
    }
    return lines == 0 ? 0 : whole / (seen / lines) + lines;
  }
  // Whether the input held any bytes at all.
  bool saw_bytes() const noexcept { return saw_bytes_; }
  // Whether the fields next() returns stay valid after later calls (bytes read in place,
  // or text in memory: nothing is ever refilled), not only until the next one.
  bool views_stable() const noexcept { return external_ != nullptr || fd_ < 0; }

  [[noreturn]] void fail(std::string reason) const { throw input_error(source_, record_line_, std::move(reason)); }

  // The next non-empty record's fields, or false at the end of the input. Views stay
  // valid until the next call.
  bool next(std::vector<std::string_view>& fields) {
    for (;;) {
      if (begin_ == size_ && !fill()) return false;
      skip_bom();
      char* const first = data() + begin_;
      char* const stop = data() + size_;
      // The common line: no quotes, so it is the whole record. One pass finds its end
      // and splits it.
      char* last = nullptr;
      char* line_end = nullptr;
      const plain_split split_as = split_line(first, stop, last, line_end, fields);
      if (split_as == plain_split::more) {
        fill();  // the line goes on past the buffer
        continue;
      }
      if (external_ != nullptr && stop - first >= static_cast<std::ptrdiff_t>(record_bytes_max)) {
        if (line_end == nullptr) line_end = static_cast<char*>(std::memchr(first, '\n', static_cast<std::size_t>(stop - first)));
        if ((line_end != nullptr ? line_end : stop) - first >= static_cast<std::ptrdiff_t>(record_bytes_max)) {
          record_line_ = next_line_;
          fail("record longer than " + std::to_string(record_bytes_max >> 20) + " MiB");
        }
      }
      if (split_as == plain_split::bare_cr) {
        record_line_ = next_line_;
        fail("carriage return (CR) outside quotes in field " + std::to_string(fields.size()));
      }
      if (split_as == plain_split::ok) {
        record_line_ = next_line_++;
        begin_ = static_cast<std::size_t>((line_end != stop ? line_end + 1 : stop) - data());
        if (last == first) continue;  // empty line
        return true;
      }
      // Quotes: the record may span lines. Find its end, then split it with unescaping.
      extent x{};
      if (!find_extent(x)) {
        fill();  // more input, or the end of it: then find_extent closes the record
        continue;
      }
      record_line_ = next_line_;
      if (external_ != nullptr && x.end - begin_ >= record_bytes_max) {
        fail("record longer than " + std::to_string(record_bytes_max >> 20) + " MiB");
      }
      next_line_ += 1 + x.newlines_inside;
      char* record_last = data() + x.end;
      const bool ends_in_newline = x.next > x.end;
      begin_ = x.next;
      if (ends_in_newline && record_last != first && record_last[-1] == '\r') --record_last;  // CRLF
      split(first, record_last, fields);
      return true;
    }
  }

  // The common query record, `name,digits` (SPEC section 7's queries file), read without
  // splitting it into fields: true with the name and the integer, the record consumed;
  // false, consuming nothing, for any other record (quotes, CR before the end, a byte
  // that is NUL or not ASCII in the name, another field count, no digits or more than
  // 18, a record not wholly in the buffer, an empty line), which next() then reads and
  // judges as usual. One pass over the name, 8 bytes a step, then the digits.
  bool next_name_and_int(std::string_view& name, std::int64_t& value) {
    if (!bom_checked_) return false;
    char* const first = data() + begin_;
    char* const stop = data() + size_;
    char* p = first;
    char* comma = nullptr;
    for (; stop - p >= 8; p += 8) {
      std::uint64_t x = 0;
      std::memcpy(&x, p, 8);
      const std::uint64_t commas = byte_marks(x, ',');
      // Each mask is exact at its lowest byte (a false mark only follows a true one), so
      // no mark below the first comma means no such byte before it.
      const std::uint64_t odd = byte_marks(x, '"') | byte_marks(x, '\r') | byte_marks(x, '\n') | byte_marks(x, 0) | (x & lane_highs);
      if (commas != 0) {
        if ((odd & ((commas & (0 - commas)) - 1)) != 0) return false;
        comma = p + (std::countr_zero(commas) >> 3);
        break;
      }
      if (odd != 0) return false;
    }
    if (comma == nullptr) {
      for (; p < stop; ++p) {
        const auto c = static_cast<unsigned char>(*p);
        if (c == ',') break;
        if (c == '"' || c == '\r' || c == '\n' || c == 0 || c >= 0x80) return false;
      }
      if (p == stop) return false;
      comma = p;
    }
    if (comma == first) return false;
    char* q = comma + 1;
    const bool negative = q < stop && *q == '-';
    q += negative ? 1 : 0;
    char* const digits = q;
    std::uint64_t v = 0;
    for (; q < stop; ++q) {
      const auto d = static_cast<unsigned>(static_cast<unsigned char>(*q) - '0');
      if (d > 9) break;
      v = v * 10 + d;
    }
    if (q == digits || q - digits > 18) return false;
    char* next = nullptr;
    if (q == stop) {
      if (!eof_) return false;  // the record may go on in input not read yet
      next = stop;
    } else if (*q == '\n') {
      next = q + 1;
    } else if (*q == '\r' && stop - q >= 2 && q[1] == '\n') {
      next = q + 2;
    } else {
      return false;
    }
    if (external_ != nullptr && q - first >= static_cast<std::ptrdiff_t>(record_bytes_max)) return false;
    record_line_ = next_line_++;
    begin_ = static_cast<std::size_t>(next - data());
    plain_text_ = true;
    name = {first, static_cast<std::size_t>(comma - first)};
    value = negative ? -static_cast<std::int64_t>(v) : static_cast<std::int64_t>(v);
    return true;
  }

 private:
  struct extent {
    std::size_t end;   // one past the record's last byte (its '\n' excluded)
    std::size_t next;  // where the following record begins
    std::uint64_t newlines_inside;
  };

  // Finds where the record at begin_ ends. False when the buffer holds only part of it
  // and more input may follow.
  bool find_extent(extent& x) {
    const char* const base = data();
    const char* p = base + begin_;
    const char* const stop = base + size_;
    const auto* newline = static_cast<const char*>(std::memchr(p, '\n', static_cast<std::size_t>(stop - p)));
    const char* line_end = newline != nullptr ? newline : stop;
    if (std::memchr(p, '"', static_cast<std::size_t>(line_end - p)) == nullptr) {
      if (newline == nullptr && !eof_) return false;
      x = {static_cast<std::size_t>(line_end - base),
           static_cast<std::size_t>(line_end - base) + (newline != nullptr ? 1 : 0), 0};
      return true;
    }
    // Quotes on this line: walk byte by byte. A quote opens a quoted field only at the
    // field's start, or right after a closing quote (a doubled quote); a stray quote
    // elsewhere is left for split() to refuse with its field number.
    bool inside = false;
    bool at_field_start = true;
    bool just_closed = false;
    std::uint64_t newlines = 0;
    for (const char* q = p; q < stop; ++q) {
      const char c = *q;
      if (inside) {
        if (c == '"') {
          inside = false;
          just_closed = true;
        } else if (c == '\n') {
          ++newlines;
        }
        continue;
      }
      if (c == '"' && (at_field_start || just_closed)) {
        inside = true;
        just_closed = false;
        at_field_start = false;
        continue;
      }
      if (c == '\n') {
        x = {static_cast<std::size_t>(q - base), static_cast<std::size_t>(q - base) + 1, newlines};
        return true;
      }
      just_closed = false;
      at_field_start = c == ',';
    }
    if (!eof_) return false;
    if (inside) {
      record_line_ = next_line_;
      fail("unterminated quoted field at end of file");
    }
    x = {size_, size_, newlines};
    return true;
  }

  enum class plain_split : std::uint8_t { ok, has_quote, bare_cr, more };

  // The common record: no quotes. One pass from `first` finds where the line ends (its
  // '\n', or `stop` at the end of the input), splits it at commas and notes whether any
  // byte is NUL or non-ASCII (only then are names checked byte by byte). On `ok`, `last`
  // is the record's end (a CR before the '\n' excluded). `has_quote` when a quote
  // appears before the line's end: split() handles the record then. `bare_cr` when a CR
  // is inside the record (SPEC section 7 refuses it); `fields` then ends at its field.
  // `more` when the buffer ends before the line does and more input may follow.
  // `line_end`: where the line ends (its '\n', or `stop`), set on `ok` and `bare_cr`.
  plain_split split_line(char* first, char* stop, char*& last, char*& line_end,
                         std::vector<std::string_view>& fields) {
    // Eight bytes at a time: bit masks mark candidate newlines, commas, quotes and CRs,
    // and the OR of all bytes shows any non-ASCII byte. A mask is exact at its lowest
    // mark (it can also mark a byte after a true match), so the first newline is exact,
    // any mark below it means a true match below it, and other candidates are checked.
    fields.clear();
    std::uint64_t seen = 0;  // OR of the record's bytes; bit 7 of a lane: non-ASCII
    bool nul = false;
    char* field_start = first;
    auto finish = [&](char* end, char* newline) {
      fields.emplace_back(field_start, static_cast<std::size_t>(end - field_start));
      plain_text_ = !nul && (seen & lane_highs) == 0;
      last = end;
      line_end = newline;
      return plain_split::ok;
    };
    // A true CR at `cr`: the end of a CRLF line, or a CR inside the record.
    auto at_cr = [&](char* cr) {
      if (stop - cr >= 2 && cr[1] == '\n') return finish(cr, cr + 1);
      auto* newline = static_cast<char*>(std::memchr(cr, '\n', static_cast<std::size_t>(stop - cr)));
      if (newline == nullptr && !eof_) return plain_split::more;  // the rest of the line decides
      line_end = newline != nullptr ? newline : stop;
      return bare_cr_at(first, cr, line_end, fields);
    };
    char* p = first;
#if defined(__SSE2__)
    // Sixteen bytes at a time where SSE2 is (every x86-64): exact masks, one bit a byte.
    for (; stop - p >= 16; p += 16) {
      const __m128i x = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const auto mask = [&x](char byte) {
        return static_cast<unsigned>(_mm_movemask_epi8(_mm_cmpeq_epi8(x, _mm_set1_epi8(byte))));
      };
      const unsigned newlines = mask('\n');
      const unsigned before = newlines != 0 ? (newlines & (0U - newlines)) - 1 : 0xFFFFU;
      if ((mask('"') & before) != 0) return plain_split::has_quote;
      seen |= (static_cast<unsigned>(_mm_movemask_epi8(x)) & before) != 0 ? lane_highs : 0;  // a byte >= 0x80
      nul |= (mask('\0') & before) != 0;
      unsigned commas = mask(',') & before;
      const unsigned crs = mask('\r') & before;
      char* const cr = crs != 0 ? p + std::countr_zero(crs) : nullptr;
      for (; commas != 0; commas &= commas - 1) {
        char* c = p + std::countr_zero(commas);
        if (cr != nullptr && c > cr) break;
        fields.emplace_back(field_start, static_cast<std::size_t>(c - field_start));
        field_start = c + 1;
      }
      if (cr != nullptr) return at_cr(cr);
      if (newlines != 0) {
        char* const newline = p + std::countr_zero(newlines);
        return finish(newline, newline);
      }
    }
#endif
    for (; stop - p >= 8; p += 8) {
      std::uint64_t x = 0;
      std::memcpy(&x, p, 8);
      const std::uint64_t newlines = byte_marks(x, '\n');
      const std::uint64_t before = newlines != 0 ? (newlines & (0 - newlines)) - 1 : ~std::uint64_t{0};
      if ((byte_marks(x, '"') & before) != 0) return plain_split::has_quote;
      seen |= x & before & lane_highs;
      nul |= (byte_marks(x, 0) & before) != 0;
      std::uint64_t commas = byte_marks(x, ',') & before;
      const std::uint64_t crs = byte_marks(x, '\r') & before;
      char* const cr = crs != 0 ? p + (std::countr_zero(crs) >> 3) : nullptr;
      for (; commas != 0; commas &= commas - 1) {
        char* c = p + (std::countr_zero(commas) >> 3);
        if (cr != nullptr && c > cr) break;
        if (*c != ',') continue;
        fields.emplace_back(field_start, static_cast<std::size_t>(c - field_start));
        field_start = c + 1;
      }
      if (cr != nullptr) return at_cr(cr);
      if (newlines != 0) {
        char* const newline = p + (std::countr_zero(newlines) >> 3);
        return finish(newline, newline);
      }
    }
    for (; p < stop; ++p) {
      const char c = *p;
      if (c == '\n') return finish(p, p);
      seen |= static_cast<unsigned char>(c);
      nul |= c == '\0';
      if (c == ',') {
        fields.emplace_back(field_start, static_cast<std::size_t>(p - field_start));
        field_start = p + 1;
      } else if (c == '"') {
        return plain_split::has_quote;
      } else if (c == '\r') {
        return at_cr(p);
      }
    }
    if (!eof_) return plain_split::more;
    return finish(stop, stop);
  }

  // A CR at `cr`: a quote later in the record sends it to split() (which refuses the
  // CR there too, or keeps it inside quotes); else `fields` counts the fields up to it.
  static plain_split bare_cr_at(char* first, char* cr, char* last, std::vector<std::string_view>& fields) {
    if (std::memchr(cr, '"', static_cast<std::size_t>(last - cr)) != nullptr) return plain_split::has_quote;
    fields.assign(static_cast<std::size_t>(std::count(first, cr, ',')) + 1, std::string_view());
    return plain_split::bare_cr;
  }

 public:
  // Whether the last record is plain ASCII without NUL bytes (no name check needed).
  bool plain_text() const noexcept { return plain_text_; }

 private:
  void split(char* first, char* last, std::vector<std::string_view>& fields) {
    plain_text_ = false;
    fields.clear();
    char* q = first;
    for (;;) {
      if (q < last && *q == '"') {
        // The field is its bytes in place until a doubled quote; from the first one on,
        // it is unescaped: in place in the reader's own buffer (the writer never passes
        // the reader), in a copy when the bytes are not the reader's (a file read whole,
        // whose bytes stay as the file has them, to be read again for an error's
        // message). A field without one is not copied or written to.
        char* const start = q + 1;
        char* text = start;
        char* r = start;
        char* w = nullptr;
        for (;;) {
          if (r == last) fail("unterminated quoted field");
          if (*r == '"') {
            if (r + 1 < last && r[1] == '"') {
              if (w == nullptr) {
                // The bytes before, and this quote, are the field's so far.
                const auto kept = static_cast<std::size_t>(r + 1 - start);
                if (external_ != nullptr) {
                  const auto room = static_cast<std::size_t>(last - start);
                  copies_.push_back(std::make_unique_for_overwrite<char[]>(room));
                  text = copies_.back().get();
                  std::memcpy(text, start, kept);
                }
                w = text + kept;
              } else {
                *w++ = '"';
              }
              r += 2;
              continue;
            }
            break;
          }
          if (w != nullptr) *w++ = *r;
          ++r;
        }
        fields.emplace_back(text, static_cast<std::size_t>((w != nullptr ? w : r) - text));
        ++r;  // past the closing quote
        if (r == last) return;
        if (*r != ',') fail("unexpected character after a closing quote in field " + std::to_string(fields.size()));
        q = r + 1;
        continue;
      }
      // An unquoted field: one loop to its end (fields are short: no library call).
      char* field_end = q;
      bool quote = false;
      bool cr = false;
      for (; field_end < last && *field_end != ','; ++field_end) {
        quote |= *field_end == '"';
        cr |= *field_end == '\r';
      }
      if (quote) fail("double quote inside an unquoted field " + std::to_string(fields.size() + 1));
      if (cr) fail("carriage return (CR) outside quotes in field " + std::to_string(fields.size() + 1));
      fields.emplace_back(q, static_cast<std::size_t>(field_end - q));
      if (field_end == last) return;
      q = field_end + 1;
    }
  }

  void skip_bom() {
    if (bom_checked_) return;
    while (size_ - begin_ < 3 && fill()) {
    }
    bom_checked_ = true;
    if (size_ - begin_ >= 3 && std::memcmp(data() + begin_, "\xEF\xBB\xBF", 3) == 0) begin_ += 3;
  }

  // Reads more input after the unread bytes; false at end of input.
  bool fill() {
    if (eof_) return false;
    const std::size_t unread = size_ - begin_;
    if (begin_ > 0) {
      std::memmove(buffer_.data(), buffer_.data() + begin_, unread);
      begin_ = 0;
      size_ = unread;
    }
    if (size_ == buffer_.size()) {
      if (buffer_.size() >= record_bytes_max) {
        record_line_ = next_line_;
        fail("record longer than " + std::to_string(record_bytes_max >> 20) + " MiB");
      }
      buffer_.resize(buffer_.size() * 2);
    }
    for (;;) {
      const ssize_t got = ::read(fd_, buffer_.data() + size_, buffer_.size() - size_);
      if (got < 0) {
        if (errno == EINTR) continue;
        throw input_error(source_, next_line_, system_reason("read failed", errno));
      }
      if (got == 0) {
        eof_ = true;
      } else {
        size_ += static_cast<std::size_t>(got);
        saw_bytes_ = true;
      }
      return true;
    }
  }

  char* data() noexcept { return external_ != nullptr ? external_ : buffer_.data(); }
  const char* data() const noexcept { return external_ != nullptr ? external_ : buffer_.data(); }

  std::string source_;
  int fd_ = -1;
  char* external_ = nullptr;  // the bytes read in place, when not the buffer
  std::vector<char> buffer_;
  std::size_t begin_ = 0;  // unread bytes are [begin_, size_)
  std::size_t size_ = 0;
  bool eof_ = false;
  bool bom_checked_ = false;
  bool saw_bytes_ = false;
  bool plain_text_ = false;
  std::size_t size_hint_ = 0;
  std::uint64_t next_line_ = 1;
  std::uint64_t record_line_ = 0;
  std::vector<std::unique_ptr<char[]>> copies_;  // fields unescaped out of bytes not the reader's
};

// Parses an int64 field exactly: an optional '-' and decimal digits, nothing else.
std::int64_t parse_int(const record_reader& in, std::string_view field, const char* name) {
  // Fast path: an optional '-' and at most 18 digits cannot leave int64.
  const std::size_t sign = !field.empty() && field[0] == '-' ? 1 : 0;
  const std::size_t digits = field.size() - sign;
  if (digits >= 1 && digits <= 18) {
    std::uint64_t value = 0;  // unsigned: garbage may wrap before it is rejected
    bool plain = true;
    for (std::size_t i = sign; i < field.size(); ++i) {
      const auto d = static_cast<unsigned>(static_cast<unsigned char>(field[i]) - '0');
      plain &= d <= 9;
      value = value * 10 + d;
    }
    if (plain) {
      const auto v = static_cast<std::int64_t>(value);  // < 10^18
      return sign != 0 ? -v : v;
    }
  }
  if (field.empty()) in.fail(std::string("missing ") + name);
  std::int64_t value = 0;
  const auto [ptr, ec] = std::from_chars(field.data(), field.data() + field.size(), value);
  if (ec == std::errc::result_out_of_range) in.fail(std::string(name) + " out of int64 range");
  if (ec != std::errc() || ptr != field.data() + field.size()) {
    in.fail(std::string(name) + " is not an integer: " + detail::shown(field));
  }
  return value;
}

// Names (accounts, credit ids) are kept byte for byte, so they must be text: non-empty
// UTF-8 without NUL bytes (detail::name_problem). Event names are checked where every
// event is validated (event_table::add, use); query and account-list names here.
void check_name(const record_reader& in, std::string_view field, const char* name) {
  if (!field.empty() && in.plain_text()) return;  // the whole record is ASCII without NUL
  if (std::string problem = detail::name_problem(field, name); !problem.empty()) in.fail(std::move(problem));
}

// Reads and checks the header line, field by field after unquoting (SPEC section 7).
void expect_header(record_reader& in, std::vector<std::string_view>& fields, std::string_view header) {
  if (!in.next(fields)) {
    throw input_error(in.source(), in.saw_bytes() ? 1 : 0, "missing header line '" + std::string(header) + "'");
  }
  std::vector<std::string_view> expected;
  for (std::size_t from = 0;;) {
    const std::size_t comma = header.find(',', from);
    expected.push_back(header.substr(from, comma == std::string_view::npos ? std::string_view::npos : comma - from));
    if (comma == std::string_view::npos) break;
    from = comma + 1;
  }
  // Both headers field by field, in full (each field shown as errors show fields), so
  // that the difference can be seen whatever the header's length.
  auto listed = [](const std::vector<std::string_view>& list) {
    std::string text;
    const std::size_t shown_max = 16;
    for (std::size_t i = 0; i < std::min(list.size(), shown_max); ++i) text += (i == 0 ? "" : " | ") + detail::shown(list[i]);
    if (list.size() > shown_max) text += " | ... (" + std::to_string(list.size()) + " fields)";
    return text;
  };
  const std::string both = " (read: " + listed(fields) + "; expected: " + listed(expected) + ")";
  for (std::size_t i = 0; i < std::max(fields.size(), expected.size()); ++i) {
    const std::string which = "bad header: field " + std::to_string(i + 1);
    if (i >= fields.size()) in.fail(which + " is missing, expected '" + std::string(expected[i]) + "'" + both);
    if (i >= expected.size()) in.fail(which + " " + detail::shown(fields[i]) + " is extra" + both);
    if (fields[i] != expected[i]) {
      in.fail(which + " is " + detail::shown(fields[i]) + ", expected '" + std::string(expected[i]) + "'" + both);
    }
  }
}

void expect_field_count(const record_reader& in, const std::vector<std::string_view>& fields,
                        std::size_t count) {
  if (fields.size() != count) {
    in.fail("expected " + std::to_string(count) + " fields, got " + std::to_string(fields.size()));
  }
}

// The event records after the header, into `table`.
void read_event_records(record_reader& in, event_table& table, expiration_form form) {
  std::vector<std::string_view> fields;
  // Columns sized once, from the line length seen in the first buffer: regrowing them
  // would copy every column several times over.
  table.reserve(std::min<std::size_t>(in.records_estimate() * 21 / 20, events_max));
  // Records are parsed one by one and applied to the table a group at a time, the
  // group's name lookups prefetched together (dictionary::prefetch), where the reader's
  // views outlive the next record. The first bad record is still the one reported: a
  // record that fails to parse first applies the records before it, whose own errors
  // come first.
  struct parsed {
    op kind;
    std::string_view account;
    std::string_view label;
    timestamp_t at;
    std::int64_t amount;  // the rate of a run
    std::int64_t sixth;   // an add's end (expiration applied), a run's tick count
    std::uint64_t line;
  };
  constexpr std::size_t group_max = 32;
  const std::size_t group = in.views_stable() ? group_max : 1;
  parsed pending[group_max];
  std::string_view accounts[group_max];
  std::string_view labels[group_max];
  std::size_t count = 0;
  auto flush = [&] {
    if (count > 1) {
      std::size_t labelled = 0;
      for (std::size_t k = 0; k < count; ++k) {
        accounts[k] = pending[k].account;
        if (pending[k].kind != op::use) labels[labelled++] = pending[k].label;
      }
      table.accounts.prefetch(std::span<const std::string_view>(accounts, count));
      table.credit_labels.prefetch(std::span<const std::string_view>(labels, labelled));
    }
    const std::size_t n = count;
    count = 0;  // nothing is applied twice, even when a record below throws
    for (std::size_t k = 0; k < n; ++k) {
      const parsed& e = pending[k];
      switch (e.kind) {
        case op::add:
          table.add(e.account, e.label, e.at, e.amount, e.sixth, e.line);
          break;
        case op::use:
          table.use(e.account, e.at, e.amount, e.line);
          break;
        case op::run:
          table.run(e.account, e.label, e.at, e.amount, e.sixth, e.line);
          break;
      }
    }
  };
  for (;;) {
    parsed& e = pending[count];
    try {
      // A record that cannot be read at all (a stray quote, a bare CR) is a bad record
      // like any other: the records before it are applied first.
      if (!in.next(fields)) break;
      expect_field_count(in, fields, 6);
      const std::optional<op> kind = detail::parse_op(fields[0]);
      if (!kind) in.fail("unknown op " + detail::shown(fields[0]));
      e = parsed{*kind, fields[1], fields[2], parse_int(in, fields[3], "timestamp"), 0, 0, in.line()};
      switch (*kind) {
        case op::add:
          e.amount = parse_int(in, fields[4], "amount");
          e.sixth = detail::expiration_of(e.at, parse_int(in, fields[5], "expiration"), form, in.source(), in.line());
          break;
        case op::use:
          e.amount = parse_int(in, fields[4], "amount");
          if (!fields[5].empty()) in.fail("use takes no expiration (got " + detail::shown(fields[5]) + ")");
          break;
        case op::run:  // credit_id: the job id; amount: the rate; expiration: the tick count
          e.amount = parse_int(in, fields[4], "rate");
          e.sixth = parse_int(in, fields[5], "ticks");
          break;
      }
    } catch (...) {
      flush();  // an earlier record's error, if any, is the one reported
      throw;
    }
    if (++count == group) flush();
  }
  flush();
}

void read_query_records(record_reader& in, query_batch& batch) {
  std::vector<std::string_view> fields;
  const std::size_t estimate = in.records_estimate() * 21 / 20;
  batch.account.reserve(estimate);
  batch.timestamp.reserve(estimate);
  // Records are interned a group at a time, the group's table lookups prefetched
  // together (dictionary::prefetch), where the reader's views outlive the next record.
  constexpr std::size_t group_max = 32;
  const std::size_t group = in.views_stable() ? group_max : 1;
  std::string_view names[group_max];
  timestamp_t times[group_max];
  std::size_t pending = 0;
  account_index indices[group_max];
  auto flush = [&] {
    const std::size_t n = pending;
    pending = 0;  // nothing is interned twice, even when interning throws
    batch.accounts.intern_all(std::span<const std::string_view>(names, n), indices);
    batch.account.insert(batch.account.end(), indices, indices + n);
    batch.timestamp.insert(batch.timestamp.end(), times, times + n);
  };
  for (;;) {
    try {
      if (!in.next_name_and_int(names[pending], times[pending])) {
        if (!in.next(fields)) break;
        expect_field_count(in, fields, 2);
        check_name(in, fields[0], "account");
        names[pending] = fields[0];
        times[pending] = parse_int(in, fields[1], "timestamp");
      }
    } catch (...) {
      flush();  // the records before a bad one first (interning them can fail too)
      throw;
    }
    if (++pending == group) flush();
  }
  flush();
}

// ---- parsing on every core ------------------------------------------------------------
//
// A regular file of at least parallel_min_bytes is read whole; after its header the
// bytes are cut at record boundaries into one part per core, each parsed by its own
// reader into its own table, and the tables are joined in order (event_table::join).
// A cut is placed at the first newline past the part's nominal start that is outside
// quotes: the quotes before it are counted on every core first, and their parity says
// whether a byte is inside a quoted field (each quote of valid CSV opens or closes one).
// A stray quote can mislead only the cuts after it, and the record holding it is
// refused. The parts' error is not reported as it is: a misled cut can fall inside that
// very record, and the part before it then fails with another message. On any error
// the records are read again in one pass, and its first error is the one reported, as
// when the file is streamed (the parts leave the bytes as the file has them).

// Files smaller than this are read in one pass (GPUCREDIT_CSV_PARALLEL_MIN overrides it:
// the tests force the parallel path on small files).
std::size_t parallel_min_bytes() { return detail::env_positive("GPUCREDIT_CSV_PARALLEL_MIN", std::size_t{8} << 20); }

struct part_bytes {
  char* first;
  char* last;
  std::uint64_t first_line;
};

// How many bytes of [first, last) equal `a`, and how many `b`: 16 bytes a step into
// 8-bit lane counters (vector extensions: SSE2 on x86-64, NEON on ARM), the lanes summed
// before one can wrap. A file's bytes are counted at memory speed.
struct byte_counts {
  std::size_t a = 0;
  std::size_t b = 0;
};
byte_counts count_bytes(const char* first, const char* last, char a, char b) {
  using lanes = unsigned char __attribute__((vector_size(16)));
  using matches = signed char __attribute__((vector_size(16)));
  byte_counts out;
  lanes want_a{};
  lanes want_b{};
  for (int i = 0; i < 16; ++i) {
    want_a[i] = static_cast<unsigned char>(a);
    want_b[i] = static_cast<unsigned char>(b);
  }
  const char* p = first;
  while (last - p >= 16) {
    lanes count_a{};
    lanes count_b{};
    const char* const stop = p + std::min<std::ptrdiff_t>((last - p) / 16, 255) * 16;
    for (; p < stop; p += 16) {
      lanes x;
      std::memcpy(&x, p, 16);
      // A match is -1 in every bit: as unsigned, 255; subtracting it adds 1.
      count_a -= __builtin_convertvector(static_cast<matches>(x == want_a), lanes);
      count_b -= __builtin_convertvector(static_cast<matches>(x == want_b), lanes);
    }
    for (int i = 0; i < 16; ++i) {
      out.a += count_a[i];
      out.b += count_b[i];
    }
  }
  for (; p < last; ++p) {
    out.a += *p == a ? 1 : 0;
    out.b += *p == b ? 1 : 0;
  }
  return out;
}

std::vector<part_bytes> cut_records(char* first, char* last, std::uint64_t first_line) {
  const auto n = static_cast<std::size_t>(last - first);
  std::size_t parts = detail::env_positive("GPUCREDIT_CSV_PARTS", 0);
  if (parts == 0) parts = detail::part_count(n, std::size_t{1} << 22);
  parts = std::clamp<std::size_t>(parts, 1, std::max<std::size_t>(1, n));
  std::vector<char*> nominal(parts + 1);
  for (std::size_t k = 0; k <= parts; ++k) nominal[k] = first + n * k / parts;
  // One pass over the bytes, on every core: the quotes and the newlines of each nominal part.
  std::vector<byte_counts> counts(parts);
  detail::run_parts(parts, [&](std::size_t k) { counts[k] = count_bytes(nominal[k], nominal[k + 1], '"', '\n'); });
  std::vector<char*> cut(parts + 1, last);
  cut[0] = first;
  std::vector<std::uint64_t> line(parts, first_line);  // the line each cut starts
  std::size_t quotes_before = 0;                       // quotes before nominal[k]
  std::uint64_t newlines_before = 0;                   // newlines before nominal[k]
  for (std::size_t k = 1; k < parts; ++k) {
    quotes_before += counts[k - 1].a;
    newlines_before += counts[k - 1].b;
    bool inside = (quotes_before & 1) != 0;
    char* c = std::max(nominal[k], cut[k - 1]);
    if (c != nominal[k]) {  // the previous cut passed this one's start: recount from there
      inside = (static_cast<std::size_t>(std::count(first, c, '"')) & 1) != 0;
    }
    for (; c < last; ++c) {
      if (*c == '"') {
        inside = !inside;
      } else if (*c == '\n' && !inside) {
        ++c;
        break;
      }
    }
    cut[k] = c;
    line[k] = first_line + newlines_before + static_cast<std::uint64_t>(std::count(nominal[k], c, '\n'));
  }
  std::vector<part_bytes> out(parts);
  for (std::size_t k = 0; k < parts; ++k) out[k] = {cut[k], cut[k + 1], line[k]};
  return out;
}

input_error shrank_error(const std::string& source) {
  return input_error(source, 0, "the file shrank while it was being read (changed by another program?); read it again");
}

// Parses the records after `head`'s header in `bytes` on every core: read_part(reader,
// table) per part, then Table::join.
template <class Table, class ReadPart>
Table parse_parts(record_reader& head, file_bytes& bytes, ReadPart read_part) {
  const std::vector<part_bytes> cuts =
      cut_records(bytes.data() + head.offset(), bytes.data() + bytes.size, head.next_line());
  std::vector<Table> tables(cuts.size());
  // The first part's table takes the others' rows at the join: room for every row,
  // reserved now, is address space until written.
  if (cuts.size() > 1) tables[0].reserve(std::min<std::size_t>(head.records_estimate() * 21 / 20, events_max));
  try {
    detail::run_parts(cuts.size(), [&](std::size_t k) {
      record_reader in(cuts[k].first, cuts[k].last, head.source(), cuts[k].first_line, false);
      read_part(in, tables[k]);
    });
  } catch (const input_error&) {
    // The cuts follow the parity of the quotes, which a stray quote breaks: a cut can
    // then fall inside a record as one pass reads it, and the part before the cut fails
    // on that record with another message (an unterminated quote rather than the stray
    // quote). So, on an error, the records are read again in one pass (the bytes are as
    // the file has them: the parts unescape into copies), whose first error is the one
    // reported, as when the file is streamed.
    if (cuts.size() > 1 && !bytes.shrank()) {
      tables = {};
      record_reader one(cuts.front().first, cuts.back().last, head.source(), cuts.front().first_line,
                        false);
      Table table;
      read_part(one, table);
    }
    throw;
  }
  if (bytes.shrank()) throw shrank_error(head.source());
  bytes = file_bytes{};  // the names are copied into the tables' dictionaries
  return Table::join(std::move(tables));
}

// Reads a file read whole: `read(bytes)` parses it. A mapped file that shrank while it
// was read is reported as such, not as whatever the zeros read past its new end made of
// it (a bad record, a missing header).
template <class Read>
auto read_whole_file(file_bytes& bytes, const std::string& source, Read read) {
  try {
    return read();
  } catch (const input_error&) {
    if (bytes.shrank()) throw shrank_error(source);
    throw;
  }
}

event_table read_events_from(record_reader& in, expiration_form form) {
  event_table table;
  table.source = in.source();
  std::vector<std::string_view> fields;
  expect_header(in, fields, events_header);
  read_event_records(in, table, form);
  return table;
}

query_batch read_queries_from(record_reader& in) {
  query_batch batch;
  std::vector<std::string_view> fields;
  expect_header(in, fields, queries_header);
  read_query_records(in, batch);
  return batch;
}

}  // namespace

std::vector<std::string> read_accounts(const std::filesystem::path& path) {
  record_reader in(path, source_name(path));
  std::vector<std::string> names;
  std::vector<std::string_view> fields;
  expect_header(in, fields, "account");
  while (in.next(fields)) {
    expect_field_count(in, fields, 1);
    check_name(in, fields[0], "account");
    names.emplace_back(fields[0]);
  }
  return names;
}

event_table read_events(const std::filesystem::path& path, expiration_form form) {
  record_reader in(path, source_name(path));
  file_bytes bytes;
  if (!in.read_whole(parallel_min_bytes(), bytes)) return read_events_from(in, form);
  return read_whole_file(bytes, in.source(), [&] {
    record_reader head(bytes.data(), bytes.data() + bytes.size, in.source(), 1, true);
    std::vector<std::string_view> fields;
    expect_header(head, fields, events_header);
    return parse_parts<event_table>(head, bytes, [&](record_reader& part, event_table& table) {
      table.source = part.source();
      read_event_records(part, table, form);
    });
  });
}

event_table parse_events(std::string_view text, std::string source, expiration_form form) {
  record_reader in(text, std::move(source));
  return read_events_from(in, form);
}

query_batch read_queries(const std::filesystem::path& path) {
  record_reader in(path, source_name(path));
  file_bytes bytes;
  if (!in.read_whole(parallel_min_bytes(), bytes)) return read_queries_from(in);
  return read_whole_file(bytes, in.source(), [&] {
    record_reader head(bytes.data(), bytes.data() + bytes.size, in.source(), 1, true);
    std::vector<std::string_view> fields;
    expect_header(head, fields, queries_header);
    return parse_parts<query_batch>(head, bytes, [](record_reader& part, query_batch& batch) {
      read_query_records(part, batch);
    });
  });
}

query_batch parse_queries(std::string_view text, std::string source) {
  record_reader in(text, std::move(source));
  return read_queries_from(in);
}

// ---- writer ---------------------------------------------------------------------

namespace {

// Appends `text` as a CSV field: quoted only when it holds a comma, a quote, CR or LF.
void append_field(std::string& out, std::string_view text) {
  if (text.find_first_of(",\"\r\n") == std::string_view::npos) {
    out.append(text);
    return;
  }
  out += '"';
  for (const char c : text) {
    if (c == '"') out += '"';
    out += c;
  }
  out += '"';
}

// Writes all of `bytes` to `fd` at its current position; `name` names the destination
// in errors.
void write_fully(int fd, std::string_view bytes, const std::string& name) {
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t wrote = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (wrote < 0) {
      if (errno == EINTR) continue;
      throw io_error(name + ": " + system_reason("write failed", errno));
    }
    done += static_cast<std::size_t>(wrote);
  }
}

}  // namespace

csv_writer::csv_writer(int fd, std::string name, bool write_back_early)
    : fd_(fd), name_(std::move(name)), write_back_(write_back_early) {
  buffer_.reserve(chunk_bytes + 4096);
}

void csv_writer::write_out(std::string_view bytes) {
  write_fully(fd_, bytes, name_);
  if (!write_back_) return;
  constexpr std::size_t write_back_bytes = std::size_t{8} << 20;
  not_written_back_ += bytes.size();
  if (not_written_back_ < write_back_bytes) return;
  not_written_back_ = 0;
#if defined(__linux__)
  // Offset 0, length 0: every dirty page of the file; those already on their way are not
  // dirty any more. Refused (not a regular file, an old kernel): stop asking.
  if (::sync_file_range(fd_, 0, 0, SYNC_FILE_RANGE_WRITE) != 0) write_back_ = false;
#else
  write_back_ = false;
#endif
}

csv_writer::~csv_writer() = default;

void csv_writer::separator() {
  if (row_started_) buffer_ += ',';
  row_started_ = true;
}

void csv_writer::field(std::string_view text) {
  separator();
  append_field(buffer_, text);
}

void csv_writer::field(std::int64_t value) {
  separator();
  char digits[20];  // "-9223372036854775808"
  buffer_.append(digits, static_cast<std::size_t>(format_int(digits, value) - digits));
}

void csv_writer::total_field(total_t value) {
  separator();
  buffer_.append(to_decimal(value));
}

void csv_writer::empty_field() { separator(); }

void csv_writer::raw(std::string_view text) { buffer_.append(text); }

void csv_writer::end_row() {
  buffer_ += '\n';
  row_started_ = false;
  flush_if_full();
}

void csv_writer::flush_if_full() {
  if (buffer_.size() >= chunk_bytes) finish();
}

void csv_writer::finish() {
  write_out(buffer_);
  buffer_.clear();
}

void csv_writer::raw_block(std::string_view text) {
  finish();
  write_out(text);
}

struct balances_writer::state {
  csv_writer& out;
  const query_batch& queries;
  std::string names;                // each distinct name's field (quoted when needed) and its comma
  std::vector<std::size_t> name_at;  // where each name's field begins in `names`
  std::size_t next_row = 0;          // the query the next write() starts at
  std::vector<file_bytes> text;      // the round being formatted, a block per core
  std::vector<std::size_t> used;
  std::vector<file_bytes> text_out;  // the round being written
  std::vector<std::size_t> used_out;
  background_writer writer;
};

namespace {
constexpr std::size_t short_name = 32;  // names this short are copied as a fixed 32 bytes
}  // namespace

balances_writer::balances_writer(csv_writer& out, const query_batch& queries)
    : state_(new state{out, queries, {}, std::vector<std::size_t>(queries.accounts.size() + 1, 0), 0, {}, {}, {}, {}, {}}) {
  out.raw(balances_header);
  out.end_row();
  // Each distinct name's field and its comma, made once.
  for (std::uint32_t a = 0; a < queries.accounts.size(); ++a) {
    append_field(state_->names, queries.accounts[a]);
    state_->names += ',';
    state_->name_at[a + 1] = state_->names.size();
  }
  state_->names.append(short_name, '\0');  // the last name's fixed-size copy reads no further
}

balances_writer::~balances_writer() = default;

void balances_writer::finish() { state_->writer.wait(); }

void balances_writer::write(std::span<const amount_t> balances) {
  state& s = *state_;
  // Rows are formatted a block at a time on every core, straight into each block's
  // buffer (no locale, no stream), and written in order: each round formats up to one
  // block per core (64 Ki rows each, a few MB: still in cache when the kernel copies
  // them) while one thread writes the round before. (The kernel serializes writes to
  // one file: the writes of a round are not split between threads.)
  constexpr std::size_t block_rows = std::size_t{1} << 16;
  constexpr std::size_t digits_max = 20;  // "-9223372036854775808"
  const std::size_t n = balances.size();
  const std::size_t offset = s.next_row;
  s.next_row += n;
  const std::size_t blocks = (n + block_rows - 1) / block_rows;
  const std::size_t per_round = std::max<std::size_t>(1, detail::part_count(n, block_rows));
  if (s.text.size() < per_round) {
    s.text.resize(per_round);
    s.used.resize(per_round);
    s.text_out.resize(per_round);
    s.used_out.resize(per_round);
  }
  for (std::size_t first = 0; first < blocks; first += per_round) {
    const std::size_t round = std::min(per_round, blocks - first);
    detail::run_parts(round, [&](std::size_t k) {
      const std::size_t begin = (first + k) * block_rows;
      const std::size_t end = std::min(n, begin + block_rows);
      std::size_t bound = (end - begin) * (2 * digits_max + 2);  // the block's bytes at most
      for (std::size_t i = begin; i < end; ++i) {
        const account_index a = s.queries.account[offset + i];
        bound += s.name_at[a + 1] - s.name_at[a];
      }
      s.text[k].resize(bound + short_name);
      char* w = s.text[k].data();
      // Locals: stores through w may alias anything, and the loop should not reload the
      // vectors' pointers after each one.
      const char* const name_text = s.names.data();
      const std::size_t* const at = s.name_at.data();
      const std::uint32_t* const account = s.queries.account.data() + offset;
      const timestamp_t* const timestamp = s.queries.timestamp.data() + offset;
      const amount_t* const balance = balances.data();
      for (std::size_t i = begin; i < end; ++i) {
        // Rows name their accounts in any order: a row's offsets and name are fetched
        // ahead (16 and 8 rows), once the table is larger than the cache keeps close.
        if (i + 16 < end) {
          __builtin_prefetch(at + account[i + 16]);
          __builtin_prefetch(name_text + at[account[i + 8]]);
        }
        const std::uint32_t a = account[i];
        const std::size_t length = at[a + 1] - at[a];
        // A short name is copied as a fixed 32 bytes (two moves, no call); what it copies
        // past the name is overwritten by the fields after it or lies in the slack.
        if (length <= short_name) {
          std::memcpy(w, name_text + at[a], short_name);
        } else {
          std::memcpy(w, name_text + at[a], length);
        }
        w += length;
        w = format_int(w, timestamp[i]);
        *w++ = ',';
        if (balance[i] != 0) w = format_int(w, balance[i]);
        *w++ = '\n';
      }
      s.used[k] = static_cast<std::size_t>(w - s.text[k].data());
    });
    s.writer.wait();  // the round before is written: its buffers are free
    std::swap(s.text, s.text_out);
    std::swap(s.used, s.used_out);
    s.writer.start([&out = s.out, &text_out = s.text_out, &used_out = s.used_out, round] {
      for (std::size_t k = 0; k < round; ++k) out.raw_block({text_out[k].data(), used_out[k]});
    });
  }
}

void write_balances(csv_writer& out, const query_batch& queries, std::span<const amount_t> balances) {
  balances_writer rows(out, queries);
  rows.write(balances);
  rows.finish();
}

void write_intervals(csv_writer& out, const event_table& events, const interval_table& intervals) {
  // One rule for every writer: a ledger with jobs gets the slope column (SPEC section
  // 10), a ledger without keeps the section 5 columns.
  const bool slopes = events.has_jobs() || intervals.has_slopes();
  out.raw(slopes ? intervals_slope_header : intervals_header);
  out.end_row();
  for (std::size_t i = 0; i < intervals.size(); ++i) {
    out.field(events.accounts[intervals.account[i]]);
    out.field(events.credit_label(intervals.credit[i]));
    out.field(intervals.begin[i]);
    out.field(intervals.end[i]);
    out.field(intervals.amount[i]);
    if (slopes) out.field(intervals.slope_of(i));
    out.end_row();
  }
}

}  // namespace gpucredit
