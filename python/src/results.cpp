// Answers and tables lent to Arrow without copies. See binding.hpp.
#include "binding.hpp"

namespace gpucredit::python {

/// Never null: Arrow consumers may not accept a null data buffer, even of length 0.
const void* nonnull(const void* p) {
  static const std::int64_t empty[2] = {0, 0};
  return p != nullptr ? p : empty;
}


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
  std::vector<table_column> columns{dictionary_column("account", s.events.accounts, rows.account.data(), length, state_),
                                    dictionary_column("credit_id", s.events.credit_labels, credit_codes->data(),
                                                      length, credit_codes),
                                    int64_column("begin", s.time_format, rows.begin, state_),
                                    int64_column("end", s.time_format, rows.end, state_),
                                    int64_column("amount", "l", rows.amount, state_)};
  // A ledger with jobs gets the slope column (SPEC section 10), as the CLI's file does.
  if (s.events.has_jobs() || rows.has_slopes()) {
    if (rows.has_slopes()) {
      columns.push_back(int64_column("slope", "l", rows.slope, state_));
    } else {
      auto zeros = std::make_shared<std::vector<std::int64_t>>(rows.size(), 0);
      columns.push_back(int64_column("slope", "l", *zeros, zeros));
    }
  }
  return make_table(length, std::move(columns));
}

namespace {

/// A decimal128(38, 0) column over `values` (Arrow keeps a decimal128 as a 16-byte
/// little-endian two's-complement integer: total_t's own bytes), kept alive by `owner`.
/// 38 digits hold every total a ledger can reach (|total| < 2^64 per event).
table_column decimal_column(const std::string& name, const gc::total_t* values, std::int64_t length,
                            std::shared_ptr<const void> owner) {
  static_assert(sizeof(gc::total_t) == 16 && std::endian::native == std::endian::little);
  return {ar::field_spec{name, "d:38,0", 0, {}, nullptr},
          ar::int64_column(reinterpret_cast<const std::int64_t*>(nonnull(values)), length, std::move(owner))};
}

}  // namespace

exported_table py_ledger::summary(std::int64_t from, std::int64_t to) const {
  if (from > to) throw gc::input_error("summary", 0, "start " + std::to_string(from) + " is after stop " + std::to_string(to));
  struct columns_of_windows {
    std::vector<std::uint32_t> account;
    std::vector<std::int64_t> balance_from, balance_to;
    std::vector<gc::total_t> granted, consumed, expired, shortfall, rejected;
  };
  auto c = std::make_shared<columns_of_windows>();
  {
    nb::gil_scoped_release unlocked;
    const std::vector<gc::account_window> windows = gc::window_summary(state_->events, state_->result, from, to);
    const std::size_t n = windows.size();
    c->account.resize(n);
    c->balance_from.resize(n);
    c->balance_to.resize(n);
    for (auto* v : {&c->granted, &c->consumed, &c->expired, &c->shortfall, &c->rejected}) v->resize(n);
    for (std::size_t a = 0; a < n; ++a) {
      const gc::account_window& w = windows[a];
      c->account[a] = static_cast<std::uint32_t>(a);
      c->balance_from[a] = w.balance_from;
      c->granted[a] = w.granted;
      c->consumed[a] = w.consumed;
      c->expired[a] = w.expired;
      c->shortfall[a] = w.shortfall;
      c->rejected[a] = w.rejected;
      c->balance_to[a] = w.balance_to;
    }
  }
  const auto length = static_cast<std::int64_t>(c->account.size());
  return make_table(length, {dictionary_column("account", state_->events.accounts, c->account.data(), length, c),
                             int64_column("balance_from", "l", c->balance_from, c),
                             decimal_column("granted", c->granted.data(), length, c),
                             decimal_column("consumed", c->consumed.data(), length, c),
                             decimal_column("expired", c->expired.data(), length, c),
                             decimal_column("shortfall", c->shortfall.data(), length, c),
                             decimal_column("rejected", c->rejected.data(), length, c),
                             int64_column("balance_to", "l", c->balance_to, c)});
}

exported_table py_ledger::usage(bool rejected) const {
  const ledger_state& s = *state_;
  const gc::usage_table& rows = rejected ? s.result.rejections : s.result.shortfalls;
  const auto length = static_cast<std::int64_t>(rows.size());
  std::vector<table_column> columns{dictionary_column("account", s.events.accounts, rows.account.data(), length, state_)};
  if (s.events.has_jobs()) {  // one record per job: its id, first unpaid tick and total (null id for a use)
    std::vector<std::string_view> ids(rows.size());
    auto valid = std::make_shared<std::vector<std::uint8_t>>((rows.size() + 7) / 8 + 1, 0);
    std::int64_t nulls = 0;
    for (std::size_t i = 0; i < rows.size(); ++i) {
      if (s.events.kind[rows.row[i]] == gc::op::run) {
        ids[i] = s.events.credit_label(rows.row[i]);
        (*valid)[i / 8] = static_cast<std::uint8_t>((*valid)[i / 8] | (1u << (i % 8)));
      } else {
        ++nulls;
      }
    }
    auto [strings, format] = ar::string_column(ids);
    auto data = std::make_shared<ar::array_data>(*strings);
    data->buffers[0] = valid->data();
    data->null_count = nulls;
    data->owners.push_back(valid);
    columns.push_back({ar::field_spec{"job_id", format, 2 /* ARROW_FLAG_NULLABLE */, {}, nullptr}, std::move(data)});
  }
  columns.push_back(int64_column("timestamp", s.time_format, rows.timestamp, state_));
  columns.push_back(int64_column("amount", "l", rows.amount, state_));
  return make_table(length, std::move(columns));
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

}  // namespace gpucredit::python
