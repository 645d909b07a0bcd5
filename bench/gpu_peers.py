#!/usr/bin/env python3
"""Peers of bench/gpu_bench.cu on the same data: cupy.searchsorted and torch.searchsorted.

Rebuilds each synthetic step index and query batch of gpu_bench with the same splitmix64
formulas, answers the queries as a user of those libraries would (one sorted composite
key per breakpoint, `searchsorted(side='right') - 1`, then the balance if the breakpoint
belongs to the query's account), checks the checksum of all answers against
gpu_bench's, and times the search and gather with CUDA events.

    python3 bench/gpu_peers.py --bench-csv gpu_bench.csv > peers.csv
"""
import argparse
import csv
import sys

REPEATS = 5
M30, M27, M31 = 30, 27, 31
C0, C1, C2 = 0x9E3779B97F4A7C15, 0xBF58476D1CE4E5B9, 0x94D049BB133111EB


def mix(xp, x):
    x = x + xp.uint64(C0)
    x = (x ^ (x >> xp.uint64(M30))) * xp.uint64(C1)
    x = (x ^ (x >> xp.uint64(M27))) * xp.uint64(C2)
    return x ^ (x >> xp.uint64(M31))


def make_data(xp, breakpoints, queries, order, per=100):
    accounts = breakpoints // per
    i = xp.arange(breakpoints, dtype=xp.uint64)
    bp_account = (i // xp.uint64(per)).astype(xp.int64)
    bp_time = ((i % xp.uint64(per)) * xp.uint64(16) + mix(xp, i) % xp.uint64(8)).astype(xp.int64)
    balance = (xp.uint64(1) + mix(xp, i ^ xp.uint64(0x5555)) % xp.uint64(1000)).astype(xp.int64)
    j = xp.arange(queries, dtype=xp.uint64)
    if order == "sorted":
        q_account = (j * xp.uint64(accounts) // xp.uint64(queries)).astype(xp.int64)
        q_time = (((j * xp.uint64(accounts)) % xp.uint64(queries)) * xp.uint64(per * 16) // xp.uint64(queries)).astype(xp.int64)
    else:
        h = mix(xp, j + xp.uint64(1))
        q_account = (h % xp.uint64(accounts)).astype(xp.int64)
        q_time = (mix(xp, h) % xp.uint64(per * 16 + 16)).astype(xp.int64) - 8
    # One sorted composite key per breakpoint: account in the high bits, time + 8 below.
    bp_key = (bp_account << 40) | (bp_time + 8)
    q_key = (q_account << 40) | (q_time + 8)
    return bp_key, bp_account, balance, q_key, q_account


def answer(xp, searchsorted, bp_key, bp_account, balance, q_key, q_account):
    idx = searchsorted(bp_key, q_key) - 1
    safe = xp.maximum(idx, 0)
    hit = (idx >= 0) & (bp_account[safe] == q_account)
    return xp.where(hit, balance[safe], 0)


def time_cupy(rows):
    import cupy as cp
    for b, q, order, checksum in rows:
        data = make_data(cp, b, q, order)
        search = lambda keys, values: cp.searchsorted(keys, values, side="right")  # noqa: E731
        got = answer(cp, search, *data)
        ok = int(got.astype(cp.uint64).sum()) == checksum
        start, stop = cp.cuda.Event(), cp.cuda.Event()
        best = float("inf")
        for _ in range(REPEATS):
            start.record()
            answer(cp, search, *data)
            stop.record()
            stop.synchronize()
            best = min(best, cp.cuda.get_elapsed_time(start, stop))
        del data, got
        cp.get_default_memory_pool().free_all_blocks()
        yield "cupy.searchsorted", b, q, order, best, ok


def time_torch(rows):
    import cupy as cp
    import torch
    for b, q, order, checksum in rows:
        data = make_data_torch(torch, b, q, order)
        search = lambda keys, values: torch.searchsorted(keys, values, right=True)  # noqa: E731
        got = answer_torch(torch, search, *data)
        ok = int(got.sum().item()) == checksum  # sums of small positive balances fit int64
        start, stop = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        best = float("inf")
        for _ in range(REPEATS):
            start.record()
            answer_torch(torch, search, *data)
            stop.record()
            stop.synchronize()
            best = min(best, start.elapsed_time(stop))
        del data, got
        cp.get_default_memory_pool().free_all_blocks()
        torch.cuda.empty_cache()
        yield "torch.searchsorted", b, q, order, best, ok


def make_data_torch(torch, breakpoints, queries, order):
    # Same data, made with CuPy and handed over without a copy (DLPack).
    import cupy as cp
    return tuple(torch.from_dlpack(a) for a in make_data(cp, breakpoints, queries, order))


def answer_torch(torch, search, bp_key, bp_account, balance, q_key, q_account):
    idx = search(bp_key, q_key) - 1
    safe = idx.clamp(min=0)
    hit = (idx >= 0) & (bp_account[safe] == q_account)
    return torch.where(hit, balance[safe], torch.zeros_like(balance[safe]))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--bench-csv", required=True, help="gpu_bench's output")
    args = p.parse_args()
    with open(args.bench_csv, newline="") as f:
        bench = [r for r in csv.DictReader(f) if r["kind"] == "kernel"]
    rows = sorted({(int(r["breakpoints"]), int(r["queries"]), r["order"], int(r["checksum"])) for r in bench})
    best = {}
    for r in bench:
        key = (int(r["breakpoints"]), int(r["queries"]), r["order"])
        best[key] = min(best.get(key, float("inf")), float(r["ms"]))
    # Rows are printed as they come, so a run cut short still reports what it measured.
    w = csv.writer(sys.stdout, lineterminator="\n")
    w.writerow(["peer", "breakpoints", "queries", "order", "peer_ms", "gpucredit_ms", "speedup", "answers_equal"])
    all_equal = True
    for timer in (time_cupy, time_torch):
        try:
            for peer, b, q, order, ms, ok in timer(rows):
                ours = best[(b, q, order)]
                w.writerow([peer, b, q, order, f"{ms:.4f}", f"{ours:.4f}", f"{ms / ours:.2f}", ok])
                sys.stdout.flush()
                all_equal &= ok
        except Exception as e:  # a missing library or memory is reported, not fatal
            print(f"{timer.__name__}: {e}", file=sys.stderr)
    if not all_equal:
        sys.exit("answers differ")


if __name__ == "__main__":
    main()
