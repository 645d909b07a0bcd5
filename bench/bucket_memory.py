#!/usr/bin/env python3
"""What one Spark bucket costs in memory: the peak RSS of a fresh Python process that
reads a bucket's events (Parquet, as an executor gets them: Arrow), sorts them by
arrival order, replays them into a Ledger and answers as many queries as there are
events, per event. docs/SCALE.md sizes buckets with it.

    .venv/bin/python bench/bucket_memory.py --events 4000000
"""
import argparse
import os
import subprocess
import sys
import tempfile

MEASURE = r'''
import os, resource, sys
import pyarrow.parquet as pq
import gpucredit
def rss():
    return int(open("/proc/self/statm").read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
start = rss()
table = pq.read_table(sys.argv[1]); n = table.num_rows
read = rss()
ordered = table.sort_by("seq")
ledger = gpucredit.Ledger.from_arrow(ordered.select(["op", "account", "credit_id", "timestamp", "amount", "expiration"]),
                                     backend="cpu")
del ordered
answers = ledger.balances(table.column("account"), table.column("timestamp"))
assert len(answers) == n
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(f"{n} events, {ledger.account_count} accounts, {n} queries: Arrow input {table.nbytes / n:.1f} bytes/event "
      f"({(read - start) / n:.1f} resident); peak over the process start {(peak - start) / n:.1f} bytes/event")
'''


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--events", type=int, default=4_000_000)
    p.add_argument("--events-per-account", type=int, default=400)
    args = p.parse_args()
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    n, accounts = args.events, max(1, args.events // args.events_per_account)
    rng = np.random.default_rng(1)
    account = rng.integers(0, accounts, n)
    is_add = rng.random(n) < 0.05
    names = pa.array([f"org-{a:07d}" for a in range(accounts)], pa.string())
    table = pa.table({
        "op": pa.array(np.where(is_add, "add", "use")),
        "account": pa.DictionaryArray.from_arrays(pa.array(account.astype(np.int32)), names).cast(pa.string()),
        "credit_id": pa.array(np.where(is_add, np.char.add("c", np.arange(n).astype(str)), "")),
        "timestamp": pa.array(np.sort(rng.integers(0, 90 * 86_400, n))),
        "amount": pa.array(np.where(is_add, 100_000, rng.integers(1, 50, n))),
        "expiration": pa.array(np.where(is_add, 30 * 86_400, 0), mask=~is_add),
        "seq": pa.array(np.arange(n)),
    })
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "bucket.parquet")
        pq.write_table(table, path)
        del table
        subprocess.run([sys.executable, "-c", MEASURE, path], check=True)


if __name__ == "__main__":
    main()
