// See report_html.hpp. Charts are hand-written SVG: a few dozen lines of script do the
// line and bar charts this page needs, where a vendored chart library would add hundreds
// of kilobytes to every report.
#include "report_html.hpp"

#include <algorithm>
#include <type_traits>

namespace gpucredit::tools {
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
<html lang="en"><head><meta charset="utf-8"><title>gpucredit report</title>
<style>
body{font:14px/1.4 system-ui,sans-serif;margin:24px;color:#222;max-width:1100px}
h1{font-size:20px}h2{font-size:16px;margin-top:28px}
.chart{border:1px solid #ddd;border-radius:4px;background:#fff}
.note{color:#666;font-size:12px}.row{display:flex;gap:24px;flex-wrap:wrap}
svg text{font-size:11px;fill:#444}
</style></head><body>
<h1 id="title"></h1>
<p class="note" id="sampled"></p>
<p class="note">Balances at every grid time; breakage is credit that expired unused, shortfall is usage that went unpaid (drain) or was rejected (reject). All amounts exact.</p>
<h2>Fleet balance</h2><svg class="chart" id="fleet" width="1000" height="260" data-chart="fleet-balance"></svg>
<h2>Breakage and shortfall per step</h2><svg class="chart" id="flows" width="1000" height="260" data-chart="flows"></svg>
<div class="row"><div><h2>Most breakage</h2><svg class="chart" id="topb" width="480" height="300" data-chart="top-breakage"></svg></div>
<div><h2>Most shortfall</h2><svg class="chart" id="tops" width="480" height="300" data-chart="top-shortfall"></svg></div></div>
<h2>One account</h2><select id="pick"></select>
<svg class="chart" id="acct" width="1000" height="260" data-chart="account-balance"></svg>
<script type="application/json" id="data">)";

constexpr std::string_view page_tail = R"(</script>
<script>
"use strict";
window.onerror = (m) => { document.documentElement.setAttribute("data-report", "error: " + m); };
const D = JSON.parse(document.getElementById("data").textContent);
const NS = "http://www.w3.org/2000/svg";
const num = (s) => Number(s);  // display only: exact values stay strings in the data
const scale = {s: 1e3, ms: 1, us: 1e-3, ns: 1e-6}[D.time_unit];
const label = (t) => scale ? new Date(num(t) * scale).toISOString().replace(".000Z", "Z") : String(t);
function el(svg, name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  svg.appendChild(e);
  return e;
}
function clear(svg) { while (svg.firstChild) svg.removeChild(svg.firstChild); }
const maxOf = (values) => values.reduce((m, v) => Math.max(m, num(v)), 1);  // no spread: grids may be huge
function axes(svg, w, h, max, xs) {
  el(svg, "line", {x1: 60, y1: h - 30, x2: w - 10, y2: h - 30, stroke: "#999"});
  el(svg, "line", {x1: 60, y1: 10, x2: 60, y2: h - 30, stroke: "#999"});
  el(svg, "text", {x: 4, y: 16}, String(max));
  el(svg, "text", {x: 4, y: h - 32}, "0");
  if (xs.length) {
    el(svg, "text", {x: 60, y: h - 12}, label(xs[0]));
    el(svg, "text", {x: w - 10, y: h - 12, "text-anchor": "end"}, label(xs[xs.length - 1]));
  }
}
// A line through `hi`; where the grid was downsampled, a second through `lo` (the min
// and max of the times each point stands for).
function lineChart(svg, xs, hi, lo, color) {
  clear(svg);
  const w = +svg.getAttribute("width"), h = +svg.getAttribute("height");
  const max = maxOf(hi);
  axes(svg, w, h, max, xs);
  const px = (i) => 60 + (xs.length > 1 ? i * (w - 80) / (xs.length - 1) : 0);
  const py = (v) => h - 30 - num(v) / max * (h - 50);
  el(svg, "polyline", {points: hi.map((v, i) => px(i) + "," + py(v)).join(" "), fill: "none", stroke: color,
                       "stroke-width": 2});
  if (lo) el(svg, "polyline", {points: lo.map((v, i) => px(i) + "," + py(v)).join(" "), fill: "none", stroke: color,
                               "stroke-width": 1, "stroke-dasharray": "3,2"});
  if (xs.length <= 400) {
    hi.forEach((v, i) => el(svg, "circle", {cx: px(i), cy: py(v), r: 2.5, fill: color}).appendChild(
        document.createElementNS(NS, "title")).textContent = label(xs[i]) + ": " + v);
  }
}
function barChart(svg, xs, series) {
  clear(svg);
  const w = +svg.getAttribute("width"), h = +svg.getAttribute("height");
  const max = series.reduce((m, s) => Math.max(m, maxOf(s.values)), 1);
  axes(svg, w, h, max, xs);
  const slot = (w - 80) / Math.max(1, xs.length), bar = slot / (series.length + 1);
  series.forEach((s, k) => {
    s.values.forEach((v, i) => {
      if (num(v) === 0) return;
      const height = num(v) / max * (h - 50);
      el(svg, "rect", {x: 60 + i * slot + k * bar, y: h - 30 - height, width: Math.max(1, bar - 1), height, fill: s.color})
          .appendChild(document.createElementNS(NS, "title")).textContent = s.name + " " + label(xs[i]) + ": " + v;
    });
    el(svg, "text", {x: w - 160, y: 20 + 14 * k, style: "fill:" + s.color}, s.name);
  });
}
function rankChart(svg, rows, color) {
  clear(svg);
  const w = +svg.getAttribute("width");
  if (!rows.length) { el(svg, "text", {x: 10, y: 20}, "none in this window"); return; }
  const max = rows.reduce((m, r) => Math.max(m, num(r.amount)), 1);
  rows.forEach((r, i) => {
    const y = 10 + i * 28;
    el(svg, "rect", {x: 150, y, width: Math.max(1, num(r.amount) / max * (w - 240)), height: 20, fill: color});
    el(svg, "text", {x: 145, y: y + 14, "text-anchor": "end"}, r.account.slice(0, 22));
    el(svg, "text", {x: 155 + num(r.amount) / max * (w - 240), y: y + 14}, r.amount);
  });
}
document.getElementById("title").textContent = D.title;
if (D.per_point > 1) {
  document.getElementById("sampled").textContent = "The grid has " + D.grid_times + " times: each point drawn stands for " +
      D.per_point + " of them (lines: the highest and, dashed, the lowest balance among them; bars: their sum). " +
      "The exact values are in balances.csv and summary.csv.";
}
lineChart(document.getElementById("fleet"), D.grid, D.fleet_balance, D.fleet_balance_lo, "#1f77b4");
barChart(document.getElementById("flows"), D.grid, [
  {name: "breakage", values: D.breakage, color: "#d62728"},
  {name: "shortfall", values: D.shortfall, color: "#ff7f0e"}]);
rankChart(document.getElementById("topb"), D.top_breakage, "#d62728");
rankChart(document.getElementById("tops"), D.top_shortfall, "#ff7f0e");
const pick = document.getElementById("pick");
D.accounts.forEach((a, i) => { const o = document.createElement("option"); o.value = i; o.textContent = a.account; pick.appendChild(o); });
const show = () => {
  const a = D.accounts[+pick.value];
  if (a) lineChart(document.getElementById("acct"), D.grid, a.balance, a.balance_lo, "#2ca02c");
};
pick.addEventListener("change", show);
show();
if (!document.documentElement.hasAttribute("data-report")) document.documentElement.setAttribute("data-report", "ok");
</script></body></html>
)";

}  // namespace

std::string render_report_html(const report_page& page) {
  std::string out(page_head);
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
