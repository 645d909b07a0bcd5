// See report_html.hpp. The charts are drawn by dygraphs (third_party/dygraphs, 131 KB,
// inlined: the page stays one offline file), a library made for long time series: axes
// with ticks and gridlines, legends, zoom and pan, min/max bands for downsampled grids.
#include "report_html.hpp"

#include <algorithm>
#include <type_traits>

namespace gpucredit::tools {

// The chart library, inlined into every page (generated from third_party/dygraphs by
// cmake/embed_text.cmake).
extern const std::string_view dygraphs_js;
extern const std::string_view dygraphs_css;

namespace {

// Points drawn per chart at most: a finer grid is drawn from runs of times (the CSVs keep
// every value), so the page stays small and quick at 10^6 times.
constexpr std::size_t points_drawn = 1500;

// A JSON string literal, safe inside <script>: '<' is escaped so no "</script>" can end it.
void json_string(std::string& out, std::string_view s) {
  static constexpr char hex[] = "0123456789abcdef";
  out += '"';
  for (const char c : s) {
    const auto byte = static_cast<unsigned char>(c);
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (byte < 0x20 || c == '<' || c == '>' || c == '&') {
      out += "\\u00";
      out += hex[byte >> 4];
      out += hex[byte & 0xF];
    } else {
      out += c;
    }
  }
  out += '"';
}

// Integers as JSON strings: int64 (and the exact totals) do not fit a JavaScript number.
template <class Integer>
void json_numbers(std::string& out, const std::vector<Integer>& values) {
  out += '[';
  for (std::size_t i = 0; i < values.size(); ++i) {
    if (i != 0) out += ',';
    out += '"' + to_decimal(values[i]) + '"';
  }
  out += ']';
}

void json_ranked(std::string& out, const std::vector<report_page::ranked>& rows) {
  out += '[';
  for (std::size_t i = 0; i < rows.size(); ++i) {
    if (i != 0) out += ',';
    out += "{\"account\":";
    json_string(out, rows[i].account);
    out += ",\"amount\":\"" + to_decimal(rows[i].amount) + "\"}";
  }
  out += ']';
}

constexpr std::string_view page_head = R"(<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>gpucredit report</title>
<style>)";

constexpr std::string_view page_style = R"(
body{font:14px/1.45 system-ui,sans-serif;margin:0;padding:20px 28px;color:#222;background:#f6f7f9}
h1{font-size:20px;margin:0 0 4px}h2{font-size:15px;margin:0}
.note{color:#555;font-size:12.5px;margin:4px 0}
.panel{background:#fff;border:1px solid #dde1e6;border-radius:6px;padding:12px 16px 10px;margin:14px 0}
.panel-head{display:flex;align-items:baseline;justify-content:space-between;gap:16px;flex-wrap:wrap;margin-bottom:6px}
.legend{font-size:12.5px;color:#333;min-height:18px;text-align:right}
.chart{width:100%;height:320px}
.row{display:flex;gap:14px;flex-wrap:wrap}.row .panel{flex:1 1 420px;margin:0}
table.rank{width:100%;border-collapse:collapse;font-size:13px;margin-top:6px}
table.rank td{padding:3px 6px;border-bottom:1px solid #eef0f3;white-space:nowrap}
table.rank td.amount{text-align:right;font-variant-numeric:tabular-nums}
table.rank td.bar{width:45%}table.rank div{height:12px;border-radius:2px}
select{font:inherit;max-width:360px}
.dygraph-axis-label{font-size:12px;color:#444}
</style></head><body>
<h1 id="title"></h1>
<p class="note" id="sampled"></p>
<p class="note">Balances at every grid time; breakage is credit that expired unused, shortfall is usage that went unpaid (drain) or was rejected (reject). Amounts in the legends and tables are exact. Drag across a chart to zoom, shift-drag to pan, double-click to reset.</p>
<section class="panel"><div class="panel-head"><h2>Fleet balance</h2><div class="legend" id="fleet-legend"></div></div>
<div class="chart" id="fleet" data-chart="fleet-balance"></div></section>
<section class="panel"><div class="panel-head"><h2>Breakage and shortfall per step</h2><div class="legend" id="flows-legend"></div></div>
<div class="chart" id="flows" data-chart="flows"></div></section>
<div class="row"><section class="panel"><h2>Most breakage</h2><table class="rank" id="topb" data-chart="top-breakage"></table></section>
<section class="panel"><h2>Most shortfall</h2><table class="rank" id="tops" data-chart="top-shortfall"></table></section></div>
<section class="panel"><div class="panel-head"><h2>One account <select id="pick" aria-label="account"></select></h2><div class="legend" id="acct-legend"></div></div>
<div class="chart" id="acct" data-chart="account-balance"></div></section>
<script>)";

constexpr std::string_view page_data = R"(</script>
<script type="application/json" id="data">)";

constexpr std::string_view page_tail = R"(</script>
<script>
"use strict";
window.onerror = (m) => { document.documentElement.setAttribute("data-report", "error: " + m); };
const D = JSON.parse(document.getElementById("data").textContent);
const num = (s) => Number(s);  // drawing only: the exact values stay decimal strings
const scale = {s: 1e3, ms: 1, us: 1e-3, ns: 1e-6}[D.time_unit];
const xOf = (t) => scale ? new Date(num(t) * scale) : num(t);
// Thousands separators on exact decimal strings (no rounding through a double).
const sep = (s) => String(s).replace(/\B(?=(\d{3})+(?!\d))/g, ",");
const fmt = (v) => Math.round(v).toLocaleString("en-US");
const timeText = (t) => scale ? new Date(num(t) * scale).toISOString().replace(".000Z", "Z").replace("T00:00:00Z", "")
                              : sep(t);
// A chart of the series in `cols` (exact strings, one array per series) over the grid;
// `lows`, where the grid was downsampled, the lowest value each point stands for.
// `steps`: per-step values (entry i for the step (t(i-1), t(i)]), drawn as steps from
// t(i-1) to t(i); where each point stands for a run of times, from the run's first time.
function chart(id, names, cols, lows, colors, extra, steps) {
  const shift = steps && D.per_point === 1 && D.grid.length > 1 ? 1 : 0;
  const at = (row) => Math.min(row + shift, D.grid.length - 1);  // the entry a drawn row shows
  const rows = D.grid.slice(0, D.grid.length).map((t, row) => [xOf(t)].concat(cols.map((c, k) => lows && lows[k]
      ? [num(lows[k][row]), num(c[row]), num(c[row])] : num(c[at(row)]))));
  const exact = (row, col) => cols[col - 1][at(row)];
  const when = (row) => shift ? timeText(D.grid[row]) + " to " + timeText(D.grid[at(row)]) : timeText(D.grid[row]);
  return new Dygraph(document.getElementById(id), rows, Object.assign({
    labels: ["time"].concat(names), colors, legend: "always", labelsDiv: id + "-legend", strokeWidth: 1.6,
    customBars: !!lows, includeZero: false, gridLineColor: "#e6e8eb", axisLineColor: "#999",
    xRangePad: 4, yRangePad: 8, labelsUTC: true,
    axes: {
      x: Object.assign({valueFormatter: (v, o, n, g, row) => when(row), pixelsPerLabel: 90},
                       scale ? {} : {axisLabelFormatter: (v) => fmt(v)}),
      y: {valueFormatter: (v, o, n, g, row, col) => sep(exact(row, col)), axisLabelFormatter: (v) => fmt(v),
          axisLabelWidth: 100, pixelsPerLabel: 36},
    },
  }, extra || {}));
}
function rankTable(id, rows, color) {
  const table = document.getElementById(id);
  if (!rows.length) { table.insertRow().insertCell().textContent = "none in this window"; return; }
  const max = rows.reduce((m, r) => Math.max(m, num(r.amount)), 1);
  rows.forEach((r) => {
    const tr = table.insertRow();
    tr.insertCell().textContent = r.account;
    const amount = tr.insertCell();
    amount.className = "amount";
    amount.textContent = sep(r.amount);
    const bar = tr.insertCell();
    bar.className = "bar";
    const fill = document.createElement("div");
    fill.style.width = Math.max(1, 100 * num(r.amount) / max) + "%";
    fill.style.background = color;
    bar.appendChild(fill);
  });
}
document.getElementById("title").textContent = D.title;
if (D.per_point > 1) {
  document.getElementById("sampled").textContent = "The grid has " + sep(D.grid_times) + " times: each point drawn stands for " +
      sep(D.per_point) + " of them (lines: the highest balance among them, the band down to the lowest; per-step flows: " +
      "their sum). The exact values are in balances.csv and summary.csv.";
}
chart("fleet", ["fleet balance"], [D.fleet_balance], D.fleet_balance_lo ? [D.fleet_balance_lo] : null, ["#1f77b4"]);
chart("flows", ["breakage", "shortfall"], [D.breakage, D.shortfall], null, ["#d62728", "#ff7f0e"],
      {stepPlot: true, fillGraph: true, fillAlpha: 0.25, includeZero: true}, true);
rankTable("topb", D.top_breakage, "#d62728");
rankTable("tops", D.top_shortfall, "#ff7f0e");
const pick = document.getElementById("pick");
D.accounts.forEach((a, i) => { const o = document.createElement("option"); o.value = i; o.textContent = a.account; pick.appendChild(o); });
let accountChart = null;
const show = () => {
  const a = D.accounts[+pick.value];
  if (!a) return;
  if (accountChart) accountChart.destroy();
  accountChart = chart("acct", [a.account], [a.balance], a.balance_lo ? [a.balance_lo] : null, ["#2ca02c"]);
};
pick.addEventListener("change", show);
show();
if (!document.documentElement.hasAttribute("data-report")) document.documentElement.setAttribute("data-report", "ok");
</script></body></html>
)";

}  // namespace

std::string render_report_html(const report_page& page) {
  std::string out(page_head);
  out += dygraphs_css;
  out += page_style;
  out += dygraphs_js;
  out += page_data;
  out += "{\"title\":";
  json_string(out, page.title);
  out += ",\"time_unit\":";
  json_string(out, page.time_unit);
  // Drawing: at most `points_drawn` points a series. A finer grid is cut into runs of
  // `per` consecutive times; a line shows each run's max and min, a bar its sum. The
  // CSVs keep every value.
  const std::size_t n = page.grid.size();
  const std::size_t per = n <= points_drawn ? 1 : (n + points_drawn - 1) / points_drawn;
  std::vector<timestamp_t> xs;
  for (std::size_t i = 0; i < n; i += per) xs.push_back(page.grid[i]);
  out += ",\"grid_times\":" + std::to_string(n) + ",\"per_point\":" + std::to_string(per);
  out += ",\"grid\":";
  json_numbers(out, xs);
  auto lines = [&](const char* name, const auto& values) {
    using value_t = std::decay_t<decltype(values[0])>;
    std::vector<value_t> hi;
    std::vector<value_t> lo;
    for (std::size_t i = 0; i < values.size(); i += per) {
      value_t top = values[i];
      value_t bottom = values[i];
      for (std::size_t k = i; k < std::min(values.size(), i + per); ++k) {
        top = std::max(top, values[k]);
        bottom = std::min(bottom, values[k]);
      }
      hi.push_back(top);
      lo.push_back(bottom);
    }
    out += ",\"" + std::string(name) + "\":";
    json_numbers(out, hi);
    out += ",\"" + std::string(name) + "_lo\":";
    if (per > 1) {
      json_numbers(out, lo);
    } else {
      out += "null";
    }
  };
  auto sums = [&](const char* name, const std::vector<total_t>& values) {
    std::vector<total_t> summed;
    for (std::size_t i = 0; i < values.size(); i += per) {
      total_t sum = 0;
      for (std::size_t k = i; k < std::min(values.size(), i + per); ++k) sum += values[k];
      summed.push_back(sum);
    }
    out += ",\"" + std::string(name) + "\":";
    json_numbers(out, summed);
  };
  lines("fleet_balance", page.fleet_balance);
  sums("breakage", page.breakage);
  sums("shortfall", page.shortfall);
  out += ",\"top_breakage\":";
  json_ranked(out, page.top_breakage);
  out += ",\"top_shortfall\":";
  json_ranked(out, page.top_shortfall);
  out += ",\"accounts\":[";
  for (std::size_t i = 0; i < page.accounts.size(); ++i) {
    if (i != 0) out += ',';
    out += "{\"account\":";
    json_string(out, page.accounts[i].account);
    lines("balance", page.accounts[i].balance);  // ,"balance":[...],"balance_lo":...
    out += '}';
  }
  out += "]}";
  out += page_tail;
  return out;
}

}  // namespace gpucredit::tools
