#!/usr/bin/env bash
# The main job: sets up .venv (scripts/setup.sh), then trains vid2vid on the bundled real footage (edge2face:
# face landmarks drawn as edges -> video, the "demo" preset: a small model at 128x96) and synthesizes the
# held-out frames.
# Uses the GPU when there is one. Prints where the videos are, PSNR / SSIM / warp error and the speed.
# Extra arguments go to `vid2vid-fast train`, for example
#   scripts/demo.sh --max_iters 200          # a shorter run
#   scripts/demo.sh --reference              # the reference configuration (fp32, eager, reference warp)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# On a busy CPU, OpenMP threads that spin while waiting slow every op down many times over
export OMP_WAIT_POLICY="${OMP_WAIT_POLICY:-PASSIVE}"
start=$(date +%s)
.venv/bin/python -m vid2vid_fast train --preset demo --output_dir runs "$@"
echo "==> train + generate took $(( $(date +%s) - start )) s; outputs in runs/demo/"
