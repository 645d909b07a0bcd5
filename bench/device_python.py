#!/usr/bin/env python3
"""Device check for the Python package: the Ledger on the CUDA backend against the CPU
backend on a generated fleet month (every account at every hour), answers checked equal,
both timed. Runs with the module bench/device_build.sh builds (PYTHONPATH set to
.device-build/bin/python); needs only NumPy. Prints CSV: what,backend,queries,seconds.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def main() -> int:
    import numpy as np

    import gpucredit

    sys.path.insert(0, HERE)
    import fleet

    print(f"# gpucredit {gpucredit.__version__}, backends {gpucredit.backends()}, python {sys.version.split()[0]}")
    accounts = int(os.environ.get("DEVICE_PYTHON_ACCOUNTS", "2000"))
    with tempfile.TemporaryDirectory() as tmp:
        events, _ = fleet.generate(accounts, 1)
        fleet.write(tmp, events, [])
        path = os.path.join(tmp, "events.csv")
        names = np.array([f"org-{a:06d}" for a in range(accounts) for _ in range(720)])
        times = np.tile(np.arange(720, dtype=np.int64) * 3600 + 3599, accounts)
        shuffled = np.random.default_rng(1).permutation(len(times))
        print("what,backend,queries,seconds")
        answers = {}
        for backend in ("cpu", "cuda"):
            start = time.perf_counter()
            ledger = gpucredit.Ledger(path, backend=backend)
            print(f"build,{ledger.backend},0,{time.perf_counter() - start:.6f}")
            for order, idx in (("sorted", slice(None)), ("random", shuffled)):
                acc, ts = names[idx], times[idx]
                best = float("inf")
                for _ in range(5):
                    start = time.perf_counter()
                    got = ledger.balances_numpy(acc, ts).filled(0)
                    best = min(best, time.perf_counter() - start)
                answers[(backend, order)] = got
                print(f"balances {order},{ledger.backend},{len(ts)},{best:.6f}")
        for order in ("sorted", "random"):
            if not np.array_equal(answers[("cpu", order)], answers[("cuda", order)]):
                print(f"FAILED: {order} answers differ between cpu and cuda", file=sys.stderr)
                return 1
    print("# answers: cuda equal to cpu, query for query")
    return 0


if __name__ == "__main__":
    sys.exit(main())
