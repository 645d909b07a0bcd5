#!/usr/bin/env bash
# Prepares the device check on a machine without a GPU: builds the CUDA engine, its
# test suites, the CLI and the GPU benchmark for sm_90, statically linked (the GPU
# machine has CUDA but no GoogleTest), and gathers what bench/device_run.sh needs in
# .device-build/bin (ignored by git; carry it to the GPU machine).
set -euo pipefail
cd "$(dirname "$0")/.."
cmake --preset device  # CMakePresets.json: sm_90, static C++ runtime, benchmarks
cmake --build --preset device --parallel
rm -rf .device-build/bin && mkdir -p .device-build/bin
cp .device-build/gpucredit .device-build/bench/gpu_bench .device-build/bin/
for t in engine_test scheduler_test vectors_test random_test ledger_test jobs_test cli_test; do cp ".device-build/tests/$t" .device-build/bin/; done
strip .device-build/bin/*

# The Python module too (bench/device_python.py runs it there), for this machine's Python
# version, with libstdc++ linked in; nanobind comes from PyPI into a venv of its own.
python_env=.device-build/venv
[ -x "$python_env/bin/python" ] || { python3 -m venv "$python_env" && "$python_env/bin/python" -m pip install -q nanobind; }
cmake -S . -B .device-build/py -DCMAKE_BUILD_TYPE=Release -DGPUCREDIT_CUDA=ON -DCMAKE_CUDA_ARCHITECTURES=90 \
  -DGPUCREDIT_BUILD_TESTS=OFF -DGPUCREDIT_BUILD_CLI=OFF -DGPUCREDIT_BUILD_PYTHON=ON \
  -DPython_EXECUTABLE="$PWD/$python_env/bin/python" \
  -DCMAKE_MODULE_LINKER_FLAGS="-static-libstdc++ -static-libgcc"
cmake --build .device-build/py --parallel --target _core
mkdir -p .device-build/bin/python/gpucredit
cp python/gpucredit/*.py python/gpucredit/py.typed .device-build/py/python/gpucredit/_core*.so .device-build/bin/python/gpucredit/
strip .device-build/bin/python/gpucredit/_core*.so
du -sh .device-build/bin
