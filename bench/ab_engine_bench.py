#!/usr/bin/env python3
"""Two builds of engine_bench side by side: alternated ROUNDS times, REPS repetitions
each, medians compared. For "no regression" claims across a change:

    git worktree add /tmp/before REV && cmake -S /tmp/before -B /tmp/before/b \\
        -DGPUCREDIT_CUDA=OFF -DGPUCREDIT_BUILD_BENCH=ON && cmake --build /tmp/before/b --target engine_bench
    python3 bench/ab_engine_bench.py /tmp/before/b/bench/engine_bench build-bench/bench/engine_bench

A third argument replaces the default set of benchmarks (a --benchmark_filter regex).
"""
import json
import os
import statistics
import subprocess
import sys

FILTER = ("BM_Replay/(1000|10000)/|BM_Queries/1000/|BM_ParseEvents/lines:1000000/interleaved:1|"
          "BM_StepIndexBuild/1000/|BM_QueriesSynthetic/breakpoints:1000000/sorted:./queries:4194304|"
          "BM_GPUCreditInterleaved/100000/")


def main():
    before, after = sys.argv[1], sys.argv[2]
    bench_filter = sys.argv[3] if len(sys.argv) > 3 else FILTER
    rounds, reps = 3, 3
    times = {"before": {}, "after": {}}
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    for _ in range(rounds):
        for name, exe in (("before", before), ("after", after)):
            out = subprocess.run([exe, f"--benchmark_filter={bench_filter}", "--benchmark_format=json",
                                  f"--benchmark_repetitions={reps}"], capture_output=True, text=True, check=True).stdout
            for b in json.loads(out)["benchmarks"]:
                if b.get("run_type") == "iteration":
                    times[name].setdefault(b["run_name"], []).append(b["real_time"])
    print(f"| benchmark | before ms (median of {rounds * reps}) | after ms | after / before |")
    print("|---|---|---|---|")
    for k, v in times["before"].items():
        b, a = statistics.median(v), statistics.median(times["after"][k])
        print(f"| {k.replace('/real_time', '')} | {b:.3f} | {a:.3f} | {a / b:.2f} |")


if __name__ == "__main__":
    main()
