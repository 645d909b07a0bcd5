#!/usr/bin/env bash
# The device check, run on the GPU machine from the repository root with
# .device-build/bin carried there (bench/device_build.sh makes it). Writes into $OUT:
# tests.txt (the suites, with the CUDA backend chosen by "auto"), gpu_bench.csv,
# peers.csv, and summary.txt. Meant to finish well within 5 minutes.
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
bin=.device-build/bin
export GPUCREDIT_TEST_VECTORS_DIR=$PWD/tests/vectors GPUCREDIT_TEST_CLI=$PWD/$bin/gpucredit
status=0
{
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv
  "$bin/gpucredit" --version
} >"$out/summary.txt" 2>&1
for t in engine_test vectors_test random_test ledger_test cli_test; do
  echo "== $t" >>"$out/tests.txt"
  timeout 120 "$bin/$t" --gtest_brief=1 >>"$out/tests.txt" 2>&1 || { status=1; echo "FAILED: $t" >>"$out/summary.txt"; }
done
timeout 150 "$bin/gpu_bench" ${GPU_BENCH_ARGS:-} >"$out/gpu_bench.csv" 2>>"$out/summary.txt" || { status=1; echo "FAILED: gpu_bench" >>"$out/summary.txt"; }
timeout 150 python3 bench/gpu_peers.py --bench-csv "$out/gpu_bench.csv" >"$out/peers.csv" 2>>"$out/summary.txt" || { status=1; echo "FAILED: gpu_peers" >>"$out/summary.txt"; }
cat "$out/summary.txt"
exit $status
