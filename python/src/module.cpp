// gpucredit._core: the C++ engine for Python. The public Python API (gpucredit/__init__.py)
// turns user objects into the few shapes accepted here; every bulk path below runs in
// C++ with the GIL released, and results are lent to Arrow and NumPy, not copied.
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
#include "cpu/parallel.hpp"
#include "gpucredit/engine.hpp"
#include "cpu/io/validate.hpp"
#include "gpucredit/error.hpp"
#include "gpucredit/events.hpp"
#include "gpucredit/gpu_credit.hpp"
#include "gpucredit/ledger.hpp"
#include "gpucredit/version.hpp"

namespace nb = nanobind;
namespace gc = gpucredit;
namespace ar = gpucredit::arrow;

namespace {

// ---- errors -------------------------------------------------------------------------

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

/// Message text as a Python str; bytes that are not UTF-8 (a bad name quoted in a
/// reason) become \xNN escapes rather than a second error.
nb::object text(const std::string& s) {
  return nb::steal(
      PyUnicode_DecodeUTF8(s.data(), static_cast<Py_ssize_t>(s.size()), "backslashreplace"));
}

/// Raises gpucredit._errors.<name>(message, source, line, row, reason).
void raise_python(const char* name, const std::string& message, nb::object source, nb::object line,
                  nb::object row, nb::object reason) {
  try {
    nb::object cls = nb::module_::import_("gpucredit._errors").attr(name);
    nb::object exc = cls(text(message), source, line, row, reason);
    PyErr_SetObject(cls.ptr(), exc.ptr());
  } catch (nb::python_error& e) {  // the package is not importable (a bare _core)
    e.discard_as_unraisable("gpucredit: raising an error");
    PyErr_SetString(PyExc_ValueError, message.c_str());
  }
}

void translate(const std::exception_ptr& p, void* /*payload*/) {
  try {
    std::rethrow_exception(p);
  } catch (const row_error& e) {
    raise_python("InputError", e.what(), text(e.source()), nb::none(), nb::int_(e.row()),
                 text(e.reason()));
  } catch (const gc::input_error& e) {
    raise_python("InputError", e.what(), text(e.source()),
                 e.line() == 0 ? nb::none() : nb::object(nb::int_(e.line())), nb::none(),
                 text(e.reason()));
  } catch (const gc::backend_error& e) {
    raise_python("BackendError", e.what(), nb::none(), nb::none(), nb::none(), nb::none());
  } catch (const gc::error& e) {
    raise_python("Error", e.what(), nb::none(), nb::none(), nb::none(), nb::none());
  }
}

// ---- arguments ----------------------------------------------------------------------

gc::overdraft_policy parse_policy(std::string_view name) {
  if (name == "drain") return gc::overdraft_policy::drain;
  if (name == "reject") return gc::overdraft_policy::reject;
  throw nb::value_error(
      ("policy must be 'drain' or 'reject', not " + gc::detail::shown(name)).c_str());
}

/// A Python integer (or anything with __index__) as int64; InputError past int64.
std::int64_t int64_arg(nb::handle value, const char* call, const char* name) {
  PyObject* index = PyNumber_Index(value.ptr());
  if (index == nullptr) throw nb::python_error();
  int overflow = 0;
  const long long v = PyLong_AsLongLongAndOverflow(index, &overflow);
  Py_DECREF(index);
  if (overflow != 0) throw gc::input_error(call, 0, std::string(name) + " out of int64 range");
  if (v == -1 && PyErr_Occurred() != nullptr) throw nb::python_error();
  return v;
}

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

nb::object make_capsule(ArrowSchema* s) {
  return nb::steal(PyCapsule_New(
      s, "arrow_schema", [](PyObject* c) { capsule_destructor<ArrowSchema>(c, "arrow_schema"); }));
}
nb::object make_capsule(ArrowArray* a) {
  return nb::steal(PyCapsule_New(
      a, "arrow_array", [](PyObject* c) { capsule_destructor<ArrowArray>(c, "arrow_array"); }));
}
nb::object make_capsule(ArrowArrayStream* s) {
  return nb::steal(PyCapsule_New(s, "arrow_array_stream", [](PyObject* c) {
    capsule_destructor<ArrowArrayStream>(c, "arrow_array_stream");
  }));
}

/// One column taken from an Arrow producer: its schema and its chunks.
struct arrow_column {
  ar::owned_schema schema;
  std::vector<std::unique_ptr<ar::owned_array>> chunks;
  std::int64_t length = 0;
};

std::string stream_error(ArrowArrayStream& s, const char* what) {
  const char* message = s.get_last_error != nullptr ? s.get_last_error(&s) : nullptr;
  return std::string(what) + (message != nullptr ? std::string(": ") + message : std::string());
}

/// Reads a whole C stream (GIL released by the caller).
void read_stream(ArrowArrayStream& stream, ar::owned_schema& schema,
                 std::vector<std::unique_ptr<ar::owned_array>>& chunks) {
  if (stream.get_schema(&stream, &schema.raw) != 0)
    throw gc::error(stream_error(stream, "Arrow stream: no schema"));
  for (;;) {
    auto chunk = std::make_unique<ar::owned_array>();
    if (stream.get_next(&stream, &chunk->raw) != 0)
      throw gc::error(stream_error(stream, "Arrow stream: read failed"));
    if (chunk->raw.release == nullptr) break;
    chunks.push_back(std::move(chunk));
  }
}

/// The column `obj` exports through __arrow_c_array__ or __arrow_c_stream__, or null.
std::unique_ptr<arrow_column> import_column(nb::handle obj) {
  auto column = std::make_unique<arrow_column>();
  if (nb::hasattr(obj, "__arrow_c_array__")) {
    nb::tuple pair = nb::cast<nb::tuple>(obj.attr("__arrow_c_array__")());
    auto chunk = std::make_unique<ar::owned_array>();
    take_capsule(pair[0], "arrow_schema", column->schema.raw);
    take_capsule(pair[1], "arrow_array", chunk->raw);
    column->chunks.push_back(std::move(chunk));
  } else if (nb::hasattr(obj, "__arrow_c_stream__")) {
    nb::object capsule = obj.attr("__arrow_c_stream__")();
    ar::owned_stream stream;
    take_capsule(capsule, "arrow_array_stream", stream.raw);
    nb::gil_scoped_release unlocked;
    read_stream(stream.raw, column->schema, column->chunks);
  } else {
    return nullptr;
  }
  for (const auto& chunk : column->chunks) column->length += chunk->raw.length;
  return column;
}

// ---- the ledger -------------------------------------------------------------------------

/// Everything a Ledger holds; shared with the Arrow arrays it lends out.
struct ledger_state {
  gc::event_table events;
  gc::ledger_result result;
  std::unique_ptr<gc::engine> engine;
  gc::overdraft_policy policy = gc::overdraft_policy::drain;
  std::string time_format = "l";  ///< the Arrow type of times: "l", or "tsu:UTC" and the like
  bool arrow_source = false;      ///< rows, not lines, locate events

  /// s m u n for Arrow timestamps, 0 for plain integers.
  char time_unit() const noexcept { return time_format.starts_with("ts") ? time_format[2] : 0; }
};

void finish(ledger_state& state, std::string_view backend) {
  try {
    state.result = gc::replay(state.events, state.policy);
  } catch (const gc::input_error& e) {
    if (!state.arrow_source) throw;
    throw row_error(e.source(), e.line() - 1, e.reason());
  }
  state.engine =
      std::make_unique<gc::engine>(gc::engine::create(state.result, gc::select_backend(backend)));
}

struct event_columns {
  int op = -1, account = -1, credit_id = -1, timestamp = -1, amount = -1, expiration = -1;
};

/// Reads events from an Arrow stream of record batches into `state.events`.
void read_arrow_events(ledger_state& state, ArrowArrayStream& stream, const std::string& source,
                       std::uint64_t rows_hint) {
  ar::owned_schema schema;
  if (stream.get_schema(&stream, &schema.raw) != 0)
    throw gc::input_error(source, 0, stream_error(stream, "no schema"));
  const ArrowSchema& s = schema.raw;
  const auto fail = [&](const std::string& reason) -> void {
    throw gc::input_error(source, 0, reason);
  };
  if (std::string_view(s.format) != "+s")
    fail("expected a table (Arrow struct), got " + ar::describe(s));

  event_columns at;
  std::vector<ar::column_type> types(static_cast<std::size_t>(s.n_children));
  for (std::int64_t i = 0; i < s.n_children; ++i) {
    const std::string_view name = s.children[i]->name != nullptr ? s.children[i]->name : "";
    int* slot = name == "op"           ? &at.op
                : name == "account"    ? &at.account
                : name == "credit_id"  ? &at.credit_id
                : name == "timestamp"  ? &at.timestamp
                : name == "amount"     ? &at.amount
                : name == "expiration" ? &at.expiration
                                       : nullptr;
    if (slot == nullptr) continue;  // other columns are not ours
    if (*slot >= 0) fail("column '" + std::string(name) + "' appears twice");
    *slot = static_cast<int>(i);
    types[static_cast<std::size_t>(i)] = ar::parse_type(*s.children[i]);
  }
  const auto require = [&](int index, const char* name, bool text) {
    if (index < 0) {
      fail(std::string("missing column '") + name +
           "' (columns: op, account, credit_id, timestamp, amount, expiration)");
    }
    const ar::column_type& t = types[static_cast<std::size_t>(index)];
    if (t.is_null_type()) return;  // every row null: each row says what is missing
    if (text ? !t.is_string() : !t.is_integer()) {
      fail(std::string("column '") + name + "' must be " + (text ? "text" : "integer") + ", not " +
           ar::describe(*s.children[index]));
    }
  };
  require(at.op, "op", true);
  require(at.account, "account", true);
  if (at.credit_id >= 0) require(at.credit_id, "credit_id", true);
  require(at.timestamp, "timestamp", false);
  require(at.amount, "amount", false);
  if (at.expiration >= 0) require(at.expiration, "expiration", false);

  const ar::column_type& ts_type = types[static_cast<std::size_t>(at.timestamp)];
  if (ts_type.time == 'D')
    fail("column 'timestamp' must be an integer or timestamp, not " +
         ar::describe(*s.children[at.timestamp]));
  if (types[static_cast<std::size_t>(at.amount)].time != 0) {
    fail("column 'amount' must be an integer, not " + ar::describe(*s.children[at.amount]));
  }
  if (at.expiration >= 0) {
    const ar::column_type& ex_type = types[static_cast<std::size_t>(at.expiration)];
    const bool fits = ex_type.is_null_type() ||
                      (ts_type.time == 't' ? (ex_type.time == 'D' && ex_type.unit == ts_type.unit)
                                           : ex_type.time == 0);
    if (!fits) {
      fail("column 'expiration' is " + ar::describe(*s.children[at.expiration]) +
           " but 'timestamp' is " + ar::describe(*s.children[at.timestamp]) +
           ": expiration must be " +
           (ts_type.time == 't' ? "duration[" + std::string(ar::unit_name(ts_type.unit)) + "]"
                                : std::string("an integer")));
    }
  }
  state.time_format = ts_type.time == 't' ? ts_type.format : "l";

  gc::event_table& events = state.events;
  events.source = source;
  // Columns sized once when the caller knows the row count: regrowing them would copy
  // every column several times over.
  if (rows_hint > 0)
    events.reserve(static_cast<std::size_t>(std::min<std::uint64_t>(rows_hint, gc::events_max)));

  std::uint64_t row = 0;
  for (;;) {  // batch by batch: a stream larger than memory as Arrow is fine
    ar::owned_array batch_owner;
    if (stream.get_next(&stream, &batch_owner.raw) != 0) {
      throw gc::input_error(source, 0, stream_error(stream, "reading a batch failed"));
    }
    if (batch_owner.raw.release == nullptr) break;
    const ArrowArray& batch = batch_owner.raw;
    if (batch.n_children != s.n_children)
      throw gc::input_error(source, 0, "a batch does not match the schema");
    const auto view = [&](int index) -> std::optional<ar::column_view> {
      if (index < 0) return std::nullopt;
      return ar::column_view(*batch.children[index], types[static_cast<std::size_t>(index)]);
    };
    const ar::column_view op = *view(at.op);
    const ar::column_view account = *view(at.account);
    const std::optional<ar::column_view> credit = view(at.credit_id);
    const ar::column_view timestamp = *view(at.timestamp);
    const ar::column_view amount = *view(at.amount);
    const std::optional<ar::column_view> expiration = view(at.expiration);
    for (std::int64_t j = 0; j < batch.length; ++j, ++row) {
      const std::int64_t i = j + batch.offset;
      const auto bad = [&](const std::string& reason) { throw row_error(source, row, reason); };
      // Names are checked where every event is validated (event_table::add, use).
      const auto text = [&](const ar::column_view& c, const char* name) {
        if (c.is_null(i)) bad(std::string("missing ") + name);
        return c.text(i);
      };
      const auto integer = [&](const ar::column_view& c, const char* name) {
        if (c.is_null(i)) bad(std::string("missing ") + name);
        ar::int_problem problem = ar::int_problem::none;
        const std::int64_t v = c.integer(i, problem);
        if (problem == ar::int_problem::out_of_range)
          bad(std::string(name) + " out of int64 range");
        if (problem == ar::int_problem::not_integer) bad(std::string(name) + " is not an integer");
        return v;
      };
      if (op.is_null(i)) bad("missing op");
      const std::string_view op_name = op.text(i);
      const bool is_add = op_name == "add";
      if (!is_add && op_name != "use") bad("unknown op " + gc::detail::shown(op_name));
      const std::string_view account_name = text(account, "account");
      const std::string_view label = credit && !credit->is_null(i) ? credit->text(i) : std::string_view();
      const std::int64_t t = integer(timestamp, "timestamp");
      const std::int64_t value = integer(amount, "amount");
      try {
        if (is_add) {
          if (!expiration || expiration->is_null(i)) bad("missing expiration");
          events.add(account_name, label, t, value, integer(*expiration, "expiration"), row + 1);
        } else {
          if (expiration && !expiration->is_null(i)) {
            bad("use takes no expiration (got " +
                std::to_string(integer(*expiration, "expiration")) + ")");
          }
          events.use(account_name, t, value, row + 1);
        }
      } catch (const gc::input_error& e) {
        bad(e.reason());
      }
    }
  }
}

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
      std::int64_t count = 0;
      for (std::size_t b = bytes * k / parts; b < bytes * (k + 1) / parts; ++b) {
        const std::size_t base = b * 8;
        const std::size_t lanes = std::min<std::size_t>(8, size - base);
        unsigned byte = 0;
        for (std::size_t j = 0; j < lanes; ++j)
          byte |= static_cast<unsigned>(v[base + j] != 0) << j;
        (*bits)[b] = static_cast<std::uint8_t>(byte);
        count += std::popcount(byte);
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

/// Never null: Arrow consumers may not accept a null data buffer, even of length 0.
const void* nonnull(const void* p) {
  static const std::int64_t empty[2] = {0, 0};
  return p != nullptr ? p : empty;
}

/// One column of a table to lend out: its type and its data.
using table_column = std::pair<ar::field_spec, std::shared_ptr<const ar::array_data>>;

/// A dictionary<int32, string> column: `length` codes into `names`, kept alive by
/// `owner`. `codes` may be the library's uint32 indices: below 2^31 (checked here: more
/// names throw) they read the same as int32.
table_column dictionary_column(const std::string& name, const gc::dictionary& names,
                               const void* codes, std::int64_t length,
                               std::shared_ptr<const void> owner) {
  if (names.size() > static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    throw gc::error("more than 2^31 - 1 names in column '" + name +
                    "': cannot hand out dictionary codes");
  }
  std::vector<std::string_view> values(names.size());
  for (std::uint32_t k = 0; k < names.size(); ++k) values[k] = names[k];
  auto [dict, format] = ar::string_column(values);
  ar::field_spec spec{name,
                      "i",
                      0,
                      {},
                      std::make_shared<ar::field_spec>(ar::field_spec{"", format, 0, {}, nullptr})};
  auto data = std::make_shared<ar::array_data>();
  data->length = length;
  data->buffers = {nullptr, nonnull(codes)};
  data->owners.push_back(std::move(owner));
  data->dictionary = std::move(dict);
  return {std::move(spec), std::move(data)};
}

/// An int64-stored column over `values` (Arrow type `format`: "l", or a timestamp),
/// kept alive by `owner`.
table_column int64_column(const std::string& name, const std::string& format,
                          const std::vector<std::int64_t>& values,
                          std::shared_ptr<const void> owner) {
  return {ar::field_spec{name, format, 0, {}, nullptr},
          ar::int64_column(static_cast<const std::int64_t*>(nonnull(values.data())),
                           static_cast<std::int64_t>(values.size()), std::move(owner))};
}

/// A one-batch table of `columns`, each `length` rows long.
exported_table make_table(std::int64_t length, std::vector<table_column> columns) {
  exported_table table;
  table.schema = ar::field_spec{"", "+s", 0, {}, nullptr};
  auto batch = std::make_shared<ar::array_data>();
  batch->length = length;
  batch->buffers = {nullptr};
  for (auto& [spec, data] : columns) {
    table.schema.children.push_back(std::move(spec));
    batch->children.push_back(std::move(data));
  }
  table.batch = std::move(batch);
  return table;
}

class py_ledger {
 public:
  explicit py_ledger(std::shared_ptr<ledger_state> s) : state_(std::move(s)) {}

  static py_ledger from_csv(const std::string& path, std::string_view policy,
                            const std::string& backend) {
    auto state = std::make_shared<ledger_state>();
    state->policy = parse_policy(policy);
    nb::gil_scoped_release unlocked;
    state->events = gc::read_events(path);
    finish(*state, backend);
    return py_ledger(std::move(state));
  }

  static py_ledger from_stream(nb::handle capsule, const std::string& source,
                               std::string_view policy, const std::string& backend,
                               std::uint64_t rows_hint) {
    auto state = std::make_shared<ledger_state>();
    state->policy = parse_policy(policy);
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

  balance_result query(nb::handle accounts, nb::handle timestamps) const;

  exported_table intervals() const;
  exported_table usage(bool rejected) const;

 private:
  std::vector<gc::account_index> resolve_accounts(nb::handle accounts, std::int64_t& count) const;
  std::vector<std::int64_t> read_times(nb::handle timestamps, std::int64_t& count,
                                       const std::int64_t*& in_place, nb::object& keep) const;

  std::shared_ptr<ledger_state> state_;
};

/// Resolves names to account indices in parallel; `name_at(i)` gives query i's name.
template <class NameAt>
std::vector<gc::account_index> resolve_names(const gc::dictionary& names, std::size_t count,
                                             NameAt name_at) {
  std::vector<gc::account_index> out(count);
  const std::size_t parts = gc::detail::part_count(count, std::size_t{1} << 15);
  gc::detail::run_parts(parts, [&](std::size_t k) {
    const std::size_t begin = count * k / parts;
    const std::size_t end = count * (k + 1) / parts;
    auto scratch = name_at.scratch();
    gc::account_index last = gc::account_none;
    for (std::size_t i = begin; i < end; ++i) {
      // Queries of one account usually come together: a name equal to the one before
      // is not looked up again.
      if (i == begin || !name_at.same(i - 1, i))
        last = names.find(name_at(i, scratch)).value_or(gc::account_none);
      out[i] = last;
    }
  });
  return out;
}

/// Maps the codes of a dictionary column through `mapping` into `out`, in parallel.
void map_codes(const ar::column_view& view, const std::vector<gc::account_index>& mapping,
               gc::account_index* out, std::size_t first_row) {
  const auto n = static_cast<std::size_t>(view.size());
  const auto run = [&](const auto* codes) {
    codes += view.offset();
    const std::size_t parts = gc::detail::part_count(n, std::size_t{1} << 15);
    gc::detail::run_parts(parts, [&](std::size_t k) {
      for (std::size_t i = n * k / parts; i < n * (k + 1) / parts; ++i) {
        const auto code = static_cast<std::uint64_t>(codes[i]);
        if (code >= mapping.size())
          throw row_error("accounts", first_row + i, "dictionary code out of range");
        out[i] = mapping[code];
      }
    });
  };
  switch (view.index_code()) {
    case 'c':
      run(static_cast<const std::int8_t*>(view.data()));
      break;
    case 'C':
      run(static_cast<const std::uint8_t*>(view.data()));
      break;
    case 's':
      run(static_cast<const std::int16_t*>(view.data()));
      break;
    case 'S':
      run(static_cast<const std::uint16_t*>(view.data()));
      break;
    case 'i':
      run(static_cast<const std::int32_t*>(view.data()));
      break;
    case 'I':
      run(static_cast<const std::uint32_t*>(view.data()));
      break;
    case 'l':
      run(static_cast<const std::int64_t*>(view.data()));
      break;
    default:
      run(static_cast<const std::uint64_t*>(view.data()));
      break;
  }
}

struct views_at {  // names already in memory (a list of str, an Arrow string column)
  bool same(std::size_t a, std::size_t b) const { return (*views)[a] == (*views)[b]; }
  const std::vector<std::string_view>* views;
  int scratch() const { return 0; }
  std::string_view operator()(std::size_t i, int /*unused*/) const { return (*views)[i]; }
};

struct ucs4_at {  // a NumPy 'U' array: fixed-width UCS-4, NUL-padded
  bool same(std::size_t a, std::size_t b) const {
    return std::memcmp(data + a * width, data + b * width, width * sizeof(std::uint32_t)) == 0;
  }
  const std::uint32_t* data;
  std::size_t width;
  std::string scratch() const { return {}; }
  std::string_view operator()(std::size_t i, std::string& out) const {
    out.clear();
    const std::uint32_t* row = data + i * width;
    std::size_t n = width;
    while (n > 0 && row[n - 1] == 0) --n;
    for (std::size_t k = 0; k < n; ++k) {
      const std::uint32_t c = row[k];
      if (c < 0x80) {
        out += static_cast<char>(c);
      } else if (c < 0x800) {
        out += static_cast<char>(0xC0 | (c >> 6));
        out += static_cast<char>(0x80 | (c & 0x3F));
      } else if (c < 0x10000) {
        out += static_cast<char>(0xE0 | (c >> 12));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
      } else {
        out += static_cast<char>(0xF0 | (c >> 18));
        out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
        out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
        out += static_cast<char>(0x80 | (c & 0x3F));
      }
    }
    return out;
  }
};

struct bytes_at {  // a NumPy 'S' array: fixed-width bytes, NUL-padded
  bool same(std::size_t a, std::size_t b) const {
    return std::memcmp(data + a * width, data + b * width, width) == 0;
  }
  const char* data;
  std::size_t width;
  int scratch() const { return 0; }
  std::string_view operator()(std::size_t i, int /*unused*/) const {
    const char* row = data + i * width;
    std::size_t n = width;
    while (n > 0 && row[n - 1] == '\0') --n;
    return {row, n};
  }
};

std::vector<gc::account_index> py_ledger::resolve_accounts(nb::handle accounts,
                                                           std::int64_t& count) const {
  const gc::dictionary& names = state_->events.accounts;
  if (nb::isinstance<nb::str>(accounts)) {  // one account for every timestamp
    const auto a = names.find(nb::cast<std::string_view>(accounts)).value_or(gc::account_none);
    count = -1;
    return {a};
  }
  if (PyList_Check(accounts.ptr()) != 0) {
    const auto n = static_cast<std::size_t>(PyList_GET_SIZE(accounts.ptr()));
    std::vector<std::string_view> views(n);
    for (std::size_t i = 0; i < n; ++i) {
      PyObject* item = PyList_GET_ITEM(accounts.ptr(), static_cast<Py_ssize_t>(i));
      if (PyUnicode_Check(item) == 0) {
        throw nb::type_error(("accounts: row " + std::to_string(i) + ": account must be str, not " +
                              Py_TYPE(item)->tp_name)
                                 .c_str());
      }
      Py_ssize_t size = 0;
      const char* utf8 = PyUnicode_AsUTF8AndSize(item, &size);
      if (utf8 == nullptr) throw nb::python_error();
      views[i] = std::string_view(utf8, static_cast<std::size_t>(size));
    }
    count = static_cast<std::int64_t>(n);
    nb::gil_scoped_release unlocked;
    return resolve_names(names, n, views_at{&views});
  }
  std::unique_ptr<arrow_column> column = import_column(accounts);  // Arrow first, as for timestamps
  if (!column) {
    nb::ndarray<const std::uint32_t, nb::ndim<2>, nb::c_contig, nb::device::cpu> ucs4;
    if (nb::try_cast(accounts, ucs4, false)) {
      count = static_cast<std::int64_t>(ucs4.shape(0));
      nb::gil_scoped_release unlocked;
      return resolve_names(names, ucs4.shape(0), ucs4_at{ucs4.data(), ucs4.shape(1)});
    }
    nb::ndarray<const std::uint8_t, nb::ndim<2>, nb::c_contig, nb::device::cpu> bytes;
    if (nb::try_cast(accounts, bytes, false)) {
      count = static_cast<std::int64_t>(bytes.shape(0));
      nb::gil_scoped_release unlocked;
      return resolve_names(names, bytes.shape(0),
                           bytes_at{reinterpret_cast<const char*>(bytes.data()), bytes.shape(1)});
    }
    throw nb::type_error(("accounts must be a str, a list of str, a NumPy array of str or an Arrow "
                          "string array, not " +
                          std::string(Py_TYPE(accounts.ptr())->tp_name))
                             .c_str());
  }
  const ar::column_type type = ar::parse_type(column->schema.raw);
  if (!type.is_string()) {
    throw nb::type_error(
        ("accounts must be text, not " + ar::describe(column->schema.raw)).c_str());
  }
  count = column->length;
  nb::gil_scoped_release unlocked;
  std::vector<gc::account_index> out(static_cast<std::size_t>(column->length));
  std::size_t row = 0;
  for (const auto& chunk : column->chunks) {
    const ar::column_view view(chunk->raw, type);
    const auto n = static_cast<std::size_t>(view.size());
    if (view.may_have_nulls()) {
      for (std::size_t i = 0; i < n; ++i) {
        if (view.is_null(static_cast<std::int64_t>(i)))
          throw row_error("accounts", row + i, "missing account");
      }
    }
    if (view.is_dictionary()) {  // each distinct name looked up once, then codes mapped
      std::vector<gc::account_index> mapping(static_cast<std::size_t>(view.dictionary_size()));
      for (std::size_t k = 0; k < mapping.size(); ++k) {
        const auto key = static_cast<std::int64_t>(k);
        mapping[k] = view.dictionary_null(key)
                         ? gc::account_none
                         : names.find(view.dictionary_text(key)).value_or(gc::account_none);
      }
      map_codes(view, mapping, out.data() + row, row);
    } else {
      std::vector<std::string_view> views(n);
      for (std::size_t i = 0; i < n; ++i) views[i] = view.text(static_cast<std::int64_t>(i));
      const std::vector<gc::account_index> part = resolve_names(names, n, views_at{&views});
      std::copy(part.begin(), part.end(), out.begin() + static_cast<std::ptrdiff_t>(row));
    }
    row += n;
  }
  return out;
}

std::vector<std::int64_t> py_ledger::read_times(nb::handle timestamps, std::int64_t& count,
                                                const std::int64_t*& in_place,
                                                nb::object& keep) const {
  in_place = nullptr;
  if (PyLong_Check(timestamps.ptr()) != 0) {  // one timestamp for every account
    count = -1;
    return {int64_arg(timestamps, "balances", "timestamp")};
  }
  // Arrow first: pyarrow arrays also speak DLPack, which would ignore their nulls.
  std::unique_ptr<arrow_column> column = import_column(timestamps);
  if (!column) {
    nb::ndarray<const std::int64_t, nb::ndim<1>, nb::c_contig, nb::device::cpu> array;
    if (nb::try_cast(timestamps, array, false)) {
      count = static_cast<std::int64_t>(array.shape(0));
      in_place = array.data();
      keep = nb::borrow(timestamps);
      return {};
    }
    throw nb::type_error(
        ("timestamps must be an int, a NumPy int64 array or an Arrow integer array, not " +
         std::string(Py_TYPE(timestamps.ptr())->tp_name))
            .c_str());
  }
  const ar::column_type type = ar::parse_type(column->schema.raw);
  const auto wrong = [&](const std::string& why) { throw nb::type_error(why.c_str()); };
  if (!type.is_integer() || type.time == 'D') {
    wrong("timestamps must be integers or timestamps, not " + ar::describe(column->schema.raw));
  }
  if (type.time == 't' && type.unit != state_->time_unit()) {
    wrong("timestamps are " + ar::describe(column->schema.raw) + " but this ledger's times are " +
          (state_->time_unit() == 0 ? std::string("plain integers")
                                    : "in " + std::string(ar::unit_name(state_->time_unit()))) +
          ": cast them first");
  }
  count = column->length;
  if (column->chunks.size() == 1) {
    const ar::column_view view(column->chunks[0]->raw, type);
    if (const std::int64_t* values = view.int64_values()) {  // lent as it is
      in_place = values;
      struct holder {
        std::unique_ptr<arrow_column> column;
      };
      keep = nb::capsule(new holder{std::move(column)},
                         [](void* p) noexcept { delete static_cast<holder*>(p); });
      return {};
    }
  }
  std::vector<std::int64_t> out;
  nb::gil_scoped_release unlocked;
  out.reserve(static_cast<std::size_t>(column->length));
  std::uint64_t row = 0;
  for (const auto& chunk : column->chunks) {
    const ar::column_view view(chunk->raw, type);
    for (std::int64_t i = 0; i < view.size(); ++i, ++row) {
      if (view.is_null(i)) throw row_error("timestamps", row, "missing timestamp");
      ar::int_problem problem = ar::int_problem::none;
      out.push_back(view.integer(i, problem));
      if (problem == ar::int_problem::out_of_range)
        throw row_error("timestamps", row, "timestamp out of int64 range");
      if (problem == ar::int_problem::not_integer)
        throw row_error("timestamps", row, "timestamp is not an integer");
    }
  }
  return out;
}

balance_result py_ledger::query(nb::handle accounts, nb::handle timestamps) const {
  std::int64_t account_count = 0;
  std::int64_t time_count = 0;
  const std::int64_t* times_in_place = nullptr;
  nb::object keep;
  std::vector<gc::account_index> resolved = resolve_accounts(accounts, account_count);
  std::vector<std::int64_t> times = read_times(timestamps, time_count, times_in_place, keep);
  if (account_count >= 0 && time_count >= 0 && account_count != time_count) {
    throw nb::value_error(("accounts and timestamps differ in length (" +
                           std::to_string(account_count) + " and " + std::to_string(time_count) +
                           ")")
                              .c_str());
  }
  const std::size_t n = static_cast<std::size_t>(
      account_count >= 0 ? account_count : (time_count >= 0 ? time_count : 1));
  balance_result out;
  out.values = std::make_unique_for_overwrite<std::int64_t[]>(n);
  out.size = n;
  nb::gil_scoped_release unlocked;
  if (account_count < 0) resolved.assign(n, resolved[0]);  // broadcast one account
  if (time_count < 0) times.assign(n, times[0]);           // broadcast one time
  const std::span<const std::int64_t> t = times_in_place != nullptr
                                              ? std::span<const std::int64_t>(times_in_place, n)
                                              : std::span<const std::int64_t>(times);
  state_->engine->balances(resolved, t, std::span<std::int64_t>(out.values.get(), n));
  return out;
}

exported_table py_ledger::intervals() const {
  const ledger_state& s = *state_;
  const gc::interval_table& rows = s.result.intervals;
  const auto length = static_cast<std::int64_t>(rows.size());
  // Account codes are the table's own indices (uint32 below 2^31, read as int32);
  // credit codes are gathered from the event table.
  auto credit_codes = std::make_shared<std::vector<std::int32_t>>(rows.size());
  for (std::size_t i = 0; i < rows.size(); ++i) {
    (*credit_codes)[i] = static_cast<std::int32_t>(s.events.credit[rows.credit[i]]);
  }
  return make_table(
      length, {dictionary_column("account", s.events.accounts, rows.account.data(), length, state_),
               dictionary_column("credit_id", s.events.credit_labels, credit_codes->data(), length,
                                 credit_codes),
               int64_column("begin", s.time_format, rows.begin, state_),
               int64_column("end", s.time_format, rows.end, state_),
               int64_column("amount", "l", rows.amount, state_)});
}

exported_table py_ledger::usage(bool rejected) const {
  const ledger_state& s = *state_;
  const gc::usage_table& rows = rejected ? s.result.rejections : s.result.shortfalls;
  const auto length = static_cast<std::int64_t>(rows.size());
  return make_table(
      length, {dictionary_column("account", s.events.accounts, rows.account.data(), length, state_),
               int64_column("timestamp", s.time_format, rows.timestamp, state_),
               int64_column("amount", "l", rows.amount, state_)});
}

/// A queries file (account,timestamp) as a table: account dictionary-encoded.
exported_table read_queries(const std::string& path) {
  auto queries = std::make_shared<gc::query_batch>();
  {
    nb::gil_scoped_release unlocked;
    *queries = gc::read_queries(path);
  }
  const auto length = static_cast<std::int64_t>(queries->size());
  return make_table(length, {dictionary_column("account", queries->accounts,
                                               queries->account.data(), length, queries),
                             int64_column("timestamp", "l", queries->timestamp, queries)});
}

template <class T>
nb::capsule owner_of(std::shared_ptr<T> p) {
  return nb::capsule(new std::shared_ptr<T>(std::move(p)),
                     [](void* q) noexcept { delete static_cast<std::shared_ptr<T>*>(q); });
}

}  // namespace

NB_MODULE(_core, m) {
  m.doc() = "gpucredit's C++ engine. Use the package gpucredit, not this module.";
  nb::register_exception_translator(translate);

  m.def(
      "version", [] { return std::string(gc::version_string); }, "The library's version.");
  m.def(
      "backends",
      [] {
        std::vector<std::tuple<std::string, bool>> out;
        for (gc::backend b : gc::compiled_backends())
          out.emplace_back(std::string(gc::to_string(b)), gc::backend_available(b));
        return out;
      },
      "The backends compiled in, CPU first, each with whether it can run here.");

  m.def("read_queries", &read_queries, nb::arg("path"),
        "A queries file (account,timestamp) read by the C++ reader, as an Arrow table.");

  nb::class_<gc::GPUCredit>(m, "GPUCredit", "The original interface (SPEC section 9).")
      .def(
          "__init__",
          [](gc::GPUCredit* self, std::string_view policy) {
            new (self) gc::GPUCredit(parse_policy(policy));
          },
          nb::arg("policy") = "drain")
      .def(
          "addCredit",
          [](gc::GPUCredit& self, std::string_view creditId, nb::handle amount,
             nb::handle timestamp, nb::handle expiration) {
            self.addCredit(creditId, int64_arg(amount, "addCredit", "amount"),
                           int64_arg(timestamp, "addCredit", "timestamp"),
                           int64_arg(expiration, "addCredit", "expiration"));
          },
          nb::arg("creditId"), nb::arg("amount"), nb::arg("timestamp"), nb::arg("expiration"),
          nb::sig("def addCredit(self, creditId: str, amount: int, timestamp: int, expiration: "
                  "int) -> None"))
      .def(
          "getBalance",
          [](gc::GPUCredit& self, std::string_view creditId, nb::handle timestamp) {
            return self.getBalance(creditId, int64_arg(timestamp, "getBalance", "timestamp"));
          },
          nb::arg("creditId"), nb::arg("timestamp"),
          nb::sig("def getBalance(self, creditId: str, timestamp: int) -> int | None"))
      .def(
          "useCredit",
          [](gc::GPUCredit& self, std::string_view creditId, nb::handle timestamp,
             nb::handle amount) {
            self.useCredit(creditId, int64_arg(timestamp, "useCredit", "timestamp"),
                           int64_arg(amount, "useCredit", "amount"));
          },
          nb::arg("creditId"), nb::arg("timestamp"), nb::arg("amount"),
          nb::sig("def useCredit(self, creditId: str, timestamp: int, amount: int) -> None"));

  nb::class_<balance_result>(m, "Balances",
                             "Balances of a batch of queries; 0 in values() is none.")
      .def("__len__", [](const balance_result& r) { return r.size; })
      .def(
          "values",
          [](const balance_result& r) {
            return nb::ndarray<nb::numpy, std::int64_t, nb::ndim<1>>(r.values.get(), {r.size},
                                                                     owner_of(r.values));
          },
          "The balances as a NumPy int64 array (lent, not copied); 0 means none.")
      .def(
          "null_count",
          [](balance_result& r) {
            r.build_validity();
            return r.null_count;
          },
          "How many queries answer none.")
      .def(
          "__arrow_c_array__",
          [](balance_result& r, nb::handle /*requested_schema*/) {
            {
              nb::gil_scoped_release unlocked;
              r.build_validity();
            }
            auto schema = std::make_unique<ArrowSchema>();
            auto array = std::make_unique<ArrowArray>();
            ar::export_schema(ar::field_spec{"balance", "l", ARROW_FLAG_NULLABLE, {}, nullptr},
                              schema.get());
            ar::export_array(
                ar::int64_column(static_cast<const std::int64_t*>(nonnull(r.values.get())),
                                 static_cast<std::int64_t>(r.size), r.values, r.validity,
                                 r.null_count),
                array.get());
            nb::object s = make_capsule(schema.release());
            nb::object a = make_capsule(array.release());
            return nb::make_tuple(s, a);
          },
          nb::arg("requested_schema") = nb::none(),
          "The balances as an Arrow int64 array, null for none (values lent, not copied).");

  nb::class_<exported_table>(m, "ArrowTable", "A table lent through the Arrow PyCapsule interface.")
      .def("__len__", [](const exported_table& t) { return t.batch->length; })
      .def(
          "__arrow_c_stream__",
          [](const exported_table& t, nb::handle /*requested_schema*/) {
            auto stream = std::make_unique<ArrowArrayStream>();
            ar::export_stream(t.schema, {t.batch}, stream.get());
            return make_capsule(stream.release());
          },
          nb::arg("requested_schema") = nb::none());

  nb::class_<py_ledger>(m, "Ledger", "A replayed ledger and its query engine.")
      .def_static("from_csv", &py_ledger::from_csv, nb::arg("path"), nb::arg("policy"),
                  nb::arg("backend"))
      .def_static("from_stream", &py_ledger::from_stream, nb::arg("stream"), nb::arg("source"),
                  nb::arg("policy"), nb::arg("backend"), nb::arg("rows_hint") = 0,
                  nb::sig("def from_stream(stream: object, source: str, policy: str, "
                          "backend: str, rows_hint: int = 0) -> Ledger"))
      .def_prop_ro("backend", &py_ledger::backend)
      .def_prop_ro("policy", &py_ledger::policy)
      .def_prop_ro("source", &py_ledger::source)
      .def_prop_ro("event_count", &py_ledger::event_count)
      .def_prop_ro("account_count", &py_ledger::account_count)
      .def_prop_ro("interval_count", &py_ledger::interval_count)
      .def_prop_ro("time_unit", &py_ledger::time_unit)
      .def("accounts", &py_ledger::accounts)
      .def("balance", &py_ledger::balance, nb::arg("account"), nb::arg("timestamp"),
           nb::sig("def balance(self, account: str, timestamp: int) -> int | None"))
      .def("query", &py_ledger::query, nb::arg("accounts"), nb::arg("timestamps"),
           nb::sig("def query(self, accounts: object, timestamps: object) -> Balances"))
      .def("intervals", &py_ledger::intervals)
      .def("usage", &py_ledger::usage, nb::arg("rejected"));
}
