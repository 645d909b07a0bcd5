#!/usr/bin/env python3
"""Deterministic generator of a GPU fleet month metered as jobs (SPEC section 10), in
gpucredit's CSV formats, and of the same fleet as users write it today.

Every account gets a 30-day plan at time 0 sized to about its month of usage (some run
dry); some get a 7-day promo, a few a 365-day prepaid pack, and two in five buy a 14-day
top-up mid-month. Promos, packs and top-ups start at any second (a purchase), so they
start and expire inside hours, as they do in a real ledger. Each account runs jobs of a
minute to three days (log-uniform) on 1, 2, 4 or 8 GPUs at one credit per GPU-second,
one tick a second: about 50 jobs an account, billions of ticks in all. Three ledgers
with the same credits:

- `exact/`: each job one `run` row (rate = GPUs, ticks = seconds);
- `hourly/`: each job cut into hourly uses, one at the end of each hour it ran (or its
  last second), for the seconds it ran in that hour: what a billing pipeline that cannot
  meter exactly writes;
- `plain/`: each job one `use` of its whole cost at its start: a plain ledger with the
  same number of events as `exact/`, to compare what metering costs.

Each folder holds events.csv and queries.csv (every account at the end of every day).

    python3 bench/job_fleet.py --accounts 2000 --seed 1 --out bench/data/jobs-2000
"""
import argparse
import csv
import math
import os
import random

HOUR = 3600
DAY = 24 * HOUR
MONTH_DAYS = 30
MONTH = MONTH_DAYS * DAY


def generate(accounts, seed, jobs_per_account=50):
    rng = random.Random(seed)
    credits = []  # (account, label, timestamp, amount, expiration)
    jobs = []  # (account, job id, start, gpus, seconds)
    for a in range(accounts):
        name = f"org-{a:06d}"
        mine = []
        for j in range(max(1, int(rng.gauss(jobs_per_account, jobs_per_account / 4)))):
            seconds = int(math.exp(rng.uniform(math.log(60), math.log(3 * DAY))))
            start = rng.randrange(0, MONTH - 60)
            mine.append((name, f"job-{a}-{j}", start, rng.choice([1, 2, 4, 8]), seconds))
        cost = sum(g * s for _, _, _, g, s in mine)
        plan = max(1000, int(cost * rng.uniform(0.5, 1.3)))  # one account in three runs dry
        credits.append((name, "plan-30d", 0, plan, MONTH - 1))
        if rng.random() < 0.3:
            credits.append((name, "promo-7d", rng.randrange(0, 20 * DAY), plan // 5, 7 * DAY - 1))
        if rng.random() < 0.05:
            credits.append((name, "prepaid-1y", rng.randrange(0, 10 * DAY), plan * 2, 365 * DAY - 1))
        if rng.random() < 0.4:
            credits.append((name, "topup-14d", rng.randrange(5 * DAY, 25 * DAY), plan // 3, 14 * DAY - 1))
        jobs.extend(mine)
    jobs.sort(key=lambda j: j[2])  # logs arrive roughly by start
    queries = [(f"org-{a:06d}", day * DAY - 1) for a in range(accounts) for day in range(1, MONTH_DAYS + 1)]
    return credits, jobs, queries


def hourly_uses(job):
    """The job cut into hourly uses: one per hour it ran, at the end of that hour (or its
    last second), for rate x the seconds it ran in that hour."""
    name, _job, start, gpus, seconds = job
    last = start + seconds - 1
    t = start
    while t <= last:
        hour_end = (t // HOUR) * HOUR + HOUR - 1
        end = min(hour_end, last)
        yield ("use", name, "", end, gpus * (end - t + 1), None)
        t = end + 1


def rows(credits, jobs, shape):
    for name, label, t, amount, expiration in credits:
        yield ("add", name, label, t, amount, expiration)
    for job in jobs:
        name, label, start, gpus, seconds = job
        if shape == "exact":
            yield ("run", name, label, start, gpus, seconds)
        elif shape == "plain":
            yield ("use", name, "", start, gpus * seconds, None)
        else:
            yield from hourly_uses(job)


def write(out_dir, credits, jobs, queries):
    counts = {}
    for shape in ("exact", "hourly", "plain"):
        folder = os.path.join(out_dir, shape)
        os.makedirs(folder, exist_ok=True)
        n = 0
        with open(os.path.join(folder, "events.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["op", "account", "credit_id", "timestamp", "amount", "expiration"])
            for op, account, label, t, amount, sixth in rows(credits, jobs, shape):
                w.writerow([op, account, label, t, amount, "" if sixth is None else sixth])
                n += 1
        with open(os.path.join(folder, "queries.csv"), "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["account", "timestamp"])
            w.writerows(queries)
        counts[shape] = n
    return counts


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    credits, jobs, queries = generate(args.accounts, args.seed)
    counts = write(args.out, credits, jobs, queries)
    ticks = sum(j[4] for j in jobs)
    print(f"{args.accounts} accounts, {len(jobs)} jobs, {ticks} ticks; events: {counts}")


if __name__ == "__main__":
    main()
