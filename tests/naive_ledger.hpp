// A deliberately naive reference ledger, for the randomized tests and the fuzzers: it
// answers each question by replaying from scratch with linear scans and 128-bit sums,
// and shares no code with the library.
#pragma once

#include <algorithm>
#include <cstddef>
#include <limits>
#include <utility>
#include <vector>

#include "gpucredit/types.hpp"

namespace gpucredit::test {

__extension__ typedef __int128 wide;  // exact sums of int64 amounts

struct naive_event {
  op kind;
  int account;
  timestamp_t timestamp;
  amount_t amount;
  timestamp_t expiration;  // add only
};

/// What the naive reference knows of one account at time t (events applied up to t).
struct naive_answer {
  bool overflow = false;   // some event up to t took the balance beyond int64
  wide balance = 0;        // credits active at t
  wide granted = 0;        // amount of adds with timestamp <= t
  wide asked = 0;          // amount of uses with timestamp <= t
  wide consumed = 0;       // drawn by uses with timestamp <= t
  wide expired = 0;        // remaining of credits whose end < t
  wide unpaid = 0;         // drain: shortfall; reject: rejected usage
  std::vector<std::pair<std::size_t, amount_t>> unpaid_uses;  // (arrival, amount)
  std::vector<std::pair<std::size_t, amount_t>> held;         // (add's arrival, remaining > 0) active at t
};

/// Replays the events of `account` with timestamp <= t, from scratch.
inline naive_answer naive_at(const std::vector<naive_event>& events, int account, timestamp_t t,
                             overdraft_policy policy) {
  struct credit {
    wide start, end, remaining;
    std::size_t arrival;
  };
  std::vector<std::size_t> order;
  for (std::size_t i = 0; i < events.size(); ++i) {
    if (events[i].account == account && events[i].timestamp <= t) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](std::size_t a, std::size_t b) { return events[a].timestamp < events[b].timestamp; });
  naive_answer answer;
  std::vector<credit> credits;
  for (const std::size_t i : order) {
    const naive_event& e = events[i];
    const wide now = e.timestamp;
    if (e.kind == op::add) {
      answer.granted += e.amount;
      credits.push_back({now, now + e.expiration, e.amount, i});
    } else {
      answer.asked += e.amount;
      std::vector<credit*> active;
      wide available = 0;
      for (credit& c : credits) {
        if (c.start <= now && now <= c.end && c.remaining > 0) {
          active.push_back(&c);
          available += c.remaining;
        }
      }
      if (policy == overdraft_policy::reject && e.amount > available) {
        answer.unpaid += e.amount;
        answer.unpaid_uses.emplace_back(i, e.amount);
        continue;
      }
      std::sort(active.begin(), active.end(), [](const credit* a, const credit* b) {
        if (a->end != b->end) return a->end < b->end;
        if (a->start != b->start) return a->start < b->start;
        return a->arrival < b->arrival;
      });
      wide need = e.amount;
      for (credit* c : active) {
        const wide take = std::min(c->remaining, need);
        c->remaining -= take;
        need -= take;
        answer.consumed += take;
      }
      if (need > 0) {
        answer.unpaid += need;
        answer.unpaid_uses.emplace_back(i, static_cast<amount_t>(need));
      }
    }
    wide balance_now = 0;
    for (const credit& c : credits) {
      if (c.start <= now && now <= c.end) balance_now += c.remaining;
    }
    if (balance_now > std::numeric_limits<amount_t>::max()) answer.overflow = true;
  }
  for (const credit& c : credits) {
    if (c.start <= t && t <= c.end) answer.balance += c.remaining;
    if (c.start <= t && t <= c.end && c.remaining > 0) {
      answer.held.emplace_back(c.arrival, static_cast<amount_t>(c.remaining));
    }
    if (c.end < t) answer.expired += c.remaining;
  }
  return answer;
}

}  // namespace gpucredit::test
