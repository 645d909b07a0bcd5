#!/usr/bin/env python3
"""The Python bulk path against the CLI (the C++ path) and against DuckDB's ASOF JOIN, on
the same generated fleet month, side by side in one run; every answer is checked equal
to the CLI's before anything is timed.

Run it in an environment where gpucredit is installed with its bench extras:

    python -m pip install ".[bench]"
    python bench/python_bench.py --accounts 2000

What is timed (best of --repeats):
- queries: every account at every hour of the month (1.44 M queries for 2000 accounts).
  The CLI's own "queries" phase (`--timings`: names resolved, engine run) against
  `Ledger.balances` from a dictionary-encoded Arrow column (what `read_queries` gives),
  from a NumPy str array and from a list of str; DuckDB ASOF JOIN on the step function
  (its breakpoints table made beforehand, untimed). The first ratio is the binding's cost.
- end to end: events CSV and queries CSV in, balances in memory: `Ledger(csv)` +
  `read_queries` + `balances` (and the same from a Parquet events file) against the
  CLI's phases up to its answers (read, replay, index, queries: the same work), and
  against the whole CLI process (which also starts up and writes its CSV).
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cli", default=None, help="the gpucredit CLI (default: the one installed beside this Python)")
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import duckdb
    import numpy as np
    import pyarrow as pa
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    import gpucredit

    cli = args.cli or os.path.join(os.path.dirname(sys.executable), "gpucredit")
    if not os.path.exists(cli):
        sys.exit(f"no gpucredit CLI at {cli}: pass --cli")
    sys.path.insert(0, HERE)
    import fleet
    from peers import best_of
    from peers import cli_timings as cli_run

    rows = []  # (comparison, contender, seconds, baseline seconds, baseline name)
    with tempfile.TemporaryDirectory() as tmp:
        events, _ = fleet.generate(args.accounts, args.seed)
        fleet.write(tmp, events, [])
        ev = os.path.join(tmp, "events.csv")
        hq = os.path.join(tmp, "hourly.csv")
        with open(hq, "w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(["account", "timestamp"])
            w.writerows((f"org-{a:06d}", h * 3600 + 3599) for a in range(args.accounts) for h in range(30 * 24))
        parquet = os.path.join(tmp, "events.parquet")
        pq.write_table(pacsv.read_csv(ev, convert_options=pacsv.ConvertOptions(
            column_types={"account": pa.string(), "credit_id": pa.string()})), parquet)
        out = os.path.join(tmp, "out.csv")

        # The CLI: the reference answers, its query phase and its whole run.
        runs = [cli_run(cli, ev, hq, out) for _ in range(args.repeats)]
        cli_wall = min(r[0] for r in runs)
        cli_queries = min(r[1]["queries"] for r in runs)
        cli_in_memory = min(sum(v for k, v in r[1].items() if k != "write") for r in runs)
        reference = pacsv.read_csv(out, convert_options=pacsv.ConvertOptions(
            column_types={"account": pa.string(), "balance": pa.int64()}))["balance"].fill_null(0).to_numpy()
        print(f"fleet month: {args.accounts} accounts, {len(events)} events, {len(reference)} hourly queries; "
              f"backend {gpucredit.Ledger(ev).backend}")

        def check(name, got):
            if isinstance(got, pa.Array):
                got = got.fill_null(0)
            elif isinstance(got, np.ma.MaskedArray):
                got = got.filled(0)
            got = np.asarray(got, dtype=np.int64)
            if got.shape != reference.shape or not np.array_equal(got, reference):
                bad = int(np.flatnonzero(got != reference)[0]) if got.shape == reference.shape else -1
                sys.exit(f"{name}: answer {bad} differs from the CLI's")

        ledger = gpucredit.Ledger(ev)
        queries = gpucredit.read_queries(hq)
        q_accounts, q_times = queries["account"], queries["timestamp"]
        np_accounts = np.array(q_accounts.to_pylist())
        list_accounts = q_accounts.to_pylist()
        np_times = q_times.to_numpy()

        contenders = {
            "Ledger.balances (Arrow dictionary)": lambda: ledger.balances(q_accounts, q_times),
            "Ledger.balances_numpy (NumPy str)": lambda: ledger.balances_numpy(np_accounts, np_times),
            "Ledger.balances (list of str)": lambda: ledger.balances(list_accounts, np_times),
        }
        for name, fn in contenders.items():
            check(name, fn())
            seconds, _ = best_of(args.repeats, fn)
            rows.append(("queries", name, seconds, cli_queries, "CLI queries phase"))

        # DuckDB: the step function (breakpoints) from the interval table, made untimed,
        # then ASOF JOIN per query. gpucredit's intervals go to DuckDB through Arrow.
        con = duckdb.connect()
        intervals = ledger.intervals()
        con.register("iv", intervals)
        con.register("q_arrow", pa.table({"account": q_accounts.cast(pa.string()), "time": q_times,
                                          "qid": pa.array(np.arange(len(q_times)))}))
        con.execute("""
            CREATE TABLE q AS SELECT * FROM q_arrow;
            CREATE TABLE bp AS
            WITH deltas AS (
                SELECT CAST(account AS VARCHAR) AS account, "begin" AS time, amount AS change FROM iv
                UNION ALL SELECT CAST(account AS VARCHAR), "end" + 1, -amount FROM iv),
            merged AS (SELECT account, time, sum(change) AS change FROM deltas GROUP BY account, time)
            SELECT account, time, sum(change) OVER (PARTITION BY account ORDER BY time) AS balance FROM merged""")
        asof = ("SELECT coalesce(bp.balance, 0) AS b FROM q ASOF LEFT JOIN bp "
                "ON q.account = bp.account AND q.time >= bp.time ORDER BY q.qid")
        duck = lambda: con.execute(asof).fetchnumpy()["b"]  # noqa: E731
        check("DuckDB ASOF JOIN", duck())
        seconds, _ = best_of(args.repeats, duck)
        python_best = min(r[2] for r in rows if r[1].startswith("Ledger.balances (Arrow"))
        rows.append(("queries", "DuckDB ASOF JOIN (breakpoints)", seconds, python_best, "Ledger.balances (Arrow)"))

        def end_to_end(source):
            def run():
                led = gpucredit.Ledger(source)
                qs = gpucredit.read_queries(hq)
                return led.balances(qs["account"], qs["timestamp"])
            return run

        for name, source in (("Python: Ledger(CSV) + read_queries + balances", ev),
                             ("Python: Ledger(Parquet) + read_queries + balances", parquet)):
            fn = end_to_end(source)
            check(name, fn())
            seconds, _ = best_of(args.repeats, fn)
            rows.append(("end to end", name, seconds, cli_in_memory, "CLI phases but write"))
            rows.append(("end to end", name, seconds, cli_wall, "CLI process"))

    print(f"\n{'comparison':<12}{'contender':<52}{'s':>8}   {'baseline':<26}{'s':>8}{'ratio':>9}")
    for comparison, name, seconds, base, base_name in rows:
        print(f"{comparison:<12}{name:<52}{seconds:>8.4f}   {base_name:<26}{base:>8.4f}{seconds / base:>8.2f}x")
    print("\nratio: contender time / baseline time (below 1: the contender is faster)")
    print("answers: every contender equal to the CLI's, query for query")


if __name__ == "__main__":
    main()
