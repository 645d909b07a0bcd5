#!/usr/bin/env bash
# The device check, run on the GPU machine from the repository root with
# .device-build/bin carried there (bench/device_build.sh makes it). It cannot pass on the
# CPU: it first says what is here (GPU, driver, compute capability, the CUDA runtime
# gpucredit was built with, what its CUDA backend sees), then answers one vector with
# --backend cuda and stops, non-zero and within seconds, unless that ran on the device
# and gave the expected bytes. After that every suite runs with GPUCREDIT_BACKEND=cuda
# (a fall back to the CPU fails them). Writes into $OUT:
#   summary.txt          what is here, each step's outcome, and the elapsed seconds
#   gpu_bench_quick.csv  the quick benchmark, run before the suites
#   tests.txt            the suites on the device
#   sanitizer-*.txt      compute-sanitizer memcheck and racecheck ("not run" if refused)
#   gpu_bench.csv        the full benchmark: the figures bench/RESULTS.md quotes (kernels,
#                        end to end from host memory, the link, the search/merge
#                        crossover, a 10^6 x 720 report grid against the CPU engine)
#   peers.csv, python.csv
# The whole check keeps within 8 minutes: a step that would start past 6.5 minutes is
# skipped and says so.
set -uo pipefail
out=${OUT:-device-out}
mkdir -p "$out"
bin=.device-build/bin
summary="$out/summary.txt"
start=$(date +%s)
status=0
say() { echo "$*" | tee -a "$summary"; }
elapsed() { echo $(($(date +%s) - start)); }
in_budget() {  # in_budget STEP: false (and says so) past 390 s
  if [ "$(elapsed)" -gt 390 ]; then say "skipped: $1 (past 390 s of the 480 s budget)"; return 1; fi
}

: >"$summary"
say "== what is here ($(date -u +%FT%TZ))"
if command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=index,name,driver_version,compute_cap,memory.total --format=csv 2>&1 | tee -a "$summary"
else
  say "nvidia-smi: not found (no NVIDIA driver on this machine)"
fi
if [ ! -x "$bin/gpucredit" ]; then
  say "FAILED: $bin/gpucredit is missing: run bench/device_build.sh first and carry .device-build/bin"
  exit 2
fi
"$bin/gpucredit" --version 2>&1 | tee -a "$summary"

say "== the CUDA backend must be what runs"
probe=tests/vectors/random-0001
if ! timeout 60 "$bin/gpucredit" balances --backend cuda --events "$probe/events.csv" --queries "$probe/queries.csv" \
  --out "$out/probe.csv" 2>>"$summary"; then
  say "FAILED: the CUDA backend does not run here (the reason is above); nothing else was run"
  exit 2
fi
if ! cmp -s "$out/probe.csv" "$probe/expected.csv"; then
  say "FAILED: the CUDA backend answered $probe wrongly; nothing else was run"
  exit 1
fi
say "ok: $probe answered on the device, byte for byte ($(elapsed) s)"

export GPUCREDIT_BACKEND=cuda GPUCREDIT_TEST_VECTORS_DIR=$PWD/tests/vectors GPUCREDIT_TEST_CLI=$PWD/$bin/gpucredit

say "== quick benchmark"
timeout 90 "$bin/gpu_bench" --quick >"$out/gpu_bench_quick.csv" 2>>"$summary" || { status=1; say "FAILED: gpu_bench --quick"; }

say "== suites on the device"
for t in engine_test scheduler_test vectors_test random_test ledger_test jobs_test cli_test; do
  [ -x "$bin/$t" ] || { say "missing: $t"; status=1; continue; }
  in_budget "$t" || continue
  echo "== $t" >>"$out/tests.txt"
  if timeout 90 "$bin/$t" --gtest_brief=1 >>"$out/tests.txt" 2>&1; then
    say "passed: $t"
  else
    status=1
    say "FAILED: $t"
  fi
done

say "== compute-sanitizer"
if command -v compute-sanitizer >/dev/null; then
  for tool in memcheck racecheck; do
    in_budget "compute-sanitizer $tool" || continue
    timeout 90 compute-sanitizer --tool "$tool" --error-exitcode 3 "$bin/engine_test" \
      --gtest_filter='Engine.EveryBackendBuildsTheSameIndex:Engine.ChunkedSortedAndUnsortedBatchesAnswerLikeTheCpu:Engine.Grid*:DeviceEngine.*' \
      >"$out/sanitizer-$tool.txt" 2>&1
    code=$?
    if grep -q "Device not supported" "$out/sanitizer-$tool.txt"; then
      say "not run: compute-sanitizer $tool (it says the device is not supported)"
    elif [ $code -ne 0 ]; then
      status=1
      say "FAILED: compute-sanitizer $tool (exit $code)"
    else
      say "passed: compute-sanitizer $tool"
    fi
  done
else
  say "not run: compute-sanitizer (not installed)"
fi

say "== benchmarks"
if in_budget gpu_bench; then
  timeout 150 "$bin/gpu_bench" ${GPU_BENCH_ARGS:-} >"$out/gpu_bench.csv" 2>>"$summary" || { status=1; say "FAILED: gpu_bench"; }
fi
if in_budget gpu_peers; then
  timeout 60 python3 bench/gpu_peers.py --bench-csv "$out/gpu_bench.csv" >"$out/peers.csv" 2>>"$summary" ||
    { status=1; say "FAILED: gpu_peers"; }
fi
# The Python package on the device: only where this Python matches the one it was built for.
module=$(ls "$bin"/python/gpucredit/_core.*.so 2>/dev/null | head -1)
if [ -n "$module" ] && python3 -c "import sys, sysconfig; sys.exit(0 if sysconfig.get_config_var('EXT_SUFFIX') in '$module' else 1)"; then
  if in_budget device_python; then
    PYTHONPATH=$PWD/$bin/python timeout 60 python3 bench/device_python.py >"$out/python.csv" 2>>"$summary" ||
      { status=1; say "FAILED: device_python"; }
  fi
else
  say "not run: device_python (module $(basename "${module:-none}") does not match python3 $(python3 -V 2>&1))"
fi
say "done in $(elapsed) s, status $status"
exit $status
