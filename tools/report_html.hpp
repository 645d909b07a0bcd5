// The self-contained HTML page of `gpucredit report`: the data as embedded JSON, the
// dygraphs chart library inlined, and a short script that draws the charts (no network),
// so the file opens offline anywhere. Used by tools/report.cpp only.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "gpucredit/types.hpp"

namespace gpucredit::tools {

struct report_page {
  std::string title;
  std::string time_unit;  // "", "s", "ms", "us" or "ns": how the grid times read as dates
  std::vector<timestamp_t> grid;
  // Totals are exact and may pass int64 (SPEC section 11).
  std::vector<total_t> fleet_balance;  // per grid time
  std::vector<total_t> breakage;       // per grid time i: expired in [t(i-1), t(i))
  std::vector<total_t> shortfall;      // per grid time i: unpaid or rejected in (t(i-1), t(i)]
  struct ranked {
    std::string account;
    total_t amount;
  };
  std::vector<ranked> top_breakage;
  std::vector<ranked> top_shortfall;
  struct account_series {
    std::string account;
    std::vector<amount_t> balance;  // per grid time
  };
  std::vector<account_series> accounts;  // the per-account view
};

/// The whole page as one string.
std::string render_report_html(const report_page& page);

}  // namespace gpucredit::tools
