// Dictionary, event table and the input_error type: validation shared by every input path.
#include "gpucredit/events.hpp"

#include <cstring>

#include "cpu/io/validate.hpp"
#include "gpucredit/error.hpp"

namespace gpucredit {

namespace {

std::string located(const std::string& source, std::uint64_t line, const std::string& reason) {
  std::string text = source;
  if (line != 0) {
    text.push_back(':');
    text.append(std::to_string(line));
  }
  text.append(": ");
  text.append(reason);
  return text;
}

}  // namespace

input_error::input_error(std::string source, std::uint64_t line, std::string reason)
    : error(located(source, line, reason)),
      source_(std::move(source)),
      line_(line),
      reason_(std::move(reason)) {}

dictionary::dictionary(const dictionary& other) : names_(other.names_) {
  // Keys are views into names_: rebuild them over this copy's strings.
  index_.reserve(names_.size());
  for (std::uint32_t i = 0; i < names_.size(); ++i) index_.emplace(names_[i], i);
}

dictionary& dictionary::operator=(const dictionary& other) {
  if (this != &other) *this = dictionary(other);
  return *this;
}

std::uint32_t dictionary::intern(std::string_view name) {
  // Logs often repeat a name on consecutive lines: one comparison before the hash.
  if (last_ < names_.size() && names_[last_] == name) return last_;
  if (auto it = index_.find(name); it != index_.end()) {
    last_ = it->second;
    return it->second;
  }
  if (names_.size() >= std::numeric_limits<std::uint32_t>::max()) {
    throw error("gpucredit: more than 2^32 - 1 distinct names");
  }
  const auto index = static_cast<std::uint32_t>(names_.size());
  names_.emplace_back(name);
  index_.emplace(names_.back(), index);
  last_ = index;
  return index;
}

bool dictionary::contains_fast(std::string_view name) const {
  if (last_ < names_.size() && names_[last_] == name) return true;
  return index_.find(name) != index_.end();
}

std::optional<std::uint32_t> dictionary::find(std::string_view name) const {
  if (auto it = index_.find(name); it != index_.end()) return it->second;
  return std::nullopt;
}

void event_table::reserve(std::size_t count) {
  account.reserve(count);
  kind.reserve(count);
  timestamp.reserve(count);
  amount.reserve(count);
  end.reserve(count);
  credit.reserve(count);
  line.reserve(count);
}

namespace detail {

const char* add_problem(timestamp_t at, amount_t amount, timestamp_t expiration) noexcept {
  if (amount < 0) return "negative amount";
  if (expiration < 0) return "negative expiration";
  if (at > timestamp_max - expiration) return "timestamp + expiration beyond int64";
  return nullptr;
}

const char* use_problem(amount_t amount) noexcept { return amount < 0 ? "negative amount" : nullptr; }

const char* run_problem(timestamp_t start, amount_t rate, std::int64_t ticks) noexcept {
  if (rate < 0) return "negative rate";
  if (ticks < 0) return "negative tick count";
  if (ticks > 0 && start > timestamp_max - (ticks - 1)) return "last tick beyond int64";
  if (ticks > 0 && rate > amount_max / ticks) return "rate x ticks beyond int64";
  return nullptr;
}

std::optional<op> parse_op(std::string_view name) noexcept {
  if (name == "add") return op::add;
  if (name == "use") return op::use;
  if (name == "run") return op::run;
  return std::nullopt;
}

namespace {
constexpr std::size_t quoted_bytes_max = 40;  // how much of a bad field an error message shows
}  // namespace

// A field as an error message shows it: at most `quoted_bytes_max` bytes, in quotes,
// control bytes written as \xHH so that the message stays one printable line.
std::string shown(std::string_view field) {
  static constexpr char hex[] = "0123456789abcdef";
  std::string out = "'";
  for (const char c : field.substr(0, quoted_bytes_max)) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte < 0x20 || byte == 0x7F) {
      out += "\\x";
      out += hex[byte >> 4];
      out += hex[byte & 0xF];
    } else {
      out += c;
    }
  }
  if (field.size() > quoted_bytes_max) out += "...";
  out += "'";
  return out;
}

bool valid_utf8(std::string_view text) noexcept {
  std::size_t i = 0;
  const std::size_t n = text.size();
  while (i < n) {
    const auto lead = static_cast<unsigned char>(text[i]);
    if (lead < 0x80) {
      ++i;
      continue;
    }
    std::size_t length = 0;
    std::uint32_t code = 0;
    if (lead >= 0xC2 && lead <= 0xDF) {
      length = 2;
      code = lead & 0x1Fu;
    } else if (lead >= 0xE0 && lead <= 0xEF) {
      length = 3;
      code = lead & 0x0Fu;
    } else if (lead >= 0xF0 && lead <= 0xF4) {
      length = 4;
      code = lead & 0x07u;
    } else {
      return false;
    }
    if (i + length > n) return false;
    for (std::size_t k = 1; k < length; ++k) {
      const auto next = static_cast<unsigned char>(text[i + k]);
      if ((next & 0xC0u) != 0x80u) return false;
      code = (code << 6) | (next & 0x3Fu);
    }
    if (length == 3 && (code < 0x800 || (code >= 0xD800 && code <= 0xDFFF))) return false;
    if (length == 4 && (code < 0x10000 || code > 0x10FFFF)) return false;
    i += length;
  }
  return true;
}

std::string name_problem(std::string_view name, std::string_view field) {
  const char* what = nullptr;
  if (name.empty()) {
    what = "missing ";
  } else if (std::memchr(name.data(), '\0', name.size()) != nullptr) {
    what = "NUL byte in ";
  } else if (!valid_utf8(name)) {
    what = "invalid UTF-8 in ";
  } else {
    return {};
  }
  return what + std::string(field);
}

}  // namespace detail

namespace {

void check_room(const event_table& table, std::uint64_t source_line) {
  if (table.size() >= events_max) {
    throw input_error(table.source, source_line, "more than 2^32 - 1 events");
  }
}

void append(event_table& table, account_index account, op kind, timestamp_t at, amount_t amount,
            timestamp_t end, std::uint32_t credit, std::uint64_t source_line) {
  table.account.push_back(account);
  table.kind.push_back(kind);
  table.timestamp.push_back(at);
  table.amount.push_back(amount);
  table.end.push_back(end);
  table.credit.push_back(credit);
  table.line.push_back(source_line);
}

}  // namespace

namespace {

// A name already in `names` was checked when it came in: only a new one is checked.
void check_new_name(const event_table& table, const dictionary& names, std::string_view name, std::string_view field,
                    std::uint64_t source_line) {
  if (names.contains_fast(name)) return;
  if (std::string problem = detail::name_problem(name, field); !problem.empty()) {
    throw input_error(table.source, source_line, std::move(problem));
  }
}

}  // namespace

void event_table::add(std::string_view account_name, std::string_view credit_label, timestamp_t at,
                      amount_t amount_value, timestamp_t expiration, std::uint64_t source_line) {
  check_room(*this, source_line);
  check_new_name(*this, accounts, account_name, "account", source_line);
  check_new_name(*this, credit_labels, credit_label, "credit_id", source_line);
  if (const char* problem = detail::add_problem(at, amount_value, expiration)) {
    throw input_error(source, source_line, problem);
  }
  const account_index a = accounts.intern(account_name);
  const std::uint32_t c = credit_labels.intern(credit_label);
  append(*this, a, op::add, at, amount_value, at + expiration, c, source_line);
}

void event_table::use(std::string_view account_name, timestamp_t at, amount_t amount_value,
                      std::uint64_t source_line) {
  check_room(*this, source_line);
  check_new_name(*this, accounts, account_name, "account", source_line);
  if (const char* problem = detail::use_problem(amount_value)) {
    throw input_error(source, source_line, problem);
  }
  const account_index a = accounts.intern(account_name);
  append(*this, a, op::use, at, amount_value, at, 0, source_line);
}

void event_table::run(std::string_view account_name, std::string_view job_label, timestamp_t start, amount_t rate,
                      std::int64_t ticks, std::uint64_t source_line) {
  check_room(*this, source_line);
  check_new_name(*this, accounts, account_name, "account", source_line);
  check_new_name(*this, credit_labels, job_label, "job id", source_line);
  if (const char* problem = detail::run_problem(start, rate, ticks)) throw input_error(source, source_line, problem);
  const account_index a = accounts.intern(account_name);
  const std::uint32_t c = credit_labels.intern(job_label);
  // 0 ticks: no effect, kept as a rate-0 job of one tick so that rows stay arrivals.
  append(*this, a, op::run, start, ticks == 0 ? 0 : rate, ticks == 0 ? start : start + (ticks - 1), c, source_line);
  ++jobs_;
}

std::vector<account_index> query_batch::resolve(const dictionary& events) const {
  std::vector<account_index> mapping(accounts.size());
  for (std::uint32_t i = 0; i < accounts.size(); ++i) {
    mapping[i] = events.find(accounts[i]).value_or(account_none);
  }
  std::vector<account_index> resolved(account.size());
  for (std::size_t i = 0; i < account.size(); ++i) resolved[i] = mapping[account[i]];
  return resolved;
}

}  // namespace gpucredit
