// gpucredit._core (internal to the binding): what its files share. errors.cpp turns
// library errors into the package's Python exceptions and reads arguments;
// capsules.cpp takes and makes the Arrow PyCapsules; arrow_events.cpp reads events
// from an Arrow stream into a ledger; queries.cpp reads query inputs (names, times);
// results.cpp lends answers and tables out; module.cpp holds the bindings alone.
#pragma once

#include <nanobind/nanobind.h>
#include <nanobind/ndarray.h>
#include <nanobind/stl/optional.h>
#include <nanobind/stl/string.h>
#include <nanobind/stl/string_view.h>
#include <nanobind/stl/tuple.h>
#include <nanobind/stl/vector.h>

#include <algorithm>
#include <bit>
#include <cstring>
#include <limits>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "arrow.hpp"
#include "gpucredit/csv.hpp"
#include "cpu/memory.hpp"
#include "cpu/parallel.hpp"
#include "gpucredit/engine.hpp"
#include "cpu/io/validate.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/events.hpp"
#include "gpucredit/gpu_credit.hpp"
#include "gpucredit/ledger.hpp"
#include "gpucredit/report.hpp"
#include "gpucredit/version.hpp"

namespace nb = nanobind;
namespace gc = gpucredit;
namespace ar = gpucredit::arrow;

namespace gpucredit::python {

/// The accounts of a batch of queries, resolved: every row written by the resolver (no
/// zeros written first).
using account_column = std::vector<gc::account_index, gc::detail::uninitialized_allocator<gc::account_index>>;

// ---- errors and arguments (errors.cpp) ----------------------------------------------

/// Bad input at a row of an Arrow source (0-based, over the whole stream).
class row_error : public gc::error {
 public:
  row_error(std::string source, std::uint64_t row, std::string reason)
      : gc::error(source + ": row " + std::to_string(row) + ": " + reason),
        source_(std::move(source)),
        row_(row),
        reason_(std::move(reason)) {}
  const std::string& source() const noexcept { return source_; }
  std::uint64_t row() const noexcept { return row_; }
  const std::string& reason() const noexcept { return reason_; }

 private:
  std::string source_;
  std::uint64_t row_;
  std::string reason_;
};

/// Message text as a Python str (bytes that are not UTF-8 become \xNN escapes).
nb::object text(const std::string& s);
/// Translates the library's exceptions into gpucredit._errors' (registered once).
void translate(const std::exception_ptr& p, void* payload);
/// "drain" or "reject"; ValueError otherwise.
gc::overdraft_policy parse_policy(std::string_view name);
/// "duration" or "end" (what an add's expiration holds); ValueError otherwise.
gc::expiration_form parse_expiration_form(std::string_view name);
/// A Python integer (or anything with __index__) as int64; InputError past int64.
std::int64_t int64_arg(nb::handle value, const char* call, const char* name);

// ---- Arrow capsules (capsules.cpp) ---------------------------------------------------

/// Moves the C structure out of a PyCapsule of the Arrow PyCapsule interface, leaving
/// the capsule's copy released (its destructor then does nothing).
template <class T>
void take_capsule(nb::handle capsule, const char* name, T& into) {
  auto* raw = static_cast<T*>(PyCapsule_GetPointer(capsule.ptr(), name));
  if (raw == nullptr) throw nb::python_error();
  into = *raw;
  raw->release = nullptr;
}

template <class T>
void capsule_destructor(PyObject* capsule, const char* name) {
  auto* raw = static_cast<T*>(PyCapsule_GetPointer(capsule, name));
  if (raw == nullptr) {
    PyErr_Clear();
    return;
  }
  if (raw->release != nullptr) raw->release(raw);
  delete raw;
}

nb::object make_capsule(ArrowSchema* s);
nb::object make_capsule(ArrowArray* a);
nb::object make_capsule(ArrowArrayStream* s);

/// One column taken from an Arrow producer: its schema and its chunks.
struct arrow_column {
  ar::owned_schema schema;
  std::vector<std::unique_ptr<ar::owned_array>> chunks;
  std::int64_t length = 0;
};

/// The stream's last error, after `what`.
std::string stream_error(ArrowArrayStream& s, const char* what);
/// Reads a whole C stream (GIL released by the caller).
void read_stream(ArrowArrayStream& stream, ar::owned_schema& schema,
                 std::vector<std::unique_ptr<ar::owned_array>>& chunks);
/// The column `obj` exports through __arrow_c_array__ or __arrow_c_stream__, or null.
std::unique_ptr<arrow_column> import_column(nb::handle obj);

// ---- the ledger (arrow_events.cpp) ---------------------------------------------------

/// Everything a Ledger holds; shared with the Arrow arrays it lends out.
struct ledger_state {
  gc::event_table events;
  gc::ledger_result result;
  std::unique_ptr<gc::engine> engine;
  gc::overdraft_policy policy = gc::overdraft_policy::drain;
  gc::expiration_form expiration = gc::expiration_form::duration;  ///< what an add's expiration holds
  std::string time_format = "l";  ///< the Arrow type of times: "l", or "tsu:UTC" and the like
  bool arrow_source = false;      ///< rows, not lines, locate events

  /// s m u n for Arrow timestamps, 0 for plain integers.
  char time_unit() const noexcept { return time_format.starts_with("ts") ? time_format[2] : 0; }
};

/// Replays the events and builds the engine on `backend`; an Arrow source's errors
/// name rows.
void finish(ledger_state& state, std::string_view backend);
/// Reads events from an Arrow stream of record batches into `state.events`.
void read_arrow_events(ledger_state& state, ArrowArrayStream& stream, const std::string& source,
                       std::uint64_t rows_hint);

// ---- answers and tables lent out (results.cpp) -----------------------------------------

/// Balances answered for a batch of queries, lent to Arrow and NumPy.
struct balance_result {
  std::shared_ptr<std::int64_t[]> values;  // every element written by the engine
  std::size_t size = 0;
  std::shared_ptr<std::vector<std::uint8_t>> validity;  // built on first use
  std::int64_t null_count = 0;

  void build_validity() {
    if (validity) return;
    const std::int64_t* v = values.get();
    const std::size_t bytes = (size + 7) / 8;
    auto bits = std::make_shared<std::vector<std::uint8_t>>(bytes + 1);
    const std::size_t parts = gc::detail::part_count(bytes, std::size_t{1} << 14);
    std::vector<std::int64_t> valid(parts);
    gc::detail::run_parts(parts, [&](std::size_t k) {
      // Counted as the bits are set: std::popcount of a byte is a library call where the
      // package is not built for a CPU with POPCNT.
      std::int64_t count = 0;
      for (std::size_t b = bytes * k / parts; b < bytes * (k + 1) / parts; ++b) {
        const std::size_t base = b * 8;
        const std::size_t lanes = std::min<std::size_t>(8, size - base);
        unsigned byte = 0;
        for (std::size_t j = 0; j < lanes; ++j) {
          const bool set = v[base + j] != 0;
          byte |= static_cast<unsigned>(set) << j;
          count += set ? 1 : 0;
        }
        (*bits)[b] = static_cast<std::uint8_t>(byte);
      }
      valid[k] = count;
    });
    std::int64_t total = 0;
    for (std::int64_t c : valid) total += c;
    null_count = static_cast<std::int64_t>(size) - total;
    validity = std::move(bits);
  }
};

/// A table lent through __arrow_c_stream__ (one batch).
struct exported_table {
  ar::field_spec schema;
  std::shared_ptr<const ar::array_data> batch;
};

/// One column of a table to lend out: its type and its data.
using table_column = std::pair<ar::field_spec, std::shared_ptr<const ar::array_data>>;

/// Never null: Arrow consumers may not accept a null data buffer, even of length 0.
const void* nonnull(const void* p);
table_column dictionary_column(const std::string& name, const gc::dictionary& names, const void* codes,
                               std::int64_t length, std::shared_ptr<const void> owner);
table_column int64_column(const std::string& name, const std::string& format, const std::vector<std::int64_t>& values,
                          std::shared_ptr<const void> owner);
exported_table make_table(std::int64_t length, std::vector<table_column> columns);
/// A queries file (account,timestamp) as a table: account dictionary-encoded.
exported_table read_queries(const std::string& path);

template <class T>
nb::capsule owner_of(std::shared_ptr<T> p) {
  return nb::capsule(new std::shared_ptr<T>(std::move(p)),
                     [](void* q) noexcept { delete static_cast<std::shared_ptr<T>*>(q); });
}

// ---- the Ledger class (queries.cpp, results.cpp) ---------------------------------------

class py_ledger {
 public:
  explicit py_ledger(std::shared_ptr<ledger_state> s) : state_(std::move(s)) {}

  static py_ledger from_csv(const std::string& path, std::string_view policy,
                            const std::string& backend, std::string_view expiration) {
    auto state = std::make_shared<ledger_state>();
    state->policy = parse_policy(policy);
    state->expiration = parse_expiration_form(expiration);
    nb::gil_scoped_release unlocked;
    state->events = gc::read_events(path, state->expiration);
    finish(*state, backend);
    return py_ledger(std::move(state));
  }

  static py_ledger from_stream(nb::handle capsule, const std::string& source,
                               std::string_view policy, const std::string& backend,
                               std::uint64_t rows_hint, std::string_view expiration) {
    auto state = std::make_shared<ledger_state>();
    state->policy = parse_policy(policy);
    state->expiration = parse_expiration_form(expiration);
    state->arrow_source = true;
    ar::owned_stream stream;
    take_capsule(capsule, "arrow_array_stream", stream.raw);
    nb::gil_scoped_release unlocked;
    read_arrow_events(*state, stream.raw, source, rows_hint);
    finish(*state, backend);
    return py_ledger(std::move(state));
  }

  std::string backend() const { return std::string(gc::to_string(state_->engine->kind())); }
  std::string policy() const { return std::string(gc::to_string(state_->policy)); }
  std::string source() const { return state_->events.source; }
  std::size_t event_count() const { return state_->events.size(); }
  std::size_t account_count() const { return state_->result.account_count; }
  std::size_t interval_count() const { return state_->result.intervals.size(); }
  std::optional<std::string> time_unit() const {
    if (state_->time_unit() == 0) return std::nullopt;
    return std::string(ar::unit_name(state_->time_unit()));
  }
  std::vector<std::string> accounts() const {
    std::vector<std::string> out;
    out.reserve(state_->events.accounts.size());
    for (std::uint32_t k = 0; k < state_->events.accounts.size(); ++k)
      out.emplace_back(state_->events.accounts[k]);
    return out;
  }

  std::optional<std::int64_t> balance(std::string_view account, nb::handle t) const {
    const std::int64_t at = int64_arg(t, "balance", "timestamp");
    const std::optional<std::uint32_t> a = state_->events.accounts.find(account);
    if (!a) return std::nullopt;
    return state_->engine->balance(*a, at);
  }

  /// `plain_ok`: plain integers may stand for times in the ledger's unit (the caller said
  /// so, or the ledger has none).
  balance_result query(nb::handle accounts, nb::handle timestamps, bool plain_ok) const;
  /// The report grid from..to every `every` over `accounts` on the engine (SPEC section
  /// 11): (from, every, count, fleet totals as ints, balances as accounts x times or None).
  nb::tuple grid(nb::handle accounts, std::int64_t from, std::int64_t to, std::int64_t every, bool with_balances) const;

  exported_table intervals() const;
  /// Every account's window (from, to] (SPEC section 11): account, balance_from, the five
  /// totals as decimal128(38, 0) (exact: they may pass int64), balance_to.
  exported_table summary(std::int64_t from, std::int64_t to) const;
  exported_table usage(bool rejected) const;

 private:
  account_column resolve_accounts(nb::handle accounts, std::int64_t& count) const;
  std::vector<std::int64_t> read_times(nb::handle timestamps, std::int64_t& count,
                                       const std::int64_t*& in_place, nb::object& keep, bool plain_ok) const;

  std::shared_ptr<ledger_state> state_;
};

}  // namespace gpucredit::python
