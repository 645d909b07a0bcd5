// Query inputs (account names in every accepted shape, timestamps) resolved and
// answered in parallel with the GIL released. See binding.hpp.
#include "binding.hpp"
#include "cpu/parallel.hpp"

namespace gpucredit::python {

/// Resolves names to account indices in parallel; `name_at(i)` gives query i's name.
template <class NameAt>
account_column resolve_names(const gc::dictionary& names, std::size_t count, NameAt name_at) {
  account_column out(count);
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

account_column py_ledger::resolve_accounts(nb::handle accounts, std::int64_t& count) const {
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
      if (item == Py_None) throw row_error("accounts", i, "missing account");  // as from Arrow
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
  account_column out(static_cast<std::size_t>(column->length));
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
      const account_column part = resolve_names(names, n, views_at{&views});
      std::copy(part.begin(), part.end(), out.begin() + static_cast<std::ptrdiff_t>(row));
    }
    row += n;
  }
  return out;
}

std::vector<std::int64_t> py_ledger::read_times(nb::handle timestamps, std::int64_t& count,
                                                const std::int64_t*& in_place, nb::object& keep,
                                                bool plain_ok) const {
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
  if (type.time == 0 && state_->time_unit() != 0 && !plain_ok) {
    wrong("timestamps are " + ar::describe(column->schema.raw) +
          " (plain integers) but this ledger's times are timestamps in " +
          std::string(ar::unit_name(state_->time_unit())) + ": pass Arrow timestamps of that unit, or say unit='" +
          std::string(ar::unit_name(state_->time_unit())) + "' to read the integers in it");
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

balance_result py_ledger::query(nb::handle accounts, nb::handle timestamps, bool plain_ok) const {
  std::int64_t account_count = 0;
  std::int64_t time_count = 0;
  const std::int64_t* times_in_place = nullptr;
  nb::object keep;
  account_column resolved = resolve_accounts(accounts, account_count);
  std::vector<std::int64_t> times = read_times(timestamps, time_count, times_in_place, keep, plain_ok);
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

nb::tuple py_ledger::grid(nb::handle accounts, std::int64_t from, std::int64_t to, std::int64_t every,
                          bool with_balances) const {
  const gc::time_grid g = gc::report_time_grid(from, to, every);  // input_error: InputError
  std::int64_t account_count = 0;
  account_column resolved = resolve_accounts(accounts, account_count);
  if (account_count < 0) account_count = 1;  // one name
  const auto rows = static_cast<std::size_t>(account_count);
  if (with_balances && g.count != 0 && rows > (std::size_t{1} << 40) / g.count) {
    throw nb::value_error("the grid's balances would pass 2^40 values: ask for balances=False or fewer accounts");
  }
  std::vector<gc::total_t> fleet(g.count);
  std::shared_ptr<std::int64_t[]> values;
  if (with_balances) values = std::make_shared_for_overwrite<std::int64_t[]>(std::max<std::size_t>(1, rows * g.count));
  {
    nb::gil_scoped_release unlocked;
    state_->engine->grid(resolved, g, fleet,
                         with_balances ? std::span<std::int64_t>(values.get(), rows * g.count) : std::span<std::int64_t>());
  }
  nb::list totals;
  for (const gc::total_t v : fleet) totals.append(nb::steal(PyLong_FromString(gc::to_decimal(v).c_str(), nullptr, 10)));
  nb::object balances = nb::none();
  if (with_balances) {
    balances = nb::cast(nb::ndarray<nb::numpy, std::int64_t, nb::ndim<2>>(values.get(), {rows, g.count}, owner_of(values)));
  }
  return nb::make_tuple(g.from, g.every, g.count, totals, balances);
}

}  // namespace gpucredit::python
