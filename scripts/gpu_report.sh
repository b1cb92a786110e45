#!/usr/bin/env bash
# The one-shot GPU report, for a fresh GPU machine without network: builds the extension in place against
# the torch already installed (CPU + CUDA kernels, TORCH_CUDA_ARCH_LIST=9.0 unless set), runs the CUDA and
# Triton tests and compute-sanitizer, times every op and backend, regenerates the dispatch table, and
# writes benchmarks/results/gpu-{model}-{date}.{md,json,png} (copied to $OUT when it is set). Installs
# nothing; compiler caches go to build/gpu_report_cache. Extra arguments go to benchmarks/gpu_report.py:
#   scripts/gpu_report.sh                 # everything, about 6-8 minutes on an H100
#   scripts/gpu_report.sh --skip-tests    # build and benchmarks only
#   PYTHON=/path/to/python scripts/gpu_report.sh
set -euo pipefail
cd "$(dirname "$0")/.."
export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-9.0}"
export PYTHONUNBUFFERED=1
exec "${PYTHON:-python3}" benchmarks/gpu_report.py "$@"
