#!/usr/bin/env bash
# Runs the randomized suites again under other base seeds (GPUCREDIT_TEST_SEED): each seed
# draws other ledgers, files, queries and splits than the default run, which always
# draws the same. A failure prints its seed; rerun one suite with it to see the case.
#   tests/seed_sweep.sh BUILD_DIR [SEED ...]     (default seeds: 101 202 303 404)
set -euo pipefail
build=${1:?usage: tests/seed_sweep.sh BUILD_DIR [SEED ...]}
shift
seeds=("$@")
[ ${#seeds[@]} -gt 0 ] || seeds=(101 202 303 404)
status=0
for seed in "${seeds[@]}"; do
  for suite in random_test jobs_test csv_test ledger_test engine_test gpu_credit_test; do
    if ! GPUCREDIT_TEST_SEED=$seed "$build/tests/$suite" --gtest_brief=1 >"$build/seed-$seed-$suite.log" 2>&1; then
      echo "seed sweep: $suite failed with GPUCREDIT_TEST_SEED=$seed"
      grep -E "Failure|FAILED" -A6 "$build/seed-$seed-$suite.log" | head -40
      status=1
    fi
  done
  echo "seed sweep: seed $seed done"
done
exit $status
