#!/usr/bin/env bash
# Sets up a development environment in .venv: pinned dependencies, then the compiled extension, built in place
# (pip install --no-build-isolation -e .). Safe to run again: it skips the dependencies when the list below is
# unchanged, and the build when neither the sources, the build files nor the build settings changed (pip builds
# an editable install in a new temporary folder each time, so ninja cannot skip unchanged objects itself).
#
# Environment (each has a default here; set it to override):
#   PYTHON                 interpreter that creates .venv (python3)
#   CUDA_HOME              CUDA toolkit (/usr/local/cuda when it has bin/nvcc: the nvcc on PATH may be a wrapper
#                          script, from which torch would guess the wrong toolkit)
#   TORCH_CUDA_ARCH_LIST   GPU architectures; under CI=true "8.0;9.0+PTX" to keep the nvcc build short,
#                          elsewhere setup.py's broader default
#   MAX_JOBS               parallel compile jobs (2)
#   VID2VID_FAST_CPU_ONLY  1 builds the CPU kernels only (scripts/demo.sh sets it when nvidia-smi sees no GPU; an
#                          existing build that also has the CUDA kernels is kept)
#   VID2VID_FAST_CPU_ISAS  all (the default): the AVX2 and AVX-512 builds of the CPU kernels; native: only the one
#                          this machine runs best (scripts/demo.sh sets it; an existing build of all is kept)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
REQUIREMENTS=(
  "setuptools>=64" wheel ninja pybind11 numpy        # building the extension
  "torch==2.14.1" "torchvision==0.29.1" pyyaml         # torchvision: RAFT flow and the VGG19 layout
  pytest pytest-benchmark matplotlib                 # tests, benchmarks and their charts
  "av==18.1.0" pillow scikit-video tqdm nvidia-dali-cuda130  # video data path
  # face and pose labels: mediapipe 0.10.14 ships its models in the wheel and needs opencv-contrib-python,
  # which is the environment's only OpenCV (with opencv-python-headless too, both would write cv2/)
  "mediapipe==0.10.14" opencv-contrib-python
)

if [ ! -x "$VENV/bin/python" ]; then
  echo "==> creating $VENV"
  "${PYTHON:-python3}" -m venv "$VENV"
fi

# The stamp holds the requirement list that was last installed completely.
stamp="$VENV/.installed-requirements"
wanted=$(printf '%s\n' "${REQUIREMENTS[@]}")
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
  echo "==> installing dependencies (the first time: a few minutes, torch and DALI are large)"
  # one OpenCV: an environment made before the face and pose labels has opencv-python-headless, and the
  # contrib build mediapipe needs would be written over its cv2/; both go, the contrib build comes back
  if "$VENV/bin/python" -m pip show --quiet opencv-python-headless 2> /dev/null; then
    "$VENV/bin/python" -m pip uninstall --quiet -y opencv-python-headless opencv-contrib-python
  fi
  # --no-compile: Python compiles the modules a run imports when it first imports them; byte-compiling all of
  # torch's at install took 16-27 s of a 113-140 s install on a 2-core VM (2026-12-02)
  "$VENV/bin/python" -m pip install --quiet --no-compile "${REQUIREMENTS[@]}"
  printf '%s\n' "$wanted" > "$stamp"
else
  echo "==> dependencies already installed"
fi

if [ -z "${CUDA_HOME:-}" ] && [ -x /usr/local/cuda/bin/nvcc ]; then
  export CUDA_HOME=/usr/local/cuda
fi
if [ "${CI:-}" = "true" ]; then
  export TORCH_CUDA_ARCH_LIST="${TORCH_CUDA_ARCH_LIST:-8.0;9.0+PTX}"
fi
export MAX_JOBS="${MAX_JOBS:-2}"

# Ask torch which toolkit setup.py will see, so that the progress line says what is being built.
toolkit=$("$VENV/bin/python" -c 'from torch.utils.cpp_extension import CUDA_HOME; print(CUDA_HOME or "")' 2>/dev/null)
with_cuda=""
if [ -n "$toolkit" ] && [ -x "$toolkit/bin/nvcc" ]; then
  with_cuda="CPU + CUDA, toolkit $toolkit, architectures ${TORCH_CUDA_ARCH_LIST:-setup.py default}"
fi
if [ "${VID2VID_FAST_CPU_ONLY:-0}" = "1" ]; then
  what="CPU only: VID2VID_FAST_CPU_ONLY=1"
elif [ -n "$with_cuda" ]; then
  what="$with_cuda"
else
  what="CPU only: no CUDA toolkit found, set CUDA_HOME to add the CUDA kernels"
fi
isas="${VID2VID_FAST_CPU_ISAS:-all}"
# The stamp holds a hash of everything a build depends on, written after a successful build.
build_stamp="$VENV/.built-extension"
build_inputs() {  # $1: what is built, $2: its x86 builds of the CPU kernels
  {
    printf '%s\n' "$wanted" "$1" "$2" "${TORCH_CUDA_ARCH_LIST:-}" "${VID2VID_FAST_DEBUG_INFO:-}"
    find csrc setup.py pyproject.toml vid2vid_fast/ops/build_flags.py -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum
  } | sha256sum
}
built=$(cat "$build_stamp" 2> /dev/null || true)
up_to_date=0
if compgen -G "vid2vid_fast/_C*.so" > /dev/null; then
  if [ "$built" = "$(build_inputs "$what" "$isas")" ]; then
    up_to_date=1
  elif [ "$isas" = native ] && [ "$built" = "$(build_inputs "$what" all)" ]; then
    what="$what (built before with every x86 build of the CPU kernels)"  # it holds the native one
    up_to_date=1
  elif [ "${VID2VID_FAST_CPU_ONLY:-0}" = "1" ] && [ -n "$with_cuda" ] && [ "$built" = "$(build_inputs "$with_cuda" all)" ]; then
    # the build there has the CUDA kernels too (scripts/test.sh made it) and so serves a CPU-only request:
    # the demo after the tests does not rebuild
    what="$with_cuda (built before; it holds the CPU kernels)"
    up_to_date=1
  fi
fi
if [ "$up_to_date" = 1 ]; then
  echo "==> extension up to date ($what)"
else
  echo "==> building the extension ($what; x86 builds of the CPU kernels: $isas)"
  VID2VID_FAST_CPU_ISAS="$isas" "$VENV/bin/python" -m pip install --quiet --no-build-isolation --no-deps -e .
  build_inputs "$what" "$isas" > "$build_stamp"
fi
echo "==> ready: $VENV"
