#!/usr/bin/env python3
"""End-to-end comparison on a generated GPU fleet month: `gpucredit balances` (CSV in,
CSV out) against the seed notebook's Python class replaying the same events in time
order and answering the same queries. Checks that both give the same answers, then
prints each time and the ratio.

    cmake -S . -B build && cmake --build build --parallel
    python3 bench/fleet_compare.py --cli build/gpucredit --accounts 2000
"""
import argparse
import csv
import os
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import fleet  # noqa: E402
from seed_class import GPUCredit  # noqa: E402


def run_cli(cli, data, out, repeats):
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([cli, "balances", "--events", os.path.join(data, "events.csv"),
                        "--queries", os.path.join(data, "queries.csv"), "--out", out], check=True)
        best = min(best, time.perf_counter() - start)
    with open(out, newline="") as f:
        rows = list(csv.reader(f))[1:]
    return best, [(r[0], int(r[1]), int(r[2]) if r[2] else None) for r in rows]


def run_seed(data):
    start = time.perf_counter()
    with open(os.path.join(data, "events.csv"), newline="") as f:
        events = list(csv.DictReader(f))
    with open(os.path.join(data, "queries.csv"), newline="") as f:
        queries = [(r["account"], int(r["timestamp"])) for r in csv.DictReader(f)]
    events.sort(key=lambda e: int(e["timestamp"]))  # stable: ties keep arrival order
    ledger = GPUCredit()
    for e in events:
        if e["op"] == "add":
            ledger.addCredit(e["account"], int(e["amount"]), int(e["timestamp"]), int(e["expiration"]))
        else:
            ledger.useCredit(e["account"], int(e["timestamp"]), int(e["amount"]))
    answers = [(a, t, ledger.getBalance(a, t)) for a, t in queries]
    return time.perf_counter() - start, answers


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", default="build/gpucredit")
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5, help="CLI runs; the best is reported")
    args = p.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        events, queries = fleet.generate(args.accounts, args.seed)
        fleet.write(tmp, events, queries)
        size_mb = os.path.getsize(os.path.join(tmp, "events.csv")) / 1e6
        print(f"fleet month: {args.accounts} accounts, {len(events)} events ({size_mb:.1f} MB), {len(queries)} queries")
        cli_s, cli_answers = run_cli(args.cli, tmp, os.path.join(tmp, "balances.csv"), args.repeats)
        seed_s, seed_answers = run_seed(tmp)
    if cli_answers != seed_answers:
        diff = next(i for i, (a, b) in enumerate(zip(cli_answers, seed_answers)) if a != b)
        sys.exit(f"MISMATCH at query {diff}: gpucredit {cli_answers[diff]} vs seed class {seed_answers[diff]}")
    print(f"answers equal: {len(cli_answers)} queries")
    print(f"{'what':<44}{'seconds':>10}")
    print(f"{'gpucredit balances (CLI, end to end, best)':<44}{cli_s:>10.3f}")
    print(f"{'seed class (Python, end to end)':<44}{seed_s:>10.3f}")
    print(f"ratio: gpucredit is {seed_s / cli_s:.0f}x faster")


if __name__ == "__main__":
    main()
