// Treap of live credits with subtree sums (see detail/live_credits.hpp).
#include "cpu/ledger/live_credits.hpp"

#include <cassert>
#include <tuple>

namespace gpucredit::detail {
namespace {

bool key_less(const live_credits::credit& a, const live_credits::credit& b) noexcept {
  return std::tie(a.end, a.start, a.row) < std::tie(b.end, b.start, b.row);
}

}  // namespace

void live_credits::update(std::int32_t n) {
  node& x = at(n);
  x.sum = x.value.remaining + sum(x.left) + sum(x.right);
}

void live_credits::split(std::int32_t n, const credit& key, std::int32_t& less, std::int32_t& rest) {
  if (n < 0) {
    less = rest = -1;
    return;
  }
  if (key_less(at(n).value, key)) {
    split(at(n).right, key, at(n).right, rest);
    less = n;
  } else {
    split(at(n).left, key, less, at(n).left);
    rest = n;
  }
  update(n);
}

std::int32_t live_credits::merge(std::int32_t a, std::int32_t b) {
  if (a < 0) return b;
  if (b < 0) return a;
  if (at(a).priority > at(b).priority) {
    at(a).right = merge(at(a).right, b);
    update(a);
    return a;
  }
  at(b).left = merge(a, at(b).left);
  update(b);
  return b;
}

const live_credits::credit& live_credits::front() const {
  assert(!empty());
  std::int32_t n = root_;
  while (at(n).left >= 0) n = at(n).left;
  return at(n).value;
}

void live_credits::insert(const credit& c) {
  seed_ ^= seed_ << 13;  // xorshift: priorities need only be well spread
  seed_ ^= seed_ >> 7;
  seed_ ^= seed_ << 17;
  std::int32_t n = 0;
  if (!free_.empty()) {
    n = free_.back();
    free_.pop_back();
  } else {
    n = static_cast<std::int32_t>(nodes_.size());
    nodes_.emplace_back();
  }
  at(n) = {c, c.remaining, static_cast<std::uint32_t>(seed_ >> 32), -1, -1};
  std::int32_t less = -1;
  std::int32_t rest = -1;
  split(root_, c, less, rest);
  root_ = merge(merge(less, n), rest);
}

void live_credits::draw_from_front(amount_t amount) {
  assert(!empty());
  for (std::int32_t n = root_; n >= 0; n = at(n).left) {
    at(n).sum -= amount;
    if (at(n).left < 0) {
      assert(at(n).value.remaining > amount);
      at(n).value.remaining -= amount;
    }
  }
}

void live_credits::pop_front() {
  assert(!empty());
  const amount_t removed = front().remaining;
  std::int32_t parent = -1;
  std::int32_t n = root_;
  while (at(n).left >= 0) {
    at(n).sum -= removed;
    parent = n;
    n = at(n).left;
  }
  const std::int32_t replacement = at(n).right;
  if (parent < 0) {
    root_ = replacement;
  } else {
    at(parent).left = replacement;
  }
  free_.push_back(n);
}

amount_t live_credits::remaining_ending_at_or_after(timestamp_t t) const {
  amount_t total = 0;
  for (std::int32_t n = root_; n >= 0;) {
    if (at(n).value.end >= t) {
      total += at(n).value.remaining + sum(at(n).right);
      n = at(n).left;
    } else {
      n = at(n).right;
    }
  }
  return total;
}

void live_credits::clear() {
  nodes_.clear();
  free_.clear();
  root_ = -1;
}

}  // namespace gpucredit::detail
