#!/usr/bin/env python3
"""Deterministic generator of a GPU fleet month, in gpucredit's CSV formats.

Every account gets a 30-day plan credit at time 0; some get a 7-day promo, a few a
365-day prepaid pack. In most hours an account reports its usage (log-normal rates),
and some accounts use more than they hold and run dry. Queries ask every account's
balance at the end of every day. Times are seconds from the start of the month.

    python3 bench/fleet.py --accounts 2000 --seed 1 --out bench/data/fleet-2000
"""
import argparse
import csv
import math
import os
import random

HOUR = 3600
DAY = 24 * HOUR
MONTH_DAYS = 30


def generate(accounts, seed, usage_hour_share=0.6):
    rng = random.Random(seed)
    events = []
    for a in range(accounts):
        name = f"org-{a:06d}"
        plan = rng.choice([5_000, 20_000, 100_000, 500_000])
        events.append(("add", name, "plan-30d", 0, plan, MONTH_DAYS * DAY - 1))
        if rng.random() < 0.3:
            start = rng.randrange(0, 20) * DAY
            events.append(("add", name, "promo-7d", start, plan // 5, 7 * DAY - 1))
        if rng.random() < 0.05:
            events.append(("add", name, "prepaid-1y", rng.randrange(0, 10) * DAY, plan * 6, 365 * DAY - 1))
        # Hourly usage around a per-account mean; one account in eight overspends.
        mean = plan / (MONTH_DAYS * 24 * usage_hour_share)
        if rng.random() < 0.125:
            mean *= 2.5
        mu = math.log(max(mean, 1.0)) - 0.5
        for hour in range(MONTH_DAYS * 24):
            if rng.random() < usage_hour_share:
                amount = int(rng.lognormvariate(mu, 1.0))
                events.append(("use", name, "", hour * HOUR + rng.randrange(HOUR), amount, None))
    queries = [(f"org-{a:06d}", day * DAY - 1) for a in range(accounts) for day in range(1, MONTH_DAYS + 1)]
    return events, queries


def write(out_dir, events, queries):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "events.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["op", "account", "credit_id", "timestamp", "amount", "expiration"])
        for op, account, credit, t, amount, expiration in events:
            w.writerow([op, account, credit, t, amount, "" if expiration is None else expiration])
    with open(os.path.join(out_dir, "queries.csv"), "w", newline="") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["account", "timestamp"])
        w.writerows(queries)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    events, queries = generate(args.accounts, args.seed)
    write(args.out, events, queries)
    print(f"{args.out}: {len(events)} events, {len(queries)} queries")


if __name__ == "__main__":
    main()
