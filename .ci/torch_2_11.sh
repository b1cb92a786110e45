#!/usr/bin/env bash
# CI, after the main test run: the extension against torch 2.11, the version of the lent GPU machines (Python 3.12,
# torch 2.11 cu130, triton 3.6, no network), so that scripts/gpu_report.sh does not meet a torch API difference
# for the first time on a GPU. In a second virtualenv (build/venv-torch2.11, reused by later runs):
#   1. one build of the extension with setup.py, the CPU kernels and the CUDA sources compiled by nvcc
#      (CUDA_HOME, default /usr/local/cuda; TORCH_CUDA_ARCH_LIST=9.0, the H100/H200's) against torch 2.11's headers;
#      CPU kernels only when there is no nvcc;
#   2. a short op test with that build (loaded through VID2VID_FAST_LIBRARY): every op against the reference,
#      opcheck, torch.compile, autocast, the C++ checks; and the CUDA kernels emulated on the CPU, built against
#      torch 2.11 too.
# The package registry serves torch 2.11 for Linux only as its cu130 build, whose CUDA runtime wheels (cuDNN,
# cuBLAS, NCCL...) are several GB more. torch is installed without them (--no-deps) and, for `import torch` to
# find the libraries it links, with the runtime wheels of the main .venv's torch: the same CUDA 13 libraries
# (same sonames), already on this machine. Nothing runs on a GPU here, so their minor versions do not matter.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=build/venv-torch2.11
TORCH=torch==2.11.0
PY=$VENV/bin/python
if [ ! -x "$PY" ]; then
  "${PYTHON:-python3}" -m venv "$VENV"
fi
stamp="$VENV/.installed"
if [ "$(cat "$stamp" 2> /dev/null)" != "$TORCH" ]; then
  echo "==> torch 2.11: installing $TORCH (about 530 MB the first time) into $VENV"
  runtime=$(.venv/bin/python - << 'PYEOF'
import importlib.metadata
from packaging.requirements import Requirement
for line in importlib.metadata.requires("torch"):
    req = Requirement(line)
    if req.name.startswith(("nvidia-", "cuda-")) and (req.marker is None or req.marker.evaluate({"extra": ""})):
        print(str(req).split(";")[0])
PYEOF
  )
  "$PY" -m pip install --quiet --no-deps "$TORCH"
  "$PY" -m pip install --quiet filelock "typing-extensions>=4.10" "setuptools>=64,<82" "sympy>=1.13.3" networkx \
    jinja2 fsspec numpy pyyaml ninja wheel pybind11 pytest 2>&1 | grep -v -e "dependency resolver" -e "which is not installed" || true
  # shellcheck disable=SC2086  # one requirement per word
  # (pip's notes that these versions are not the ones torch 2.11 pins, or not yet installed, and on index folders
  # it skips, hidden; the import below checks the result)
  "$PY" -m pip install --quiet $runtime 2>&1 | grep -v -e "incompatible" -e "is ignored" -e "dependency resolver" -e "which is not installed" || true
  "$PY" -c "import torch; assert torch.__version__.startswith('2.11.'), torch.__version__"
  echo "$TORCH" > "$stamp"
fi
"$PY" -c "import torch; print('==> torch 2.11: using torch', torch.__version__, 'in $VENV')"

export CUDA_HOME="${CUDA_HOME:-/usr/local/cuda}"
export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST_2_11:-9.0}"
export MAX_JOBS="${MAX_JOBS:-2}"
if [ -x "$CUDA_HOME/bin/nvcc" ]; then
  what="CPU + CUDA kernels, nvcc $CUDA_HOME, architecture $TORCH_CUDA_ARCH_LIST"
  unset VID2VID_FAST_CPU_ONLY
else
  what="CPU kernels only: no nvcc in CUDA_HOME=$CUDA_HOME"
  export VID2VID_FAST_CPU_ONLY=1
fi
echo "==> torch 2.11: building the extension ($what)"
out=build/torch2.11
start=$SECONDS
if ! "$PY" setup.py --quiet build_ext --build-lib "$out/lib" --build-temp "$out/temp" > "$out.log" 2>&1; then
  tail -50 "$out.log"
  echo "==> torch 2.11: build FAILED ($what), log: $out.log"
  exit 1
fi
library=$(ls "$out"/lib/vid2vid_fast/_C*.so)
if [ -x "$CUDA_HOME/bin/nvcc" ]; then
  # The CUDA kernels are in the library (registered for the CUDA dispatch key, which needs no GPU to inspect).
  VID2VID_FAST_LIBRARY=$library "$PY" -c "
import torch, vid2vid_fast
assert torch._C._dispatch_has_kernel_for_dispatch_key('vid2vid_fast::flow_warp', 'CUDA'), 'no CUDA kernels'"
fi
echo "==> torch 2.11: build ok in $((SECONDS - start)) s ($what)"

echo "==> torch 2.11: short op test"
log=$out-tests.log
set +e
VID2VID_FAST_LIBRARY=$library OMP_WAIT_POLICY=PASSIVE "$PY" -m pytest -q -p no:cacheprovider \
  tests/ops/test_ops_vs_reference.py tests/ops/test_registration.py tests/ops/test_checks.py \
  tests/ops/test_cuda_emulated.py -k "float32 or not float" --deselect tests/ops/test_ops_vs_reference.py::test_matches_reference_on_two_threads \
  2>&1 | tee "$log" | tail -5
status=${PIPESTATUS[0]}
set -e
summary=$(grep -E "[0-9]+ (passed|failed)" "$log" | tail -1)
if [ "$status" -ne 0 ]; then
  echo "==> torch 2.11: tests FAILED: $summary"
  exit "$status"
fi
echo "==> torch 2.11: build ok, $summary"
