#!/usr/bin/env python3
"""A skewed fleet end to end: gpucredit's CLI (events CSV in, answers CSV out) against
DuckDB's ASOF JOIN and Polars' join_asof, which are handed gpucredit's own interval
table as a step function (prepared untimed: they skip the replay) and must still read the
queries CSV and write the answers CSV. Every answer is checked equal before timing is
reported. Also times Polars' CSV reader and writer alone on the same files against
gpucredit's read-queries and write phases (`--timings`).

The fleet: `--accounts` accounts over `--days` days, events per account log-normal,
`--giants` accounts of 10^5 to 3x10^5 events, `--late` of the events arriving late
(after events with later timestamps), `--queries` queries in random order, a share of
them on the giant accounts. Creates bench/.venv-peers (DuckDB, Polars, NumPy) on first
use.

    python3 bench/skewed.py --cli build/gpucredit --repeats 5
    python3 bench/skewed.py --cli build/gpucredit --answers-dir /dev/shm   # without the disk
"""
import argparse
import os
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from peers import best_of, cli_timings, ensure_venv, step_function  # noqa: E402


def generate(accounts, days, giants, queries, late, seed):
    """(events, queries) as Polars frames, events in arrival order."""
    import numpy as np
    import polars as pl

    rng = np.random.default_rng(seed)
    horizon = days * 86400
    counts = np.maximum(2, rng.lognormal(3.0, 1.1, accounts)).astype(np.int64)
    counts[:giants] = rng.integers(100_000, 300_001, giants)
    total = int(counts.sum())
    account = np.repeat(np.arange(accounts), counts)
    t = rng.integers(0, horizon, total)
    is_add = rng.random(total) < 0.3
    amount = np.where(is_add, rng.integers(100, 10_000, total), rng.integers(1, 300, total))
    expiration = np.where(is_add, rng.integers(7, 31, total) * 86400, 0)
    # Arrival: in time order, except `late` of the events, which arrive up to 3 days late.
    arrival = t + np.where(rng.random(total) < late, rng.integers(1, 3 * 86400, total), 0)
    order = np.argsort(arrival, kind="stable")
    names = np.array([f"org-{a:06d}" for a in range(accounts)])
    ev = pl.DataFrame({
        "op": np.where(is_add, "add", "use")[order],
        "account": names[account[order]],
        "credit_id": np.where(is_add, np.char.add("c", np.arange(total).astype(str)), "")[order],
        "timestamp": t[order],
        "amount": amount[order],
        "expiration": expiration[order],
    }).with_columns(pl.when(pl.col("op") == "use").then(None).otherwise(pl.col("expiration")).alias("expiration"))
    # Queries: a quarter on the giant accounts, the rest on any account; random order.
    on_giants = rng.random(queries) < 0.25
    q_account = np.where(on_giants, rng.integers(0, max(giants, 1), queries), rng.integers(0, accounts, queries))
    q = pl.DataFrame({"account": names[q_account], "timestamp": rng.integers(-86400, horizon + 86400, queries)})
    return ev, q


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", default="build/gpucredit")
    p.add_argument("--accounts", type=int, default=20_000)
    p.add_argument("--days", type=int, default=90)
    p.add_argument("--giants", type=int, default=4)
    p.add_argument("--queries", type=int, default=10_000_000)
    p.add_argument("--late", type=float, default=0.005)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--keep", help="keep the generated files in this directory")
    p.add_argument("--answers-dir", help="where every contender writes its answers (default: beside the inputs); "
                   "a tmpfs such as /dev/shm takes the disk out of the comparison")
    args = p.parse_args()
    cli = os.path.abspath(args.cli)
    ensure_venv()

    import duckdb
    import numpy as np
    import pandas as pd
    import polars as pl

    tmp_ctx = tempfile.TemporaryDirectory()
    tmp = args.keep or tmp_ctx.name
    os.makedirs(tmp, exist_ok=True)
    ev_path, q_path = os.path.join(tmp, "events.csv"), os.path.join(tmp, "queries.csv")
    ev, q = generate(args.accounts, args.days, args.giants, args.queries, args.late, args.seed)
    ev.write_csv(ev_path, quote_style="necessary")
    q.write_csv(q_path, quote_style="necessary")
    print(f"skewed fleet: {args.accounts} accounts, {ev.height} events ({args.giants} accounts of 10^5-3x10^5), "
          f"{args.late:.1%} late, {q.height} queries in random order; events {os.path.getsize(ev_path) >> 20} MiB, "
          f"queries {os.path.getsize(q_path) >> 20} MiB")
    print(f"load average before the runs: {os.getloadavg()[0]:.2f}; best and median of {args.repeats}")

    answers_dir = args.answers_dir or tmp
    os.makedirs(answers_dir, exist_ok=True)
    if args.answers_dir:
        print(f"answers written to {answers_dir}")

    # gpucredit end to end, with its phases.
    out = os.path.join(answers_dir, "out-gpucredit.csv")
    runs = []
    for _ in range(args.repeats):
        runs.append(cli_timings(cli, ev_path, q_path, out))
    ours = pl.read_csv(out, schema_overrides={"balance": pl.Int64})["balance"].fill_null(0).to_numpy()
    walls = sorted(r[0] for r in runs)
    phase = {name: min(r[1][name] for r in runs) for name in runs[0][1]}

    # Peers' inputs, prepared untimed: the step function from gpucredit's intervals.
    iv_path = os.path.join(tmp, "intervals.csv")
    subprocess.run([cli, "intervals", "--events", ev_path, "--out", iv_path], check=True)
    bp = step_function(pd.read_csv(iv_path, dtype={"account": str, "credit_id": str}))
    bp_pl = pl.from_pandas(bp).sort("time")

    def check(name, path):
        got = pl.read_csv(path, schema_overrides={"balance": pl.Int64})["balance"].fill_null(0).to_numpy()
        if not np.array_equal(got, ours):
            bad = int(np.flatnonzero(got != ours)[0])
            sys.exit(f"{name}: answer {bad} is {got[bad]}, gpucredit says {ours[bad]}")

    con = duckdb.connect()
    con.register("bp_df", bp)
    con.execute("CREATE TABLE bp AS SELECT account, time, balance FROM bp_df")
    duck_out = os.path.join(answers_dir, "out-duckdb.csv")

    def duckdb_e2e():
        con.execute(f"CREATE OR REPLACE TEMP TABLE q AS SELECT * FROM read_csv('{q_path}', header = true, "
                    "columns = {'account': 'VARCHAR', 'timestamp': 'BIGINT'})")
        con.execute(f"COPY (SELECT q.account, q.timestamp, bp.balance FROM q ASOF LEFT JOIN bp "
                    f"ON q.account = bp.account AND q.timestamp >= bp.time ORDER BY q.rowid) TO '{duck_out}' "
                    "(HEADER, DELIMITER ',')")

    polars_out = os.path.join(answers_dir, "out-polars.csv")

    def polars_e2e():
        qs = pl.read_csv(q_path, schema={"account": pl.Utf8, "timestamp": pl.Int64}).with_row_index("qid")
        joined = qs.sort("timestamp").join_asof(bp_pl, left_on="timestamp", right_on="time", by="account",
                                                strategy="backward")
        joined.sort("qid").select("account", "timestamp", "balance").write_csv(polars_out)

    peers = {}
    for name, fn, path in (("DuckDB ASOF JOIN", duckdb_e2e, duck_out), ("Polars join_asof", polars_e2e, polars_out)):
        fn()
        check(name, path)
        times = []
        for _ in range(args.repeats):
            times.append(best_of(1, fn)[0])
        peers[name] = sorted(times)

    # CSV alone: Polars' reader on the queries, its writer on the answers.
    answers = pl.read_csv(out, schema_overrides={"balance": pl.Int64})
    read_s = sorted(best_of(1, lambda: pl.read_csv(q_path, schema={"account": pl.Utf8, "timestamp": pl.Int64}))[0]
                    for _ in range(args.repeats))
    write_s = sorted(best_of(1, lambda: answers.write_csv(os.path.join(answers_dir, "w.csv")))[0]
                     for _ in range(args.repeats))

    med = lambda xs: xs[len(xs) // 2]  # noqa: E731
    print(f"\n{'end to end':<34}{'best s':>9}{'median s':>10}{'vs gpucredit (best)':>22}")
    print(f"{'gpucredit balances (CLI)':<34}{walls[0]:>9.3f}{med(walls):>10.3f}{'':>22}")
    for name, times in peers.items():
        print(f"{name:<34}{times[0]:>9.3f}{med(times):>10.3f}{times[0] / walls[0]:>21.1f}x")
    print("\ngpucredit phases (best of the runs, s): " + ", ".join(f"{k} {v:.3f}" for k, v in phase.items()))
    print(f"CSV alone: Polars reads the queries in {read_s[0]:.3f} s (gpucredit: {phase['read queries']:.3f} s, "
          f"{read_s[0] / phase['read queries']:.2f}x); Polars writes the answers in {write_s[0]:.3f} s "
          f"(gpucredit: {phase['write']:.3f} s, {write_s[0] / phase['write']:.2f}x)")
    print("answers: DuckDB's and Polars' equal to gpucredit's, query for query")
    if args.answers_dir:
        for name in ("out-gpucredit.csv", "out-duckdb.csv", "out-polars.csv", "w.csv"):
            if os.path.exists(os.path.join(answers_dir, name)):
                os.remove(os.path.join(answers_dir, name))


if __name__ == "__main__":
    main()
