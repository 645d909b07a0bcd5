// gpucredit._core: the C++ engine for Python. The public Python API (gpucredit/__init__.py)
// turns user objects into the few shapes accepted here; every bulk path runs in C++ with
// the GIL released, and results are lent to Arrow and NumPy, not copied. This file holds
// the bindings alone; binding.hpp says where the rest lives.
#include "binding.hpp"

using namespace gpucredit::python;

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
            return self.useCredit(creditId, int64_arg(timestamp, "useCredit", "timestamp"),
                                  int64_arg(amount, "useCredit", "amount"));
          },
          nb::arg("creditId"), nb::arg("timestamp"), nb::arg("amount"),
          nb::sig("def useCredit(self, creditId: str, timestamp: int, amount: int) -> bool"),
          "Uses `amount`; True when it was paid in full given the calls so far (False: a shortfall "
          "under drain, rejected under reject).")
      .def(
          "unpaid",
          [](const gc::GPUCredit& self) {
            nb::list out;
            for (const gc::GPUCredit::unpaid_use& u : self.unpaid()) {
              nb::dict row;
              row["account"] = text(u.account);
              row["call"] = u.call;
              row["timestamp"] = u.timestamp;
              row["amount"] = u.amount;
              row["outcome"] = u.rejected ? "rejected" : "shortfall";
              out.append(row);
            }
            return out;
          },
          nb::sig("def unpaid(self) -> list[dict[str, object]]"),
          "The uses (and jobs) not paid in full so far, by call: account, call (1 = the first), "
          "timestamp, amount (the shortfall, or the whole use when rejected), outcome.")
      .def(
          "runCredit",
          [](gc::GPUCredit& self, std::string_view creditId, nb::handle timestamp, nb::handle rate,
             nb::handle ticks) {
            self.runCredit(creditId, int64_arg(timestamp, "runCredit", "timestamp"),
                           int64_arg(rate, "runCredit", "rate"), int64_arg(ticks, "runCredit", "ticks"));
          },
          nb::arg("creditId"), nb::arg("timestamp"), nb::arg("rate"), nb::arg("ticks"),
          nb::sig("def runCredit(self, creditId: str, timestamp: int, rate: int, ticks: int) -> None"),
          "A job: uses `rate` at every tick timestamp, timestamp + 1, ..., timestamp + ticks - 1 "
          "(SPEC section 10), metered in closed form.");

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
                  nb::arg("backend"), nb::arg("expiration") = "duration")
      .def_static("from_stream", &py_ledger::from_stream, nb::arg("stream"), nb::arg("source"),
                  nb::arg("policy"), nb::arg("backend"), nb::arg("rows_hint") = 0, nb::arg("expiration") = "duration",
                  nb::sig("def from_stream(stream: object, source: str, policy: str, "
                          "backend: str, rows_hint: int = 0, expiration: str = 'duration') -> Ledger"))
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
      .def("query", &py_ledger::query, nb::arg("accounts"), nb::arg("timestamps"), nb::arg("plain_ok") = true,
           nb::sig("def query(self, accounts: object, timestamps: object, plain_ok: bool = True) -> Balances"))
      .def("grid", &py_ledger::grid, nb::arg("accounts"), nb::arg("start"), nb::arg("stop"), nb::arg("every"),
           nb::arg("with_balances"))
      .def("intervals", &py_ledger::intervals)
      .def("summary", &py_ledger::summary, nb::arg("start"), nb::arg("stop"))
      .def("usage", &py_ledger::usage, nb::arg("rejected"));
}
