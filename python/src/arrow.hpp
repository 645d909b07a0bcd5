// Reading and writing Arrow data through the C data and C stream interfaces, with no
// Arrow library: the binding takes columns from any producer (pyarrow, Polars, pandas,
// DuckDB) and hands results back the same way, its own buffers lent, not copied.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "arrow_abi.h"

namespace gpucredit::arrow {

// ---- owning handles ---------------------------------------------------------------

/// Owns one C structure of the interface (ArrowSchema, ArrowArray, ArrowArrayStream):
/// releases it on destruction unless it was released or moved from (release == null).
template <class T>
struct owned {
  T raw{};
  owned() = default;
  owned(const owned&) = delete;
  owned& operator=(const owned&) = delete;
  ~owned() {
    if (raw.release != nullptr) raw.release(&raw);
  }
};
using owned_schema = owned<ArrowSchema>;
using owned_array = owned<ArrowArray>;
using owned_stream = owned<ArrowArrayStream>;

// ---- types --------------------------------------------------------------------------

/// What a column holds, read off its format string (and its dictionary's).
struct column_type {
  enum class kind : std::uint8_t { integer, string, null, other };
  kind what = kind::other;
  char physical = 0;  ///< integer: the storage code c C s S i I l L, or f g for float32/64
                      ///< holding whole numbers; string: u U v
  char time = 0;      ///< integer: 't' timestamp, 'D' duration, 0 plain integer
  char unit = 0;      ///< time unit: s m u n (seconds, milli, micro, nano)
  std::string zone;   ///< timestamp time zone, as the format gives it
  bool dictionary = false;
  char index = 0;      ///< dictionary index code (an integer code)
  std::string format;  ///< the format string, as given (of the values for a dictionary)

  bool is_integer() const noexcept { return what == kind::integer; }
  bool is_string() const noexcept { return what == kind::string; }
  bool is_null_type() const noexcept { return what == kind::null; }  ///< every row null
};

/// Parses the type of `schema`; kind::other when gpucredit cannot read it.
column_type parse_type(const ArrowSchema& schema);

/// A short human name of a type, for error messages: "int64", "string",
/// "timestamp[us, tz=UTC]", "dictionary<int32, string>", or the raw format.
std::string describe(const ArrowSchema& schema);

/// "timestamp[us]"-style unit name: s, ms, us, ns.
std::string_view unit_name(char unit) noexcept;

// ---- reading ------------------------------------------------------------------------

/// Why an integer could not be read.
enum class int_problem : std::uint8_t { none, out_of_range, not_integer };

/// Random access to one column of one chunk of a supported type.
class column_view {
 public:
  column_view(const ArrowArray& array, column_type type);

  std::int64_t size() const noexcept { return array_->length; }
  /// Whether row `i` holds no value (null; NaN in a float column).
  bool is_null(std::int64_t i) const noexcept;
  /// The integer at `i` (not null). Sets `problem` for a value beyond int64 and for a
  /// float that is not a whole number.
  std::int64_t integer(std::int64_t i, int_problem& problem) const noexcept;
  /// The text at `i` (not null; through the dictionary for a dictionary column).
  std::string_view text(std::int64_t i) const noexcept;

  // Dictionary columns: the row's index, and the values.
  bool is_dictionary() const noexcept { return type_.dictionary; }
  std::int64_t dictionary_index(std::int64_t i) const noexcept;
  std::int64_t dictionary_size() const noexcept { return array_->dictionary->length; }
  bool dictionary_null(std::int64_t k) const noexcept;
  std::string_view dictionary_text(std::int64_t k) const noexcept;

  /// Whether some row may be null (false: none is).
  bool may_have_nulls() const noexcept;
  /// The raw values buffer (buffers[1]: the codes of a dictionary column) and the
  /// chunk's offset into it.
  const void* data() const noexcept { return array_->buffers[1]; }
  std::int64_t offset() const noexcept { return array_->offset; }
  char index_code() const noexcept { return type_.index; }

  /// For an int64-stored column with no nulls: its values in place; else nullptr.
  const std::int64_t* int64_values() const noexcept;

 private:
  static std::int64_t read_integer(const ArrowArray& a, char code, std::int64_t i,
                                   int_problem& problem) noexcept;
  static std::string_view read_text(const ArrowArray& a, char code, std::int64_t i) noexcept;
  static bool read_null(const ArrowArray& a, std::int64_t i) noexcept;

  const ArrowArray* array_;
  column_type type_;
};

// ---- writing ------------------------------------------------------------------------

/// One array to hand out: its buffers, and what keeps them alive.
struct array_data {
  std::int64_t length = 0;
  std::int64_t null_count = 0;
  std::vector<const void*> buffers;
  std::vector<std::shared_ptr<const void>> owners;
  std::vector<std::shared_ptr<const array_data>> children;
  std::shared_ptr<const array_data> dictionary;
};

/// One field's type to hand out.
struct field_spec {
  std::string name;
  std::string format;
  std::int64_t flags = 0;
  std::vector<field_spec> children;
  std::shared_ptr<const field_spec> dictionary;
};

/// Fills `out` with a schema that owns a copy of `spec`.
void export_schema(const field_spec& spec, ArrowSchema* out);
/// Fills `out` with an array that keeps `data` (and so its buffers) alive until released.
void export_array(std::shared_ptr<const array_data> data, ArrowArray* out);
/// Fills `out` with a stream of the struct `schema`, yielding `batches` in order.
void export_stream(field_spec schema, std::vector<std::shared_ptr<const array_data>> batches,
                   ArrowArrayStream* out);

/// An int64 column over `values` (kept alive by `owner`), nulls where `validity` says
/// so (null: no nulls).
std::shared_ptr<array_data> int64_column(
    const std::int64_t* values, std::int64_t length, std::shared_ptr<const void> owner,
    std::shared_ptr<const std::vector<std::uint8_t>> validity = nullptr,
    std::int64_t null_count = 0);

/// A string column holding `names` in order, and its format ("u", or "U" past 2 GiB).
std::pair<std::shared_ptr<array_data>, std::string> string_column(
    const std::vector<std::string_view>& names);

}  // namespace gpucredit::arrow
