// Library errors as the package's Python exceptions; argument conversion. See binding.hpp.
#include "binding.hpp"
#include "cpu/io/validate.hpp"

namespace gpucredit::python {

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
  } catch (const gc::backend_unavailable& e) {
    raise_python("BackendUnavailable", e.what(), nb::none(), nb::none(), nb::none(), nb::none());
  } catch (const gc::device_error& e) {
    raise_python("DeviceError", e.what(), nb::none(), nb::none(), nb::none(), nb::none());
  } catch (const gc::backend_error& e) {
    raise_python("BackendError", e.what(), nb::none(), nb::none(), nb::none(), nb::none());
  } catch (const gc::error& e) {
    raise_python("Error", e.what(), nb::none(), nb::none(), nb::none(), nb::none());
  }
}

gc::overdraft_policy parse_policy(std::string_view name) {
  if (name == "drain") return gc::overdraft_policy::drain;
  if (name == "reject") return gc::overdraft_policy::reject;
  throw nb::value_error(
      ("policy must be 'drain' or 'reject', not " + gc::detail::shown(name)).c_str());
}

gc::expiration_form parse_expiration_form(std::string_view name) {
  if (name == "duration") return gc::expiration_form::duration;
  if (name == "end") return gc::expiration_form::end;
  throw nb::value_error(("expiration must be 'duration' or 'end', not " + gc::detail::shown(name)).c_str());
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

}  // namespace gpucredit::python
