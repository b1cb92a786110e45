#!/usr/bin/env bash
# The main job: sets up .venv (scripts/setup.sh), then trains vid2vid on the bundled real footage (edge2face:
# face landmarks drawn as edges -> video, the "demo" preset: a small model at 128x96) for a 5-minute training
# budget and synthesizes the held-out frames. Uses the GPU when there is one. Prints where the videos are,
# PSNR / SSIM / warp error and the speed. Extra arguments go to `vid2vid-fast train`, for example
#   scripts/demo.sh --max_minutes 2          # a shorter budget
#   scripts/demo.sh --max_minutes 0          # the preset's whole fixed schedule (1,792 iterations)
#   scripts/demo.sh --reference              # the reference configuration (fp32, eager, reference warp)
# Set-up builds the CUDA kernels only when nvidia-smi sees a GPU; VID2VID_FAST_CPU_ONLY=0 asks for them
# anyway, VID2VID_FAST_CPU_ONLY=1 never builds them (scripts/test.sh builds them wherever nvcc is). It builds
# the CPU kernels for this processor only (VID2VID_FAST_CPU_ISAS=native; scripts/test.sh builds all of them).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -z "${VID2VID_FAST_CPU_ONLY:-}" ]; then
  if command -v nvidia-smi > /dev/null && nvidia-smi -L 2> /dev/null | grep -q '^GPU'; then
    export VID2VID_FAST_CPU_ONLY=0
  else
    export VID2VID_FAST_CPU_ONLY=1
  fi
fi
# The demo builds the CPU kernels for this machine alone (each x86 build is minutes of compilation on 2 cores)
export VID2VID_FAST_CPU_ISAS="${VID2VID_FAST_CPU_ISAS:-native}"
bash scripts/setup.sh
# How OpenMP threads wait for each other, chosen from what the CPU is doing now (scripts/omp_wait_policy.sh);
# OMP_WAIT_POLICY, when set, is kept
if [ -z "${OMP_WAIT_POLICY:-}" ]; then
  policy=$(bash scripts/omp_wait_policy.sh)
  if [ -n "$policy" ]; then export OMP_WAIT_POLICY="$policy"; fi
fi
start=$(date +%s)
.venv/bin/python -m vid2vid_fast train --preset demo --output_dir runs "$@"
echo "==> train + generate took $(( $(date +%s) - start )) s; outputs in the run folder printed above (runs/demo, or runs/demo-N when runs/demo holds an earlier run)"
