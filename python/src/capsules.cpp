// The Arrow PyCapsule interface: capsules made and columns imported. See binding.hpp.
#include "binding.hpp"

namespace gpucredit::python {

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

}  // namespace gpucredit::python
