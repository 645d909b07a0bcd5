#!/usr/bin/env python3
"""gpucredit against what a user would otherwise pick, on the same generated fleet month,
side by side in one run. Creates its own virtual environment (bench/.venv-peers) with
DuckDB, Polars, pandas and NumPy from PyPI on first use.

Two comparisons, each checked answer for answer against gpucredit before it is timed:
- queries: every account at every hour of the month, given the step function
  (breakpoints) or the interval table: DuckDB ASOF JOIN, a DuckDB range join summing
  intervals, Polars join_asof, pandas merge_asof, NumPy searchsorted on a composite key,
  against gpucredit's CPU engine in memory (the CLI's "queries" phase);
- end to end (events CSV in, balances CSV out, day-end queries): the seed class against
  the gpucredit CLI.

    python3 bench/peers.py --cli build/gpucredit --accounts 2000
"""
import argparse
import warnings
import csv
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
VENV = os.path.join(HERE, ".venv-peers")
PACKAGES = ["duckdb", "polars", "pandas", "numpy", "pyarrow"]


def ensure_venv():
    if os.environ.get("GPUCREDIT_PEERS_VENV") == "1":
        return
    python = os.path.join(VENV, "bin", "python")
    if not os.path.exists(python):
        subprocess.run([sys.executable, "-m", "venv", VENV], check=True)
        subprocess.run([python, "-m", "pip", "install", "-q", *PACKAGES], check=True)
    os.environ["GPUCREDIT_PEERS_VENV"] = "1"
    os.execv(python, [python, *sys.argv])


def best_of(repeats, fn):
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def step_function(iv):
    """The breakpoints (account, time, balance) of an interval table without slopes, as a
    pandas frame: +amount at begin, -amount after end, summed per account."""
    import pandas as pd

    deltas = pd.concat([
        pd.DataFrame({"account": iv["account"], "time": iv["begin"], "change": iv["amount"]}),
        pd.DataFrame({"account": iv["account"], "time": iv["end"] + 1, "change": -iv["amount"]}),
    ])
    bp = deltas.groupby(["account", "time"], sort=True)["change"].sum().reset_index()
    bp = bp[bp["change"] != 0].copy()
    bp["balance"] = bp.groupby("account")["change"].cumsum()
    return bp[["account", "time", "balance"]].reset_index(drop=True)


def cli_timings(cli, events, queries, out):
    """Runs `gpucredit balances --timings`: (wall seconds, {phase: seconds})."""
    start = time.perf_counter()
    done = subprocess.run([cli, "balances", "--events", events, "--queries", queries, "--out", out, "--timings"],
                          check=True, capture_output=True, text=True)
    wall = time.perf_counter() - start
    phases = {}
    for line in done.stderr.splitlines():
        name, seconds, _ = line.removeprefix("gpucredit: ").rsplit(" ", 2)
        phases[name.strip()] = float(seconds)
    return wall, phases


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", default="build/gpucredit")
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--skip-seed-class", action="store_true", help="the seed class takes minutes on large fleets")
    args = p.parse_args()
    cli = os.path.abspath(args.cli)
    ensure_venv()
    warnings.filterwarnings("ignore", message="Sortedness of columns cannot be checked")

    import duckdb
    import numpy as np
    import pandas as pd
    import polars as pl

    sys.path.insert(0, HERE)
    import fleet
    from fleet_compare import run_seed

    rows = []  # (comparison, peer, seconds, gpucredit seconds)
    with tempfile.TemporaryDirectory() as tmp:
        events, day_end = fleet.generate(args.accounts, args.seed)
        fleet.write(tmp, events, day_end)
        ev = os.path.join(tmp, "events.csv")
        hourly = [(f"org-{a:06d}", h * 3600 + 3599) for a in range(args.accounts) for h in range(30 * 24)]
        hq = os.path.join(tmp, "hourly.csv")
        with open(hq, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["account", "timestamp"])
            w.writerows(hourly)
        print(f"fleet month: {args.accounts} accounts, {len(events)} events; "
              f"{len(hourly)} hourly queries, {len(day_end)} day-end queries")

        # gpucredit: answers (the reference for every peer) and its in-memory query time.
        out = os.path.join(tmp, "hourly-out.csv")
        runs = [cli_timings(cli, ev, hq, out) for _ in range(args.repeats)]
        ours_queries = min(r[1]["queries"] for r in runs)
        ours = pd.read_csv(out, keep_default_na=False)["balance"].replace("", "0").astype("int64").to_numpy()
        subprocess.run([cli, "intervals", "--events", ev, "--out", os.path.join(tmp, "intervals.csv")], check=True)

        # Peers' inputs, prepared untimed: intervals, and breakpoints derived from them.
        iv = pd.read_csv(os.path.join(tmp, "intervals.csv"), dtype={"account": str, "credit_id": str})
        bp = step_function(iv)
        q = pd.DataFrame(hourly, columns=["account", "time"])
        q["qid"] = np.arange(len(q))

        def check(name, got):
            got = np.asarray(got, dtype=np.int64)
            if not np.array_equal(got, ours):
                bad = int(np.flatnonzero(got != ours)[0])
                sys.exit(f"{name}: answer {bad} is {got[bad]}, gpucredit says {ours[bad]}")

        con = duckdb.connect()
        con.register("bp_df", bp)
        con.register("q_df", q)
        con.register("iv_df", iv[["account", "begin", "end", "amount"]])
        con.execute("CREATE TABLE bp AS SELECT * FROM bp_df; CREATE TABLE q AS SELECT * FROM q_df; "
                    "CREATE TABLE iv AS SELECT * FROM iv_df")
        asof_sql = ("SELECT coalesce(bp.balance, 0) AS b FROM q ASOF LEFT JOIN bp "
                    "ON q.account = bp.account AND q.time >= bp.time ORDER BY q.qid")
        range_sql = ("SELECT coalesce(sum(iv.amount), 0) AS b FROM q LEFT JOIN iv ON q.account = iv.account "
                     "AND iv.begin <= q.time AND q.time <= iv.end GROUP BY q.qid ORDER BY q.qid")
        peers = {
            "DuckDB ASOF JOIN (breakpoints)": lambda: con.execute(asof_sql).fetchnumpy()["b"],
            "DuckDB range join (intervals)": lambda: con.execute(range_sql).fetchnumpy()["b"],
        }

        bp_pl = pl.from_pandas(bp).sort("time")
        q_pl = pl.from_pandas(q)

        def polars_asof():
            joined = q_pl.sort("time").join_asof(bp_pl, on="time", by="account", strategy="backward")
            return joined.sort("qid")["balance"].fill_null(0).to_numpy()
        peers["Polars join_asof"] = polars_asof

        bp_sorted = bp.sort_values("time")

        def pandas_asof():
            joined = pd.merge_asof(q.sort_values("time"), bp_sorted, on="time", by="account", direction="backward")
            return joined.sort_values("qid")["balance"].fillna(0).astype("int64").to_numpy()
        peers["pandas merge_asof"] = pandas_asof

        codes = {name: i for i, name in enumerate(sorted(set(bp["account"]) | set(q["account"])))}
        bp_key = (bp["account"].map(codes).to_numpy(np.int64) << 40) | (bp["time"].to_numpy(np.int64) + (1 << 39))
        q_acc = q["account"].map(codes).to_numpy(np.int64)
        q_key = (q_acc << 40) | (q["time"].to_numpy(np.int64) + (1 << 39))
        bp_acc = bp["account"].map(codes).to_numpy(np.int64)
        bp_bal = bp["balance"].to_numpy(np.int64)

        def numpy_search():
            idx = np.searchsorted(bp_key, q_key, side="right") - 1
            safe = np.maximum(idx, 0)
            return np.where((idx >= 0) & (bp_acc[safe] == q_acc), bp_bal[safe], 0)
        peers["NumPy searchsorted (composite key)"] = numpy_search

        for name, fn in peers.items():
            check(name, fn())
            seconds, _ = best_of(args.repeats, fn)
            rows.append(("queries", name, seconds, ours_queries))

        # End to end: events CSV in, day-end balances out.
        out2 = os.path.join(tmp, "day-end-out.csv")
        cli_e2e = min(cli_timings(cli, ev, os.path.join(tmp, "queries.csv"), out2)[0] for _ in range(args.repeats))
        if not args.skip_seed_class:
            seed_s, seed_rows = run_seed(tmp)
            seed_answers = [balance or 0 for _, _, balance in seed_rows]
            cli_day_end = pd.read_csv(out2, keep_default_na=False)["balance"].replace("", "0").astype("int64").tolist()
            if seed_answers != cli_day_end:
                sys.exit("seed class: answers differ from gpucredit's")
            rows.append(("end to end", "seed class (Python)", seed_s, cli_e2e))

    print(f"\n{'comparison':<12}{'peer':<38}{'peer s':>10}{'gpucredit s':>13}{'ratio':>9}")
    for comparison, name, seconds, ours_s in rows:
        print(f"{comparison:<12}{name:<38}{seconds:>10.4f}{ours_s:>13.4f}{seconds / ours_s:>8.1f}x")
    print("\nanswers: every peer equal to gpucredit's, query for query")


if __name__ == "__main__":
    main()
