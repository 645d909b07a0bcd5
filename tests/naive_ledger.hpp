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
  timestamp_t timestamp;   // run: the first tick
  amount_t amount;         // run: the rate
  timestamp_t expiration;  // add: the expiration; run: the number of ticks
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
  std::vector<std::pair<std::size_t, amount_t>> unpaid_uses;  // (arrival, amount): a use, or a job's total
  std::vector<std::pair<std::size_t, timestamp_t>> unpaid_first;  // (a job's arrival, its first unpaid tick)
  std::vector<std::pair<std::size_t, amount_t>> to_jobs;  // (add's arrival, drawn by job ticks) when > 0
  std::vector<std::pair<std::size_t, amount_t>> held;         // (add's arrival, remaining > 0) active at t
};

/// Replays the events of `account` with timestamp <= t, from scratch.
inline naive_answer naive_at(const std::vector<naive_event>& events, int account, timestamp_t t,
                             overdraft_policy policy) {
  struct credit {
    wide start, end, remaining;
    std::size_t arrival;
    wide to_jobs = 0;
  };
  // Every event with its time, a job as one use per tick (SPEC section 10), in
  // (timestamp, arrival) order.
  struct step {
    timestamp_t time;
    std::size_t arrival;
  };
  std::vector<step> order;
  for (std::size_t i = 0; i < events.size(); ++i) {
    const naive_event& e = events[i];
    if (e.account != account || e.timestamp > t) continue;
    if (e.kind != op::run) {
      order.push_back({e.timestamp, i});
      continue;
    }
    for (timestamp_t k = 0; k < e.expiration; ++k) {  // the job's ticks up to t
      const timestamp_t tick = e.timestamp + k;
      if (tick > t) break;
      order.push_back({tick, i});
      if (tick == std::numeric_limits<timestamp_t>::max()) break;
    }
  }
  std::sort(order.begin(), order.end(), [](const step& a, const step& b) {
    return a.time != b.time ? a.time < b.time : a.arrival < b.arrival;
  });
  naive_answer answer;
  std::vector<credit> credits;
  auto record_unpaid = [&](std::size_t i, timestamp_t at, wide amount) {
    answer.unpaid += amount;
    if (events[i].kind != op::run) {
      answer.unpaid_uses.emplace_back(i, static_cast<amount_t>(amount));
      return;
    }
    for (auto& u : answer.unpaid_uses) {  // a job: one record, its total
      if (u.first == i) {
        u.second += static_cast<amount_t>(amount);
        return;
      }
    }
    answer.unpaid_uses.emplace_back(i, static_cast<amount_t>(amount));
    answer.unpaid_first.emplace_back(i, at);
  };
  for (const step& s : order) {
    const std::size_t i = s.arrival;
    const naive_event& e = events[i];
    const wide now = s.time;
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
        if (e.amount > 0) record_unpaid(i, s.time, e.amount);
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
        if (e.kind == op::run) c->to_jobs += take;
        need -= take;
        answer.consumed += take;
      }
      if (need > 0) record_unpaid(i, s.time, need);
    }
    wide balance_now = 0;
    for (const credit& c : credits) {
      if (c.start <= now && now <= c.end) balance_now += c.remaining;
    }
    if (balance_now > std::numeric_limits<amount_t>::max()) answer.overflow = true;
  }
  for (const credit& c : credits) {
    if (c.to_jobs > 0) answer.to_jobs.emplace_back(c.arrival, static_cast<amount_t>(c.to_jobs));
    if (c.start <= t && t <= c.end) answer.balance += c.remaining;
    if (c.start <= t && t <= c.end && c.remaining > 0) {
      answer.held.emplace_back(c.arrival, static_cast<amount_t>(c.remaining));
    }
    if (c.end < t) answer.expired += c.remaining;
  }
  return answer;
}

}  // namespace gpucredit::test
