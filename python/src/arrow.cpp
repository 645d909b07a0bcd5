#include "arrow.hpp"

#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

namespace gpucredit::arrow {
namespace {

bool integer_code(char c) noexcept {
  return std::string_view("cCsSiIlL").find(c) != std::string_view::npos;
}

std::string_view integer_name(char c) noexcept {
  switch (c) {
    case 'c':
      return "int8";
    case 'C':
      return "uint8";
    case 's':
      return "int16";
    case 'S':
      return "uint16";
    case 'i':
      return "int32";
    case 'I':
      return "uint32";
    case 'l':
      return "int64";
    case 'L':
      return "uint64";
    case 'f':
      return "float32";
    case 'g':
      return "float64";
    default:
      return "?";
  }
}

// The type of a non-dictionary format.
column_type parse_plain(std::string_view f) {
  column_type t;
  t.format = std::string(f);
  if (f.size() == 1 && (integer_code(f[0]) || f[0] == 'f' || f[0] == 'g')) {
    t.what = column_type::kind::integer;
    t.physical = f[0];
  } else if (f == "n") {  // a column of nulls only (all None in pandas or Polars)
    t.what = column_type::kind::null;
  } else if (f == "u" || f == "U") {
    t.what = column_type::kind::string;
    t.physical = f[0];
  } else if (f == "vu") {
    t.what = column_type::kind::string;
    t.physical = 'v';
  } else if (f.size() >= 4 && f.substr(0, 2) == "ts" && f[3] == ':' &&
             std::string_view("smun").find(f[2]) != std::string_view::npos) {
    t.what = column_type::kind::integer;
    t.physical = 'l';
    t.time = 't';
    t.unit = f[2];
    t.zone = std::string(f.substr(4));
  } else if (f.size() == 3 && f.substr(0, 2) == "tD" &&
             std::string_view("smun").find(f[2]) != std::string_view::npos) {
    t.what = column_type::kind::integer;
    t.physical = 'l';
    t.time = 'D';
    t.unit = f[2];
  }
  return t;
}

std::string describe_plain(std::string_view f) {
  const column_type t = parse_plain(f);
  if (t.is_string())
    return t.physical == 'v' ? "string_view" : (t.physical == 'U' ? "large_string" : "string");
  if (t.is_null_type()) return "null";
  if (t.is_integer() && t.time == 0) return std::string(integer_name(t.physical));
  if (t.time == 't') {
    std::string s = "timestamp[" + std::string(unit_name(t.unit));
    if (!t.zone.empty()) s += ", tz=" + t.zone;
    return s + "]";
  }
  if (t.time == 'D') return "duration[" + std::string(unit_name(t.unit)) + "]";
  return "Arrow format '" + std::string(f) + "'";
}

}  // namespace

std::string_view unit_name(char unit) noexcept {
  switch (unit) {
    case 's':
      return "s";
    case 'm':
      return "ms";
    case 'u':
      return "us";
    case 'n':
      return "ns";
    default:
      return "?";
  }
}

column_type parse_type(const ArrowSchema& schema) {
  const std::string_view f = schema.format != nullptr ? schema.format : "";
  if (schema.dictionary == nullptr) return parse_plain(f);
  column_type t =
      parse_plain(schema.dictionary->format != nullptr ? schema.dictionary->format : "");
  if (f.size() != 1 || !integer_code(f[0]) || !t.is_string())
    return column_type{};  // only dictionaries of text
  t.dictionary = true;
  t.index = f[0];
  return t;
}

std::string describe(const ArrowSchema& schema) {
  const std::string_view f = schema.format != nullptr ? schema.format : "";
  if (schema.dictionary == nullptr) return describe_plain(f);
  return "dictionary<" + describe_plain(f) + ", " + describe(*schema.dictionary) + ">";
}

// ---- reading ------------------------------------------------------------------------

column_view::column_view(const ArrowArray& array, column_type type)
    : array_(&array), type_(std::move(type)) {}

bool column_view::read_null(const ArrowArray& a, std::int64_t i) noexcept {
  if (a.null_count == 0 || a.n_buffers == 0 || a.buffers[0] == nullptr) return false;
  const auto bit = static_cast<std::uint64_t>(a.offset + i);
  const auto* bits = static_cast<const std::uint8_t*>(a.buffers[0]);
  return ((bits[bit >> 3] >> (bit & 7U)) & 1U) == 0;
}

bool column_view::is_null(std::int64_t i) const noexcept {
  if (type_.is_null_type()) return true;
  if (read_null(*array_, i)) return true;
  const auto k = static_cast<std::size_t>(array_->offset + i);
  if (type_.physical == 'g' && !type_.dictionary)
    return std::isnan(static_cast<const double*>(array_->buffers[1])[k]);
  if (type_.physical == 'f' && !type_.dictionary)
    return std::isnan(static_cast<const float*>(array_->buffers[1])[k]);
  if (type_.dictionary) return dictionary_null(dictionary_index(i));
  return false;
}

namespace {
// A float holding a whole number in int64's range, as that number.
std::int64_t whole(double v, int_problem& problem) noexcept {
  if (std::trunc(v) != v) {
    problem = int_problem::not_integer;
    return 0;
  }
  if (!(v >= -9223372036854775808.0 && v < 9223372036854775808.0)) {
    problem = int_problem::out_of_range;
    return 0;
  }
  return static_cast<std::int64_t>(v);
}
}  // namespace

bool column_view::may_have_nulls() const noexcept {
  if (type_.is_null_type() || type_.physical == 'f' || type_.physical == 'g') return true;
  if (array_->null_count != 0 && array_->buffers[0] != nullptr) return true;
  const ArrowArray* d = array_->dictionary;
  return type_.dictionary && d->null_count != 0 && d->buffers[0] != nullptr;
}

std::int64_t column_view::read_integer(const ArrowArray& a, char code, std::int64_t i,
                                       int_problem& problem) noexcept {
  const auto k = static_cast<std::size_t>(a.offset + i);
  const void* data = a.buffers[1];
  switch (code) {
    case 'c':
      return static_cast<const std::int8_t*>(data)[k];
    case 'C':
      return static_cast<const std::uint8_t*>(data)[k];
    case 's':
      return static_cast<const std::int16_t*>(data)[k];
    case 'S':
      return static_cast<const std::uint16_t*>(data)[k];
    case 'i':
      return static_cast<const std::int32_t*>(data)[k];
    case 'I':
      return static_cast<const std::uint32_t*>(data)[k];
    case 'l':
      return static_cast<const std::int64_t*>(data)[k];
    case 'L': {
      const std::uint64_t v = static_cast<const std::uint64_t*>(data)[k];
      if (v > static_cast<std::uint64_t>(std::numeric_limits<std::int64_t>::max()))
        problem = int_problem::out_of_range;
      return static_cast<std::int64_t>(v);
    }
    case 'f':
      return whole(static_cast<const float*>(data)[k], problem);
    case 'g':
      return whole(static_cast<const double*>(data)[k], problem);
    default:
      problem = int_problem::not_integer;
      return 0;
  }
}

std::int64_t column_view::integer(std::int64_t i, int_problem& problem) const noexcept {
  return read_integer(*array_, type_.physical, i, problem);
}

std::string_view column_view::read_text(const ArrowArray& a, char code, std::int64_t i) noexcept {
  const auto k = static_cast<std::size_t>(a.offset + i);
  if (code == 'u') {
    const auto* offsets = static_cast<const std::int32_t*>(a.buffers[1]);
    const auto* chars = static_cast<const char*>(a.buffers[2]);
    return {chars + offsets[k], static_cast<std::size_t>(offsets[k + 1] - offsets[k])};
  }
  if (code == 'U') {
    const auto* offsets = static_cast<const std::int64_t*>(a.buffers[1]);
    const auto* chars = static_cast<const char*>(a.buffers[2]);
    return {chars + offsets[k], static_cast<std::size_t>(offsets[k + 1] - offsets[k])};
  }
  // string_view: 16-byte views; up to 12 bytes inline, else (prefix, buffer, offset).
  const auto* view = static_cast<const unsigned char*>(a.buffers[1]) + 16 * k;
  std::int32_t length = 0;
  std::memcpy(&length, view, 4);
  if (length <= 12)
    return {reinterpret_cast<const char*>(view + 4), static_cast<std::size_t>(length)};
  std::int32_t buffer = 0;
  std::int32_t offset = 0;
  std::memcpy(&buffer, view + 8, 4);
  std::memcpy(&offset, view + 12, 4);
  const auto* chars = static_cast<const char*>(a.buffers[2 + buffer]);
  return {chars + offset, static_cast<std::size_t>(length)};
}

std::string_view column_view::text(std::int64_t i) const noexcept {
  if (type_.dictionary) return dictionary_text(dictionary_index(i));
  return read_text(*array_, type_.physical, i);
}

std::int64_t column_view::dictionary_index(std::int64_t i) const noexcept {
  int_problem ignored = int_problem::none;
  return read_integer(*array_, type_.index, i, ignored);
}

bool column_view::dictionary_null(std::int64_t k) const noexcept {
  return read_null(*array_->dictionary, k);
}

std::string_view column_view::dictionary_text(std::int64_t k) const noexcept {
  return read_text(*array_->dictionary, type_.physical, k);
}

const std::int64_t* column_view::int64_values() const noexcept {
  if (!type_.is_integer() || type_.physical != 'l' || type_.dictionary) return nullptr;
  if (array_->null_count != 0 && array_->buffers[0] != nullptr) return nullptr;
  return static_cast<const std::int64_t*>(array_->buffers[1]) + array_->offset;
}

// ---- writing ------------------------------------------------------------------------
namespace {

struct schema_holder {
  std::string name;
  std::string format;
  std::vector<ArrowSchema> children;
  std::vector<ArrowSchema*> child_pointers;
  ArrowSchema dictionary{};
};

void release_schema(ArrowSchema* schema) {
  auto* holder = static_cast<schema_holder*>(schema->private_data);
  for (ArrowSchema* child : holder->child_pointers) {
    if (child->release != nullptr) child->release(child);
  }
  if (holder->dictionary.release != nullptr) holder->dictionary.release(&holder->dictionary);
  delete holder;
  schema->release = nullptr;
}

struct array_holder {
  std::shared_ptr<const array_data> data;
  std::vector<ArrowArray> children;
  std::vector<ArrowArray*> child_pointers;
  ArrowArray dictionary{};
};

void release_array(ArrowArray* array) {
  auto* holder = static_cast<array_holder*>(array->private_data);
  for (ArrowArray* child : holder->child_pointers) {
    if (child->release != nullptr) child->release(child);
  }
  if (holder->dictionary.release != nullptr) holder->dictionary.release(&holder->dictionary);
  delete holder;
  array->release = nullptr;
}

struct stream_holder {
  field_spec schema;
  std::vector<std::shared_ptr<const array_data>> batches;
  std::size_t next = 0;
};

int stream_get_schema(ArrowArrayStream* stream, ArrowSchema* out) {
  export_schema(static_cast<stream_holder*>(stream->private_data)->schema, out);
  return 0;
}

int stream_get_next(ArrowArrayStream* stream, ArrowArray* out) {
  auto* holder = static_cast<stream_holder*>(stream->private_data);
  if (holder->next == holder->batches.size()) {
    *out = ArrowArray{};  // the end: a released array
    return 0;
  }
  export_array(holder->batches[holder->next++], out);
  return 0;
}

const char* stream_last_error(ArrowArrayStream* /*stream*/) {
  return nullptr;
}

void stream_release(ArrowArrayStream* stream) {
  delete static_cast<stream_holder*>(stream->private_data);
  stream->release = nullptr;
}

}  // namespace

void export_schema(const field_spec& spec, ArrowSchema* out) {
  auto holder = std::make_unique<schema_holder>();
  holder->name = spec.name;
  holder->format = spec.format;
  holder->children.resize(spec.children.size());
  for (std::size_t i = 0; i < spec.children.size(); ++i) {
    export_schema(spec.children[i], &holder->children[i]);
    holder->child_pointers.push_back(&holder->children[i]);
  }
  if (spec.dictionary) export_schema(*spec.dictionary, &holder->dictionary);
  out->format = holder->format.c_str();
  out->name = holder->name.c_str();
  out->metadata = nullptr;
  out->flags = spec.flags;
  out->n_children = static_cast<std::int64_t>(holder->child_pointers.size());
  out->children = holder->child_pointers.empty() ? nullptr : holder->child_pointers.data();
  out->dictionary = spec.dictionary ? &holder->dictionary : nullptr;
  out->release = release_schema;
  out->private_data = holder.release();
}

void export_array(std::shared_ptr<const array_data> data, ArrowArray* out) {
  auto holder = std::make_unique<array_holder>();
  holder->children.resize(data->children.size());
  for (std::size_t i = 0; i < data->children.size(); ++i) {
    export_array(data->children[i], &holder->children[i]);
    holder->child_pointers.push_back(&holder->children[i]);
  }
  if (data->dictionary) export_array(data->dictionary, &holder->dictionary);
  out->length = data->length;
  out->null_count = data->null_count;
  out->offset = 0;
  out->n_buffers = static_cast<std::int64_t>(data->buffers.size());
  out->buffers = const_cast<const void**>(data->buffers.data());  // the interface's own type
  out->n_children = static_cast<std::int64_t>(holder->child_pointers.size());
  out->children = holder->child_pointers.empty() ? nullptr : holder->child_pointers.data();
  out->dictionary = data->dictionary ? &holder->dictionary : nullptr;
  out->release = release_array;
  holder->data = std::move(data);
  out->private_data = holder.release();
}

void export_stream(field_spec schema, std::vector<std::shared_ptr<const array_data>> batches,
                   ArrowArrayStream* out) {
  auto holder = std::make_unique<stream_holder>();
  holder->schema = std::move(schema);
  holder->batches = std::move(batches);
  out->get_schema = stream_get_schema;
  out->get_next = stream_get_next;
  out->get_last_error = stream_last_error;
  out->release = stream_release;
  out->private_data = holder.release();
}

std::shared_ptr<array_data> int64_column(const std::int64_t* values, std::int64_t length,
                                         std::shared_ptr<const void> owner,
                                         std::shared_ptr<const std::vector<std::uint8_t>> validity,
                                         std::int64_t null_count) {
  auto data = std::make_shared<array_data>();
  data->length = length;
  data->null_count = validity ? null_count : 0;
  data->buffers = {validity ? validity->data() : nullptr, values};
  data->owners.push_back(std::move(owner));
  if (validity) data->owners.push_back(std::move(validity));
  return data;
}

std::pair<std::shared_ptr<array_data>, std::string> string_column(
    const std::vector<std::string_view>& names) {
  std::size_t total = 0;
  for (std::string_view name : names) total += name.size();
  auto chars = std::make_shared<std::string>();
  chars->reserve(total);
  for (std::string_view name : names) chars->append(name);
  auto data = std::make_shared<array_data>();
  data->length = static_cast<std::int64_t>(names.size());
  std::string format;
  const auto fill = [&](auto offset_zero) {
    using offset_t = decltype(offset_zero);
    auto offsets = std::make_shared<std::vector<offset_t>>();
    offsets->reserve(names.size() + 1);
    offset_t at = 0;
    offsets->push_back(at);
    for (std::string_view name : names)
      offsets->push_back(at += static_cast<offset_t>(name.size()));
    data->buffers = {nullptr, offsets->data(), chars->data()};
    data->owners = {offsets, chars};
  };
  if (total <= static_cast<std::size_t>(std::numeric_limits<std::int32_t>::max())) {
    fill(std::int32_t{0});
    format = "u";
  } else {
    fill(std::int64_t{0});
    format = "U";
  }
  return {std::move(data), std::move(format)};
}

}  // namespace gpucredit::arrow
