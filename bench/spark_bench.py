#!/usr/bin/env python3
"""The fleet month through gpucredit.spark on Spark's local mode with 1 and 2 executor
threads (local[1], local[2]) against the single-process Ledger, side by side in one run:
what going through Spark costs per event and per query. Every Spark answer is checked
equal to the Ledger's before any time is reported.

Needs the package installed with its Spark extra in the running Python
(`pip install ".[spark]"`) and Java 17.

    .venv/bin/python bench/spark_bench.py --accounts 2000 --repeats 5
"""
import argparse
import os
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)


def timed(repeats, fn):
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        times.append(time.perf_counter() - start)
    return sorted(times), result


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--accounts", type=int, default=2000)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    args = p.parse_args()

    import pyarrow as pa
    from pyspark.sql import SparkSession

    import fleet
    import gpucredit
    from gpucredit import spark as gs

    events, queries = fleet.generate(args.accounts, args.seed)
    names = ["op", "account", "credit_id", "timestamp", "amount", "expiration"]
    ev = pa.table({n: pa.array([e[k] for e in events], pa.int64() if k >= 3 else pa.string())
                   for k, n in enumerate(names)})
    ev = ev.append_column("seq", pa.array(range(ev.num_rows), pa.int64()))
    q = pa.table({"account": pa.array([a for a, _ in queries], pa.string()),
                  "timestamp": pa.array([t for _, t in queries], pa.int64())})
    print(f"fleet month: {args.accounts} accounts, {ev.num_rows} events, {q.num_rows} queries; "
          f"load average {os.getloadavg()[0]:.2f}; best and median of {args.repeats}")

    def single():
        ledger = gpucredit.Ledger.from_arrow(ev.select(names))
        return ledger.balances(q.column("account"), q.column("timestamp"))

    single_s, want = timed(args.repeats, single)
    want = want.to_pylist()
    rows = [("single-process Ledger (replay + queries)", single_s)]

    # gpucredit's own share of a Spark run: the work each bucket's task does (sort its
    # events by arrival, a Ledger from Arrow, its queries answered), done here on the
    # same number of buckets, one after another, without Spark. Buckets by a hash of
    # the account, as Spark makes them (its hash differs; the sizes are alike).
    import pyarrow.compute as pc

    buckets = 4  # local[2] runs 2 x 2 buckets
    ev_bucket = pa.array([hash(a) % buckets for a in ev.column("account").to_pylist()], pa.int64())
    q_bucket = pa.array([hash(a) % buckets for a in q.column("account").to_pylist()], pa.int64())
    parts = [(ev.filter(pc.equal(ev_bucket, b)), q.filter(pc.equal(q_bucket, b))) for b in range(buckets)]

    def bucket_work():
        answered = 0
        for ev_part, q_part in parts:
            ledger = gpucredit.Ledger.from_arrow(ev_part.sort_by("seq").select(names))
            answered += len(ledger.balances(q_part.column("account"), q_part.column("timestamp")))
        assert answered == q.num_rows
        return answered

    bucket_s, _ = timed(args.repeats, bucket_work)
    rows.append((f"  the {buckets} buckets' own work, without Spark", bucket_s))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    for threads in (1, 2):
        spark = (SparkSession.builder.master(f"local[{threads}]").appName("gpucredit-bench")
                 .config("spark.ui.enabled", "false").config("spark.driver.memory", "4g").config("spark.sql.shuffle.partitions", str(2 * threads))
                 .getOrCreate())
        spark.sparkContext.setLogLevel("ERROR")
        ev_df, q_df = spark.createDataFrame(ev).cache(), spark.createDataFrame(q).cache()
        ev_df.count(), q_df.count()  # in Spark's memory before timing, as a table in a data lake would be read once

        def on_spark(events_df=ev_df, queries_df=q_df, ordered=True):
            answers = gs.balances(events_df, queries_df, buckets=2 * threads, ordered=ordered)
            return [r.balance for r in answers.collect()]

        got = on_spark()  # warm-up, and the check
        if got != want:
            bad = next(i for i, (g, w) in enumerate(zip(got, want)) if g != w)
            sys.exit(f"local[{threads}]: answer {bad} is {got[bad]}, the Ledger says {want[bad]}")
        spark_s, _ = timed(args.repeats, on_spark)
        rows.append((f"gpucredit.spark.balances, local[{threads}] (collected)", spark_s))
        unordered_s, got = timed(args.repeats, lambda: on_spark(ordered=False))
        if sorted(got, key=lambda v: (v is None, v)) != sorted(want, key=lambda v: (v is None, v)):
            sys.exit(f"local[{threads}], ordered=False: the answers differ from the Ledger's")
        rows.append((f"  the same, ordered=False", unordered_s))
        # Spark's floor: the same job over one event and one query (scheduling, the
        # shuffle of both sides, Python workers, Arrow both ways), nothing to compute.
        tiny_ev, tiny_q = spark.createDataFrame(ev.slice(0, 1)).cache(), spark.createDataFrame(q.slice(0, 1)).cache()
        tiny_ev.count(), tiny_q.count()
        floor_s, _ = timed(args.repeats, lambda: on_spark(tiny_ev, tiny_q))
        rows.append((f"  the same job over 1 event and 1 query", floor_s))
        # What any design pays before it computes anything: Spark scanning the cached
        # events and handing them to a Python function that only counts them.
        import pyarrow as pa_

        def count_rows(batches):
            yield pa_.RecordBatch.from_pydict({"rows": pa_.array([sum(b.num_rows for b in batches)], pa_.int64())})

        handoff_s, counted = timed(args.repeats, lambda: sum(r.rows for r in ev_df.mapInArrow(count_rows, "rows long").collect()))
        assert counted == ev.num_rows
        rows.append((f"  Spark handing the events to Python (no shuffle, no work)", handoff_s))
        spark.stop()
    base = rows[0][1][0]
    print(f"\n{'run':<52}{'best s':>9}{'median s':>10}{'vs Ledger':>11}{'us/event':>10}{'us/query':>10}")
    for name, times in rows:
        best, median = times[0], statistics.median(times)
        print(f"{name:<52}{best:>9.3f}{median:>10.3f}{best / base:>10.1f}x{best / ev.num_rows * 1e6:>10.3f}"
              f"{best / q.num_rows * 1e6:>10.3f}")
    print("\nanswers: every Spark answer equal to the single-process Ledger's")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
