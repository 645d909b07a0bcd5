// Event input as columns: the interning dictionary and the event table (SPEC sections
// 1, 2 and 6). Every way into the ledger (CSV files, the interactive API) goes through
// `event_table::add` / `event_table::use`, so every event is validated the same way.
#pragma once

#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "gpucredit/types.hpp"

namespace gpucredit {

/// Interns strings (account names, credit labels) into dense indices 0, 1, 2, ... in
/// order of first appearance. Names are kept byte for byte; views it returns stay valid
/// for the dictionary's life.
///
/// Built for 10^7 names: an open-addressing table (linear probing, at most half full) of
/// 8-byte slots, a hash and an index, so that adding a new name reads slots and nothing
/// else. Each name's entry (its view and its key) holds a name of at most 16 bytes as
/// two words, so that finding it reads its slot and its entry and no byte of the name;
/// a longer name's key is its 64-bit hash, and its bytes are compared on a match. The
/// names lie back to back in blocks of an arena that never move (no allocation per name).
class dictionary {
 public:
  dictionary() = default;
  dictionary(const dictionary& other);
  dictionary& operator=(const dictionary& other);
  dictionary(dictionary&&) noexcept = default;
  dictionary& operator=(dictionary&&) noexcept = default;

  /// The index of `name`, adding it if new. Throws `error` past 2^32 - 1 names.
  std::uint32_t intern(std::string_view name) {
    bool added = false;
    return intern(name, added);
  }
  /// The same, saying whether the name was new.
  std::uint32_t intern(std::string_view name, bool& added);
  /// Starts bringing into the cache what interning each of `names` will read: its slot,
  /// the entry that slot holds, and a long name's bytes, a pass over the batch for each,
  /// so that the batch's cache misses overlap instead of queueing. Changes nothing; the
  /// caller then interns the names in order, as usual. Pays off once the table is larger
  /// than the cache (10^4 names and more); batches of about 32-64.
  void prefetch(std::span<const std::string_view> names) const noexcept;
  /// Interns each of `names` in order, its index into out[i]: as prefetch() and then
  /// intern() of each, the hash of each name made once.
  void intern_all(std::span<const std::string_view> names, std::uint32_t* out);
  /// Takes back the name interned last, which must have been new (a name found bad after
  /// it was interned).
  void pop_last();
  /// The index of `name`, or nullopt when it was never interned.
  std::optional<std::uint32_t> find(std::string_view name) const;
  /// The name at `index` (must be < size()).
  std::string_view operator[](std::uint32_t index) const { return names_[index].name; }
  std::size_t size() const noexcept { return names_.size(); }

 private:
  // A name as the table compares it. At most 16 bytes: the bytes themselves, as two
  // little-endian words padded with zeros; longer: `second` is a 64-bit hash of every
  // byte (`first` unused).
  struct key {
    std::uint64_t first;
    std::uint64_t second;
  };
  // A name interned: where its bytes are, and its key.
  struct entry {
    std::string_view name;
    key k;
  };
  struct slot {
    std::uint32_t hash;   // of the name (never 0); 0 marks an empty slot
    std::uint32_t index;  // into names_
  };
  static constexpr std::size_t inline_bytes = 16;  // names this short are their own key
  static key key_of(std::string_view name, std::uint32_t& hash) noexcept;
  static bool matches(const entry& stored, const key& k, std::string_view name) noexcept;
  // The slot holding `name` (key `k`, hash `h`), or the empty slot where it would go.
  std::size_t probe(std::string_view name, const key& k, std::uint32_t h) const noexcept;
  // intern() once the key is made (the name found last already compared).
  std::uint32_t intern_keyed(std::string_view name, const key& k, std::uint32_t h, bool& added);
  // prefetch() of names whose hashes are made (at most 64).
  void prefetch_hashed(std::span<const std::string_view> names, const std::uint32_t* hash) const noexcept;
  std::string_view store(std::string_view name);  // copies into the arena
  void grow();

  std::vector<entry> names_;                     // 32 bytes each: views into the arena's blocks, and keys
  std::vector<std::unique_ptr<char[]>> blocks_;  // never moved: views stay valid
  std::size_t block_used_ = 0;
  std::size_t block_size_ = 0;
  std::vector<slot> slots_;  // 8 bytes each, a power of two, at most half full
  std::uint32_t last_ = 0;   // the name found or added last (checked first)
};

/// All events of a ledger as structure-of-arrays, in arrival order (row = arrival).
/// The credit's end (`timestamp + expiration`) is stored instead of the expiration,
/// computed once with an overflow check.
struct event_table {
  std::string source = "input";  ///< names the input in error messages (file name)
  dictionary accounts;
  dictionary credit_labels;
  /// Job ids, one per run row, kept as given: ids are usually unique, so they are not
  /// interned (no hash, no probe for each job).
  std::vector<std::string> job_ids;

  std::vector<account_index> account;
  std::vector<op> kind;
  std::vector<timestamp_t> timestamp;
  std::vector<amount_t> amount;        ///< add, use: the amount; run: the rate per tick
  std::vector<timestamp_t> end;        ///< add: timestamp + expiration; run: the last tick; use: = timestamp
  std::vector<std::uint32_t> credit;   ///< add: index into credit_labels; run: into job_ids; use: 0
  std::vector<std::uint64_t> line;     ///< where the event came from (file line, or call number)

  std::size_t size() const noexcept { return account.size(); }
  void reserve(std::size_t count);

  /// Appends `add(account, credit_label, amount, timestamp, expiration)`.
  /// Throws `input_error` naming `source` and `source_line` for a bad name (empty,
  /// NUL, invalid UTF-8: detail::name_problem), a negative amount or expiration, or
  /// `timestamp + expiration` beyond int64. Nothing is appended then. Every way in
  /// (CSV, Arrow) validates an event here.
  void add(std::string_view account_name, std::string_view credit_label, timestamp_t at,
           amount_t amount_value, timestamp_t expiration, std::uint64_t source_line);
  /// Appends `use(account, timestamp, amount)`; throws `input_error` for a bad account
  /// name or a negative amount.
  void use(std::string_view account_name, timestamp_t at, amount_t amount_value,
           std::uint64_t source_line);
  /// Appends `run(account, job_label, start, rate, ticks)`: `rate` used at every tick
  /// start, start + 1, ..., start + ticks - 1 (SPEC section 10). Throws `input_error` for
  /// a bad name, a negative rate or tick count, a last tick beyond int64, or
  /// rate x ticks beyond int64. A job of 0 ticks is kept (it has no effect) with rate 0.
  void run(std::string_view account_name, std::string_view job_label, timestamp_t start, amount_t rate,
           std::int64_t ticks, std::uint64_t source_line);
  /// Whether any event is a job (then intervals carry slopes and unpaid jobs name them).
  bool has_jobs() const noexcept { return jobs_ != 0; }

  /// The tables read from consecutive parts of one input, joined in order as if read one
  /// after another: names in order of first appearance, every row and line kept. Throws
  /// `input_error` at the first event past events_max, as `add` would. The parts are
  /// consumed.
  static event_table join(std::vector<event_table>&& parts);

  /// The label of the credit added (or the job run) at `row` (an add or a run).
  std::string_view credit_label(event_row row) const {
    return kind[row] == op::run ? std::string_view(job_ids[credit[row]]) : credit_labels[credit[row]];
  }

 private:
  std::size_t jobs_ = 0;
};

/// A batch of balance queries as columns, in query order. Query account names are
/// interned separately from the events' (unknown accounts are fine: they answer none).
struct query_batch {
  dictionary accounts;
  std::vector<account_index> account;  ///< index into `accounts`
  std::vector<timestamp_t> timestamp;

  std::size_t size() const noexcept { return account.size(); }
  void reserve(std::size_t count) {
    account.reserve(count);
    timestamp.reserve(count);
  }
  void push(std::string_view account_name, timestamp_t at) {
    account.push_back(accounts.intern(account_name));
    timestamp.push_back(at);
  }
  /// Each query's account as an index into `events` (account_none when unknown there).
  std::vector<account_index> resolve(const dictionary& events) const;
  /// Batches read from consecutive parts of one input, joined in order (see
  /// event_table::join). The parts are consumed.
  static query_batch join(std::vector<query_batch>&& parts);
};

}  // namespace gpucredit
