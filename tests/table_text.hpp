// Tables as text, to compare two ways of reading the same bytes (the CSV tests and
// csv_fuzz, which cannot use test_support.hpp: it needs the test vectors' folder).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "gpucredit/events.hpp"

namespace gpucredit::test {

/// A table as text, every column of every row and the names in order: two tables read
/// from the same bytes in two ways must give equal texts (the CSV tests and csv_fuzz).
inline std::string describe(const event_table& t) {
  std::string out;
  for (std::size_t r = 0; r < t.size(); ++r) {
    out += std::string(t.accounts[t.account[r]]) + "|" + std::to_string(static_cast<int>(t.kind[r])) + "|" +
           std::string(t.kind[r] == op::use ? std::string_view() : t.credit_label(static_cast<event_row>(r))) + "|" +
           std::to_string(t.timestamp[r]) + "|" + std::to_string(t.amount[r]) + "|" + std::to_string(t.end[r]) +
           "|" + std::to_string(t.line[r]) + "|" + std::to_string(t.account[r]) + "|" + std::to_string(t.credit[r]) +
           "\n";
  }
  for (std::uint32_t i = 0; i < t.accounts.size(); ++i) out += std::string(t.accounts[i]) + ";";
  return out + (t.has_jobs() ? "jobs" : "");
}

inline std::string describe(const query_batch& q) {
  std::string out;
  for (std::size_t r = 0; r < q.size(); ++r) {
    out += std::string(q.accounts[q.account[r]]) + "|" + std::to_string(q.timestamp[r]) + "|" +
           std::to_string(q.account[r]) + "\n";
  }
  return out;
}

}  // namespace gpucredit::test
