#!/usr/bin/env bash
# The device check, run on the GPU machine from the repository root with
# .device-build/bin carried there (bench/device_build.sh makes it). Writes into $OUT:
# tests.txt (the suites, with the CUDA backend chosen by "auto"), sanitizer-*.txt
# (compute-sanitizer memcheck and racecheck), gpu_bench.csv, peers.csv, python.csv (the
# Python package, CUDA against CPU) and summary.txt.
# Meant to finish well within 5 minutes.
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
# compute-sanitizer over the engine tests that run on the device (small sizes: it is slow).
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    timeout 90 compute-sanitizer --tool "$tool" --error-exitcode 3 "$bin/engine_test" \
      --gtest_filter='Engine.EveryBackendBuildsTheSameIndex:Engine.ChunkedSortedAndUnsortedBatchesAnswerLikeTheCpu' \
      >"$out/sanitizer-$tool.txt" 2>&1 || { status=1; echo "FAILED: compute-sanitizer $tool" >>"$out/summary.txt"; }
  done
fi
timeout 150 "$bin/gpu_bench" ${GPU_BENCH_ARGS:-} >"$out/gpu_bench.csv" 2>>"$out/summary.txt" || { status=1; echo "FAILED: gpu_bench" >>"$out/summary.txt"; }
timeout 150 python3 bench/gpu_peers.py --bench-csv "$out/gpu_bench.csv" >"$out/peers.csv" 2>>"$out/summary.txt" || { status=1; echo "FAILED: gpu_peers" >>"$out/summary.txt"; }
# The Python package on the device: only where this Python matches the one it was built for.
module=$(ls "$bin"/python/gpucredit/_core.*.so 2>/dev/null | head -1)
if [ -n "$module" ] && python3 -c "import sys, sysconfig; sys.exit(0 if sysconfig.get_config_var('EXT_SUFFIX') in '$module' else 1)"; then
  PYTHONPATH=$PWD/$bin/python timeout 120 python3 bench/device_python.py >"$out/python.csv" 2>>"$out/summary.txt" ||
    { status=1; echo "FAILED: device_python" >>"$out/summary.txt"; }
else
  echo "skipped: device_python (module $(basename "${module:-none}") does not match python3 $(python3 -V 2>&1))" >>"$out/summary.txt"
fi
cat "$out/summary.txt"
exit $status
