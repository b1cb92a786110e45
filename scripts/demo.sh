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
# How OpenMP threads wait for each other, chosen from what the CPU is doing now (OMP_WAIT_POLICY, when set,
# is kept). libgomp's default spins a while first: on the idle 2-core VM the demo's step took 0.12 s with it
# and 0.22 s with PASSIVE (threads sleep at once). But a spinning thread holds a core another process
# needs: with a busy-looping process per core the step took 1.25 s against 0.40 s with PASSIVE, and with
# one such process on the two cores 0.29-0.32 s against 0.22 s.
if [ -z "${OMP_WAIT_POLICY:-}" ] && [ -r /proc/stat ]; then
  # CPUs' worth of time that other processes (and the hypervisor, as steal) took over one second
  ticks() { awk '/^cpu /{ print $2+$3+$4+$5+$6+$7+$8+$9, $5+$6 }' /proc/stat; }
  read -r total0 idle0 < <(ticks)
  sleep 1
  read -r total1 idle1 < <(ticks)
  busy=$(awk -v t=$((total1 - total0)) -v i=$((idle1 - idle0)) -v n="$(nproc)" 'BEGIN { printf "%.1f", (t > 0 ? (t - i) / t * n : 0) }')
  if awk -v b="$busy" 'BEGIN { exit !(b >= 0.5) }'; then
    export OMP_WAIT_POLICY=PASSIVE
    echo "==> other processes keep $busy of $(nproc) CPUs busy: OpenMP threads will sleep while they wait (OMP_WAIT_POLICY=PASSIVE)"
  fi
fi
start=$(date +%s)
.venv/bin/python -m vid2vid_fast train --preset demo --output_dir runs "$@"
echo "==> train + generate took $(( $(date +%s) - start )) s; outputs in the run folder printed above (runs/demo, or runs/demo-N when runs/demo holds an earlier run)"
