#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh), then runs the test suite. Extra arguments go to pytest, for example
#   scripts/test.sh -k flow_warp -x
#   scripts/test.sh -m cuda_emulated     # the CUDA kernels' code, run on the CPU
set -euo pipefail
cd "$(dirname "$0")/.."
export VID2VID_FAST_CPU_ISAS=all  # the tests run every x86 build of the CPU kernels
bash scripts/setup.sh
# The CUDA kernels emulated on the CPU (tests marked cuda_emulated): a test library, built here so that its
# progress shows (the tests would build it on first use).
echo "==> building the CUDA emulation test library (build/cuda_emulated-torch<version>)"
MAX_JOBS="${MAX_JOBS:-2}" .venv/bin/python tests/build_checks/cuda_emulated.py
echo "==> running the tests"
exec .venv/bin/python -m pytest tests -q "$@"
