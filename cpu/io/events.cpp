// Dictionary, event table and the input_error type: validation shared by every input path.
#include "gpucredit/events.hpp"

#include <algorithm>
#include <bit>
#include <cstdint>
#include <cstring>
#include <limits>

#include "cpu/io/validate.hpp"
#include "cpu/memory.hpp"
#include "cpu/parallel.hpp"
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

dictionary::dictionary(const dictionary& other) {
  // Views point into the other's arena: intern each name again into this one's.
  for (const entry& e : other.names_) intern(e.name);
}

dictionary& dictionary::operator=(const dictionary& other) {
  if (this != &other) *this = dictionary(other);
  return *this;
}

namespace {

std::uint64_t load8(const char* p) noexcept {
  std::uint64_t word = 0;
  std::memcpy(&word, p, 8);
  return word;
}
std::uint32_t load4(const char* p) noexcept {
  std::uint32_t word = 0;
  std::memcpy(&word, p, 4);
  return word;
}

// Byte-equal names, without a library call for the short names logs are made of.
bool same_name(std::string_view a, std::string_view b) noexcept {
  const std::size_t n = a.size();
  if (n != b.size()) return false;
  if (n >= 8 && n <= 16) {  // two overlapping words
    return load8(a.data()) == load8(b.data()) && load8(a.data() + n - 8) == load8(b.data() + n - 8);
  }
  if (n >= 4 && n < 8) return load4(a.data()) == load4(b.data()) && load4(a.data() + n - 4) == load4(b.data() + n - 4);
  return n == 0 || std::memcmp(a.data(), b.data(), n) == 0;
}

// The 64-bit finalizer of splitmix64: every input bit reaches every output bit.
std::uint64_t mixed(std::uint64_t h) noexcept {
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

// A short name's hash, from its two words and its size.
std::uint64_t short_hash(std::uint64_t first, std::uint64_t second, std::uint32_t size) noexcept {
  return mixed((first * 0x9E3779B97F4A7C15ULL) ^ std::rotl(second * 0xC2B2AE3D27D4EB4FULL, 31) ^ size);
}

// A long name's hash: 64-bit FNV-1a over 8 bytes at a time (the last word overlapping
// the one before: no byte-by-byte tail), then mixed.
std::uint64_t long_hash(const char* p, std::size_t n) noexcept {
  std::uint64_t h = 0xcbf29ce484222325ULL ^ n;
  for (std::size_t i = 0; i + 8 < n; i += 8) h = (h ^ load8(p + i)) * 0x100000001b3ULL;
  h = (h ^ load8(p + n - 8)) * 0x100000001b3ULL;
  return mixed(h);
}

}  // namespace

inline dictionary::key dictionary::key_of(std::string_view name, std::uint32_t& hash) noexcept {
  const std::size_t n = name.size();
  const char* p = name.data();
  key k{0, 0};
  std::uint64_t h = 0;
  if (n > inline_bytes) {
    h = k.second = long_hash(p, n);
  } else {
    // The bytes as two words, zero-padded, without reading outside the name: overlapping
    // loads, shifted to drop the bytes read twice.
    if (n > 8) {
      k.first = load8(p);
      k.second = load8(p + n - 8) >> (8 * (16 - n));
    } else if (n == 8) {
      k.first = load8(p);
    } else if (n >= 4) {
      k.first = load4(p) | ((std::uint64_t{load4(p + n - 4)} >> (8 * (8 - n))) << 32);
    } else if (n > 0) {
      const auto byte = [&](std::size_t i) { return std::uint64_t{static_cast<unsigned char>(p[i])} << (8 * i); };
      k.first = byte(0) | byte(n / 2) | byte(n - 1);
    }
    h = short_hash(k.first, k.second, static_cast<std::uint32_t>(n));
  }
  const auto folded = static_cast<std::uint32_t>(h >> 32);  // the slot's position and its check
  hash = folded == 0 ? 1 : folded;
  return k;
}

inline bool dictionary::matches(const entry& stored, const key& k, std::string_view name) noexcept {
  if (stored.k.second != k.second || stored.name.size() != name.size()) return false;
  return name.size() <= inline_bytes ? stored.k.first == k.first
                                     : std::memcmp(stored.name.data(), name.data(), name.size()) == 0;
}

inline std::size_t dictionary::probe(std::string_view name, const key& k, std::uint32_t h) const noexcept {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t i = static_cast<std::size_t>(h) & mask;; i = (i + 1) & mask) {
    const slot& s = slots_[i];
    if (s.hash == 0 || (s.hash == h && matches(names_[s.index], k, name))) return i;
  }
}

// A table this small stays in cache: prefetching would only cost its passes.
constexpr std::size_t prefetch_slots_min = std::size_t{1} << 15;
constexpr std::size_t prefetch_batch_max = 64;

void dictionary::prefetch_hashed(std::span<const std::string_view> names, const std::uint32_t* hash) const noexcept {
  const std::size_t mask = slots_.size() - 1;
  for (std::size_t j = 0; j < names.size(); ++j) __builtin_prefetch(&slots_[hash[j] & mask]);
  // The home slot holds the name in the common case (the table is at most half full):
  // its entry, then a long name's bytes.
  for (std::size_t j = 0; j < names.size(); ++j) {
    const slot& s = slots_[hash[j] & mask];
    if (s.hash == hash[j]) __builtin_prefetch(&names_[s.index]);
  }
  for (std::size_t j = 0; j < names.size(); ++j) {
    const slot& s = slots_[hash[j] & mask];
    if (s.hash == hash[j] && names[j].size() > inline_bytes) __builtin_prefetch(names_[s.index].name.data());
  }
}

void dictionary::prefetch(std::span<const std::string_view> names) const noexcept {
  if (slots_.size() < prefetch_slots_min) return;
  std::uint32_t hash[prefetch_batch_max];
  for (std::size_t first = 0; first < names.size(); first += prefetch_batch_max) {
    const std::span<const std::string_view> batch = names.subspan(first, std::min(prefetch_batch_max, names.size() - first));
    for (std::size_t j = 0; j < batch.size(); ++j) key_of(batch[j], hash[j]);
    prefetch_hashed(batch, hash);
  }
}

std::string_view dictionary::store(std::string_view name) {
  if (name.empty()) return {};
  if (blocks_.empty() || name.size() > block_size_ - block_used_) {
    // A new block: 64 KiB, or the name's own size when it is larger.
    block_size_ = std::max<std::size_t>(std::size_t{1} << 16, name.size());
    blocks_.push_back(std::make_unique<char[]>(block_size_));
    block_used_ = 0;
  }
  char* at = blocks_.back().get() + block_used_;
  std::memcpy(at, name.data(), name.size());
  block_used_ += name.size();
  return {at, name.size()};
}

void dictionary::grow() {
  std::vector<slot> old = std::move(slots_);
  const std::size_t count = old.empty() ? 16 : old.size() * 2;
  detail::reserve_on_huge_pages(slots_, count);
  slots_.assign(count, slot{0, 0});
  const std::size_t mask = count - 1;
  for (const slot& s : old) {  // stored hashes: no name is read
    if (s.hash == 0) continue;
    std::size_t i = static_cast<std::size_t>(s.hash) & mask;
    while (slots_[i].hash != 0) i = (i + 1) & mask;
    slots_[i] = s;
  }
}

std::uint32_t dictionary::intern(std::string_view name, bool& added) {
  // Logs often repeat a name on consecutive lines: the name found last is compared first,
  // byte for byte, before any hash is made.
  if (last_ < names_.size() && same_name(names_[last_].name, name)) {
    added = false;
    return last_;
  }
  std::uint32_t h = 0;
  const key k = key_of(name, h);
  return intern_keyed(name, k, h, added);
}

inline std::uint32_t dictionary::intern_keyed(std::string_view name, const key& k, std::uint32_t h, bool& added) {
  added = false;
  if (2 * (names_.size() + 1) > slots_.size()) grow();
  const std::size_t i = probe(name, k, h);
  if (slots_[i].hash != 0) {
    last_ = slots_[i].index;
    return last_;
  }
  if (names_.size() >= std::numeric_limits<std::uint32_t>::max()) {
    throw error("gpucredit: more than 2^32 - 1 distinct names");
  }
  const auto index = static_cast<std::uint32_t>(names_.size());
  const std::string_view stored = store(name);
  names_.push_back({stored, k});
  slots_[i] = {h, index};
  last_ = index;
  added = true;
  return index;
}

void dictionary::intern_all(std::span<const std::string_view> names, std::uint32_t* out) {
  // As prefetch() and intern() one after another, each key made once.
  key keys[prefetch_batch_max];
  std::uint32_t hash[prefetch_batch_max];
  for (std::size_t first = 0; first < names.size(); first += prefetch_batch_max) {
    const std::span<const std::string_view> batch = names.subspan(first, std::min(prefetch_batch_max, names.size() - first));
    for (std::size_t j = 0; j < batch.size(); ++j) keys[j] = key_of(batch[j], hash[j]);
    if (slots_.size() >= prefetch_slots_min) prefetch_hashed(batch, hash);
    for (std::size_t j = 0; j < batch.size(); ++j) {
      // The name found last first, by its key (as intern() does by its bytes).
      bool added = false;
      out[first + j] = last_ < names_.size() && matches(names_[last_], keys[j], batch[j])
                           ? last_
                           : intern_keyed(batch[j], keys[j], hash[j], added);
    }
  }
}

void dictionary::pop_last() {
  // The last name's slot: no name inserted before it probes through it (it was empty
  // then), and none was inserted after it, so emptying it breaks no probe chain.
  const std::string_view name = names_.back().name;
  std::uint32_t h = 0;
  const key k = key_of(name, h);
  slots_[probe(name, k, h)] = slot{0, 0};
  block_used_ -= name.size();  // the arena's last bytes (a block of its own is kept)
  names_.pop_back();
  last_ = 0;
}

std::optional<std::uint32_t> dictionary::find(std::string_view name) const {
  if (slots_.empty()) return std::nullopt;
  std::uint32_t h = 0;
  const key k = key_of(name, h);
  const slot& s = slots_[probe(name, k, h)];
  if (s.hash == 0) return std::nullopt;
  return s.index;
}

void event_table::reserve(std::size_t count) {
  detail::reserve_on_huge_pages(account, count);
  detail::reserve_on_huge_pages(kind, count);
  detail::reserve_on_huge_pages(timestamp, count);
  detail::reserve_on_huge_pages(amount, count);
  detail::reserve_on_huge_pages(end, count);
  detail::reserve_on_huge_pages(credit, count);
  detail::reserve_on_huge_pages(line, count);
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

std::int64_t expiration_of(timestamp_t at, std::int64_t sixth, expiration_form form, const std::string& source,
                           std::uint64_t line) {
  if (form == expiration_form::duration) return sixth;
  if (sixth < at) {
    throw input_error(source, line, "expiration end " + std::to_string(sixth) + " is before the timestamp " +
                                        std::to_string(at));
  }
  const std::uint64_t span = static_cast<std::uint64_t>(sixth) - static_cast<std::uint64_t>(at);
  if (span > static_cast<std::uint64_t>(timestamp_max)) {
    throw input_error(source, line, "the credit lasts longer than int64 counts (end - timestamp beyond int64)");
  }
  return static_cast<std::int64_t>(span);
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

// Interns `name` into `names`, checking it only when it is new (a name already there was
// checked when it came in). A bad new name is taken back and refused.
std::uint32_t intern_checked(const event_table& table, dictionary& names, std::string_view name,
                             std::string_view field, std::uint64_t source_line) {
  bool added = false;
  const std::uint32_t index = names.intern(name, added);
  if (added) {
    if (std::string problem = detail::name_problem(name, field); !problem.empty()) {
      names.pop_last();
      throw input_error(table.source, source_line, std::move(problem));
    }
  }
  return index;
}

// Interns an event's account and label (checked, as above); nothing stays interned when
// either is refused.
std::pair<account_index, std::uint32_t> intern_names(event_table& table, std::string_view account,
                                                     std::string_view label, std::string_view label_field,
                                                     std::uint64_t source_line) {
  const std::size_t accounts_before = table.accounts.size();
  const account_index a = intern_checked(table, table.accounts, account, "account", source_line);
  try {
    return {a, intern_checked(table, table.credit_labels, label, label_field, source_line)};
  } catch (...) {
    if (table.accounts.size() > accounts_before) table.accounts.pop_last();
    throw;
  }
}

}  // namespace

void event_table::add(std::string_view account_name, std::string_view credit_label, timestamp_t at,
                      amount_t amount_value, timestamp_t expiration, std::uint64_t source_line) {
  check_room(*this, source_line);
  if (const char* problem = detail::add_problem(at, amount_value, expiration)) throw input_error(source, source_line, problem);
  const auto [a, c] = intern_names(*this, account_name, credit_label, "credit_id", source_line);
  append(*this, a, op::add, at, amount_value, at + expiration, c, source_line);
}

void event_table::use(std::string_view account_name, timestamp_t at, amount_t amount_value,
                      std::uint64_t source_line) {
  check_room(*this, source_line);
  if (const char* problem = detail::use_problem(amount_value)) throw input_error(source, source_line, problem);
  const account_index a = intern_checked(*this, accounts, account_name, "account", source_line);
  append(*this, a, op::use, at, amount_value, at, 0, source_line);
}

void event_table::run(std::string_view account_name, std::string_view job_label, timestamp_t start, amount_t rate,
                      std::int64_t ticks, std::uint64_t source_line) {
  check_room(*this, source_line);
  if (const char* problem = detail::run_problem(start, rate, ticks)) throw input_error(source, source_line, problem);
  if (std::string problem = detail::name_problem(job_label, "job id"); !problem.empty()) {
    throw input_error(source, source_line, std::move(problem));
  }
  const account_index a = intern_checked(*this, accounts, account_name, "account", source_line);
  const auto c = static_cast<std::uint32_t>(job_ids.size());
  job_ids.emplace_back(job_label);
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

namespace {

// Interns the names of `part` into `into` in the part's order; the index of each there.
std::vector<std::uint32_t> merge_names(dictionary& into, const dictionary& part) {
  std::vector<std::uint32_t> mapping(part.size());
  for (std::uint32_t i = 0; i < part.size(); ++i) mapping[i] = into.intern(part[i]);
  return mapping;
}

// Row offsets of consecutive parts: offsets[k] is where part k's rows go.
template <class Part>
std::vector<std::size_t> row_offsets(const std::vector<Part>& parts) {
  std::vector<std::size_t> offsets(parts.size() + 1, 0);
  for (std::size_t k = 0; k < parts.size(); ++k) offsets[k + 1] = offsets[k] + parts[k].size();
  return offsets;
}

}  // namespace

event_table event_table::join(std::vector<event_table>&& parts) {
  if (parts.empty()) return event_table{};
  if (parts.size() == 1) return std::move(parts[0]);
  const std::vector<std::size_t> offsets = row_offsets(parts);
  if (offsets.back() > events_max) {  // the event past the limit, where add() would refuse it
    std::size_t k = 0;
    while (offsets[k + 1] <= events_max) ++k;
    throw input_error(parts[k].source, parts[k].line[events_max - offsets[k]], "more than 2^32 - 1 events");
  }
  // The first part's table is the start of the joined one, its names and rows in place:
  // the others' names are interned after its own, and their rows appended. Where the
  // first part reserved room for every row (parse_parts does), nothing is copied twice
  // and nothing is zero-filled first.
  event_table out = std::move(parts[0]);
  std::vector<std::vector<std::uint32_t>> account_map(parts.size());
  std::vector<std::vector<std::uint32_t>> label_map(parts.size());
  std::vector<std::size_t> job_offset(parts.size(), 0);
  for (std::size_t k = 1; k < parts.size(); ++k) {  // each distinct name of a part once, in order
    account_map[k] = merge_names(out.accounts, parts[k].accounts);
    label_map[k] = merge_names(out.credit_labels, parts[k].credit_labels);
    job_offset[k] = out.job_ids.size();
    for (std::string& id : parts[k].job_ids) out.job_ids.push_back(std::move(id));
    out.jobs_ += parts[k].jobs_;
  }
  // Each column takes the other parts' rows in order, a few columns a core, each
  // part's column freed once copied.
  auto append = [&](auto member) {
    (out.*member).reserve(offsets.back());
    for (std::size_t k = 1; k < parts.size(); ++k) detail::append_column(out.*member, parts[k].*member);
  };
  detail::run_parts(3, [&](std::size_t group) {
    if (group == 0) {
      append(&event_table::timestamp);
      append(&event_table::amount);
    } else if (group == 1) {
      append(&event_table::end);
      append(&event_table::line);
    } else {
      append(&event_table::kind);
      // Accounts and credits renumbered into the joined dictionaries.
      out.account.reserve(offsets.back());
      out.credit.reserve(offsets.back());
      for (std::size_t k = 1; k < parts.size(); ++k) {
        const event_table& p = parts[k];
        for (std::size_t r = 0; r < p.account.size(); ++r) {
          out.account.push_back(account_map[k][p.account[r]]);
          const op row_kind = out.kind[offsets[k] + r];
          out.credit.push_back(row_kind == op::add   ? label_map[k][p.credit[r]]
                               : row_kind == op::run ? static_cast<std::uint32_t>(job_offset[k] + p.credit[r])
                                                     : 0);
        }
      }
    }
  });
  for (std::size_t k = 1; k < parts.size(); ++k) parts[k] = event_table{};
  return out;
}

query_batch query_batch::join(std::vector<query_batch>&& parts) {
  if (parts.empty()) return query_batch{};
  if (parts.size() == 1) return std::move(parts[0]);
  const std::vector<std::size_t> offsets = row_offsets(parts);
  // As event_table::join: the first part's batch is the start of the joined one.
  query_batch out = std::move(parts[0]);
  std::vector<std::vector<std::uint32_t>> account_map(parts.size());
  for (std::size_t k = 1; k < parts.size(); ++k) account_map[k] = merge_names(out.accounts, parts[k].accounts);
  out.reserve(offsets.back());
  detail::run_parts(2, [&](std::size_t column) {
    for (std::size_t k = 1; k < parts.size(); ++k) {
      query_batch& p = parts[k];
      if (column == 0) {
        detail::append_column(out.timestamp, p.timestamp);
      } else {
        for (const account_index a : p.account) out.account.push_back(account_map[k][a]);
        std::vector<account_index>().swap(p.account);
      }
    }
  });
  for (std::size_t k = 1; k < parts.size(); ++k) parts[k] = query_batch{};
  return out;
}

}  // namespace gpucredit
