// The live credits of one account for the interactive API: a treap ordered by
// (end, start, arrival) whose nodes carry subtree sums of the remaining amounts. Its
// leftmost node is the next credit to expire and the first to draw from; the sum of the
// remaining amounts of credits ending at or after t (the balance at a future t) is one
// walk from the root. Every operation is O(log n) expected.
#pragma once

#include <cstdint>
#include <vector>

#include "gpucredit/types.hpp"

namespace gpucredit::detail {

class live_credits {
 public:
  struct credit {
    timestamp_t end;
    timestamp_t start;
    event_row row;
    amount_t remaining;
  };

  bool empty() const noexcept { return root_ < 0; }
  /// The credit with the smallest (end, start, row); the set must not be empty.
  const credit& front() const;
  void insert(const credit& c);
  /// Lowers the front credit's remaining amount by `amount` (< its remaining).
  void draw_from_front(amount_t amount);
  void pop_front();
  /// Sum of the remaining amounts of the credits whose end >= t.
  amount_t remaining_ending_at_or_after(timestamp_t t) const;
  void clear();

 private:
  struct node {
    credit value;
    amount_t sum;  // of `remaining` over this subtree
    std::uint32_t priority;
    std::int32_t left;
    std::int32_t right;
  };
  amount_t sum(std::int32_t n) const { return n < 0 ? 0 : nodes_[static_cast<std::size_t>(n)].sum; }
  node& at(std::int32_t n) { return nodes_[static_cast<std::size_t>(n)]; }
  const node& at(std::int32_t n) const { return nodes_[static_cast<std::size_t>(n)]; }
  void update(std::int32_t n);
  // Splits `n` into keys < `key` and keys >= `key`.
  void split(std::int32_t n, const credit& key, std::int32_t& less, std::int32_t& rest);
  std::int32_t merge(std::int32_t a, std::int32_t b);

  std::vector<node> nodes_;
  std::vector<std::int32_t> free_;
  std::int32_t root_ = -1;
  std::uint64_t seed_ = 0x9E3779B97F4A7C15ULL;
};

}  // namespace gpucredit::detail
