// See report_html.hpp. Charts are hand-written SVG: a few dozen lines of script do the
// line and bar charts this page needs, where a vendored chart library would add hundreds
// of kilobytes to every report.
#include "report_html.hpp"

namespace gpucredit::tools {
namespace {

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
function lineChart(svg, xs, ys, color) {
  clear(svg);
  const w = +svg.getAttribute("width"), h = +svg.getAttribute("height");
  const max = Math.max(1, ...ys.map(num));
  axes(svg, w, h, max, xs);
  const px = (i) => 60 + (xs.length > 1 ? i * (w - 80) / (xs.length - 1) : 0);
  const py = (v) => h - 30 - num(v) / max * (h - 50);
  const points = ys.map((v, i) => px(i) + "," + py(v)).join(" ");
  el(svg, "polyline", {points, fill: "none", stroke: color, "stroke-width": 2});
  ys.forEach((v, i) => el(svg, "circle", {cx: px(i), cy: py(v), r: 2.5, fill: color}).appendChild(
      document.createElementNS(NS, "title")).textContent = label(xs[i]) + ": " + v);
}
function barChart(svg, xs, series) {
  clear(svg);
  const w = +svg.getAttribute("width"), h = +svg.getAttribute("height");
  const max = Math.max(1, ...series.flatMap((s) => s.values.map(num)));
  axes(svg, w, h, max, xs);
  const slot = (w - 80) / Math.max(1, xs.length), bar = slot / (series.length + 1);
  series.forEach((s, k) => {
    s.values.forEach((v, i) => {
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
  const max = Math.max(1, ...rows.map((r) => num(r.amount)));
  rows.forEach((r, i) => {
    const y = 10 + i * 28;
    el(svg, "rect", {x: 150, y, width: Math.max(1, num(r.amount) / max * (w - 240)), height: 20, fill: color});
    el(svg, "text", {x: 145, y: y + 14, "text-anchor": "end"}, r.account.slice(0, 22));
    el(svg, "text", {x: 155 + num(r.amount) / max * (w - 240), y: y + 14}, r.amount);
  });
}
document.getElementById("title").textContent = D.title;
lineChart(document.getElementById("fleet"), D.grid, D.fleet_balance, "#1f77b4");
barChart(document.getElementById("flows"), D.grid, [
  {name: "breakage", values: D.breakage, color: "#d62728"},
  {name: "shortfall", values: D.shortfall, color: "#ff7f0e"}]);
rankChart(document.getElementById("topb"), D.top_breakage, "#d62728");
rankChart(document.getElementById("tops"), D.top_shortfall, "#ff7f0e");
const pick = document.getElementById("pick");
D.accounts.forEach((a, i) => { const o = document.createElement("option"); o.value = i; o.textContent = a.account; pick.appendChild(o); });
const show = () => { const a = D.accounts[+pick.value]; if (a) lineChart(document.getElementById("acct"), D.grid, a.balance, "#2ca02c"); };
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
  out += ",\"grid\":";
  json_numbers(out, page.grid);
  out += ",\"fleet_balance\":";
  json_numbers(out, page.fleet_balance);
  out += ",\"breakage\":";
  json_numbers(out, page.breakage);
  out += ",\"shortfall\":";
  json_numbers(out, page.shortfall);
  out += ",\"top_breakage\":";
  json_ranked(out, page.top_breakage);
  out += ",\"top_shortfall\":";
  json_ranked(out, page.top_shortfall);
  out += ",\"accounts\":[";
  for (std::size_t i = 0; i < page.accounts.size(); ++i) {
    if (i != 0) out += ',';
    out += "{\"account\":";
    json_string(out, page.accounts[i].account);
    out += ",\"balance\":";
    json_numbers(out, page.accounts[i].balance);
    out += '}';
  }
  out += "]}";
  out += page_tail;
  return out;
}

}  // namespace gpucredit::tools
