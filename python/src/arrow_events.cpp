// Events from an Arrow stream of record batches, validated row by row through the
// event table (the rules every way in shares). See binding.hpp.
#include "binding.hpp"
#include "cpu/io/validate.hpp"

namespace gpucredit::python {

void finish(ledger_state& state, std::string_view backend) {
  try {
    state.result = gc::replay(state.events, state.policy);
  } catch (const gc::input_error& e) {
    if (!state.arrow_source) throw;
    throw row_error(e.source(), e.line() - 1, e.reason());
  }
  state.engine =
      std::make_unique<gc::engine>(gc::engine::create(state.result.intervals, state.result.account_count, gc::resolve_engine(backend)));
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
                : name == "ticks"      ? &at.expiration  // a name for the sixth column of jobs
                                       : nullptr;
    if (slot == nullptr) continue;  // other columns are not ours
    if (*slot >= 0) {
      fail(slot == &at.expiration ? std::string("columns 'expiration' and 'ticks' are one column (jobs' ticks, "
                                                "credits' expiration): give one of them")
                                  : "column '" + std::string(name) + "' appears twice");
    }
    *slot = static_cast<int>(i);
    types[static_cast<std::size_t>(i)] = ar::parse_type(*s.children[i]);
  }
  const auto require = [&](int index, const char* name, bool text) {
    if (index < 0) {  // what the user gave, beside what is expected
      std::string given;
      for (std::int64_t i = 0; i < s.n_children; ++i) {
        given += (i == 0 ? "" : ", ") + std::string(s.children[i]->name != nullptr ? s.children[i]->name : "");
      }
      fail(std::string("missing column '") + name + "': the source has " + (given.empty() ? "no columns" : given) +
           "; expected op, account, credit_id, timestamp, amount, expiration (or ticks)");
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
      const std::optional<gc::op> kind = gc::detail::parse_op(op.text(i));
      if (!kind) bad("unknown op " + gc::detail::shown(op.text(i)));
      const std::string_view account_name = text(account, "account");
      const std::string_view label = credit && !credit->is_null(i) ? credit->text(i) : std::string_view();
      const std::int64_t t = integer(timestamp, "timestamp");
      try {
        switch (*kind) {
          case gc::op::add: {
            const std::int64_t value = integer(amount, "amount");
            if (!expiration || expiration->is_null(i)) bad("missing expiration");
            const std::int64_t sixth = integer(*expiration, "expiration");
            events.add(account_name, label, t, value, gc::detail::expiration_of(t, sixth, state.expiration, source, row + 1),
                       row + 1);
            break;
          }
          case gc::op::use: {
            const std::int64_t value = integer(amount, "amount");
            if (expiration && !expiration->is_null(i)) {
              bad("use takes no expiration (got " + std::to_string(integer(*expiration, "expiration")) + ")");
            }
            events.use(account_name, t, value, row + 1);
            break;
          }
          case gc::op::run: {  // credit_id: the job id; amount: the rate; the sixth column: ticks
            const std::int64_t rate = integer(amount, "rate");
            if (!expiration || expiration->is_null(i)) bad("missing ticks");
            events.run(account_name, label, t, rate, integer(*expiration, "ticks"), row + 1);
            break;
          }
        }
      } catch (const gc::input_error& e) {
        bad(e.reason());
      }
    }
  }
}

}  // namespace gpucredit::python
