#!/usr/bin/env python3
"""Metered jobs against what users do today, side by side in one run (SPEC section 10).

On the job fleet month of bench/job_fleet.py (2,000 accounts, about 10^5 jobs of a
minute to three days, billions of one-second ticks):

- end to end, `gpucredit balances` (events CSV in, day-end balances CSV out) on
  - exact:  each job one `run` row, metered exactly;
  - plain:  the same number of events, each job one `use` (what metering costs);
  - hourly: each job cut into hourly uses (what users write today);
- DuckDB's ASOF JOIN answering the hourly ledger's day-end queries, handed the step
  function of gpucredit's own interval table (DuckDB cannot replay credits itself), its
  answers checked equal to gpucredit's on the same ledger;
- how far the hourly approximation is from the exact answer: the share of account-days
  whose day-end balance differs, and the breakage (credit expiring unused) over the
  month, exact against hourly, from `gpucredit report`'s summary.

Times are best and median of N runs, with the load average before the runs. DuckDB comes
from PyPI into bench/.venv-peers (made on first use, as bench/peers.py does).

    python3 bench/jobs_compare.py --cli build/gpucredit --accounts 2000 --repeats 5
"""
import argparse
import csv
import os
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import job_fleet  # noqa: E402
from peers import ensure_venv, step_function  # noqa: E402


def timed(repeats, command):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return min(times), statistics.median(times)


def balances(path):
    with open(path, newline="") as f:
        return [int(r[2]) if r[2] else 0 for r in list(csv.reader(f))[1:]]


def breakage(summary):
    with open(summary, newline="") as f:
        rows = list(csv.DictReader(f))
    return {r["account"]: int(r["expired"]) for r in rows}


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", default="build/gpucredit")
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()
    cli = os.path.abspath(args.cli)
    ensure_venv()
    import duckdb
    import pandas as pd

    load = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        credits, jobs, queries = job_fleet.generate(args.accounts, args.seed)
        counts = job_fleet.write(tmp, credits, jobs, queries)
        ticks = sum(j[4] for j in jobs)
        print(f"job fleet month: {args.accounts} accounts, {len(jobs)} jobs, {ticks:,} ticks; "
              f"events exact {counts['exact']:,}, plain {counts['plain']:,}, hourly {counts['hourly']:,}; "
              f"{len(queries):,} day-end queries")
        print(f"load average before the runs: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; best / median of {args.repeats}")
        results = {}
        for shape in ("exact", "plain", "hourly"):
            d = os.path.join(tmp, shape)
            out = os.path.join(d, "out.csv")
            cmd = [cli, "balances", "--events", os.path.join(d, "events.csv"), "--queries", os.path.join(d, "queries.csv"),
                   "--out", out]
            results[shape] = timed(args.repeats, cmd)
            subprocess.run([cli, "report", "--events", os.path.join(d, "events.csv"), "--from", "0", "--to",
                            str(job_fleet.MONTH), "--every", str(job_fleet.DAY), "--out", os.path.join(d, "report"),
                            "--quiet"], check=True)
        # DuckDB on the hourly ledger: ASOF over the step function of gpucredit's intervals.
        hourly = os.path.join(tmp, "hourly")
        subprocess.run([cli, "intervals", "--events", os.path.join(hourly, "events.csv"), "--out",
                        os.path.join(hourly, "intervals.csv")], check=True)
        iv = pd.read_csv(os.path.join(hourly, "intervals.csv"), dtype={"account": str, "credit_id": str})
        bp = step_function(iv)  # the hourly ledger has no jobs: no slopes
        q = pd.DataFrame(queries, columns=["account", "time"])
        q["qid"] = range(len(q))
        con = duckdb.connect()
        con.register("bp_df", bp)
        con.register("q_df", q)
        con.execute("CREATE TABLE bp AS SELECT * FROM bp_df; CREATE TABLE q AS SELECT * FROM q_df")
        sql = ("SELECT coalesce(bp.balance, 0) AS b FROM q ASOF LEFT JOIN bp "
               "ON q.account = bp.account AND q.time >= bp.time ORDER BY q.qid")
        hourly_answers = balances(os.path.join(hourly, "out.csv"))
        got = [int(v) for v in con.execute(sql).fetchnumpy()["b"]]
        if got != hourly_answers:
            sys.exit("DuckDB's answers differ from gpucredit's on the hourly ledger")
        duck = []
        for _ in range(args.repeats):
            start = time.perf_counter()
            con.execute(sql).fetchnumpy()
            duck.append(time.perf_counter() - start)
        results["duckdb"] = (min(duck), statistics.median(duck))

        exact_answers = balances(os.path.join(tmp, "exact", "out.csv"))
        wrong = sum(1 for a, b in zip(exact_answers, hourly_answers) if a != b)
        exact_breakage = breakage(os.path.join(tmp, "exact", "report", "summary.csv"))
        hourly_breakage = breakage(os.path.join(tmp, "hourly", "report", "summary.csv"))
        misstated = sum(abs(hourly_breakage[a] - exact_breakage[a]) for a in exact_breakage)
        accounts_off = sum(1 for a in exact_breakage if hourly_breakage[a] != exact_breakage[a])

    def row(name, key, events):
        best, median = results[key]
        return f"| {name} | {events} | {best:.3f} | {median:.3f} |"

    print()
    print("| run | events | best s | median s |")
    print("|---|---|---|---|")
    print(row("gpucredit balances, exact jobs", "exact", f"{counts['exact']:,}"))
    print(row("gpucredit balances, plain (one use a job)", "plain", f"{counts['plain']:,}"))
    print(row("gpucredit balances, hourly uses", "hourly", f"{counts['hourly']:,}"))
    print(row("DuckDB ASOF JOIN, hourly (queries only, handed the intervals)", "duckdb", f"{counts['hourly']:,}"))
    print()
    print(f"exact / plain (same event count): {results['exact'][0] / results['plain'][0]:.2f}x best, "
          f"{results['exact'][1] / results['plain'][1]:.2f}x median")
    print(f"hourly / exact: {results['hourly'][0] / results['exact'][0]:.2f}x best")
    print(f"hourly approximation: {wrong:,} of {len(exact_answers):,} account-days wrong "
          f"({100.0 * wrong / len(exact_answers):.1f}%); breakage misstated by {misstated:,} credits in total "
          f"(exact {sum(exact_breakage.values()):,}, hourly {sum(hourly_breakage.values()):,}) on "
          f"{accounts_off:,} of {len(exact_breakage):,} accounts")


if __name__ == "__main__":
    main()
