"""Which implementation runs an op: loading the compiled extension and choosing a backend.

Backends: "reference" (pure PyTorch, grid_sample based), "cpu" and "cuda" (the compiled extension
vid2vid_fast._C), "triton" (Triton kernels, CUDA tensors; CPU tensors too under TRITON_INTERPRET=1, for
tests). "auto" picks the extension's kernel for CPU tensors; for CUDA tensors triton or cuda per op, dtype
and size, from the measured table of dispatch.py; the reference where nothing compiled can run.
"""

import importlib
import importlib.util
import logging
import os
import shutil
import warnings
from pathlib import Path

import torch

from . import build_flags, dispatch

log = logging.getLogger("vid2vid_fast")

BACKENDS = ("auto", "reference", "cpu", "cuda", "triton")

_SOURCE_DIR = Path(__file__).resolve().parents[2] / "csrc"


def _jit_build():
    """Compiles the extension from a source checkout with torch.utils.cpp_extension.load (cached by torch)."""
    from torch.utils import cpp_extension

    sources = sorted(str(p) for p in [*_SOURCE_DIR.glob("*.cpp"), *_SOURCE_DIR.glob("cpu/*.cpp")])
    with_cuda = torch.cuda.is_available() and cpp_extension.CUDA_HOME is not None
    if with_cuda:
        sources += sorted(str(p) for p in _SOURCE_DIR.glob("cuda/*.cu"))
    log.warning("vid2vid_fast: compiling the extension (%s) once; this takes a minute or two",
                "CPU + CUDA" if with_cuda else "CPU")
    cpp_extension.load(
        name="vid2vid_fast_C",
        sources=sources,
        extra_cflags=build_flags.cxx_flags(),
        extra_ldflags=build_flags.LINK_FLAGS,
        extra_cuda_cflags=build_flags.NVCC_FLAGS,
        is_python_module=False,
        verbose=False,
    )


def _load_extension():
    """Returns (loaded, reason). Tries VID2VID_FAST_LIBRARY (a library built with CMake) when it is set, else
    the installed vid2vid_fast._C, then a JIT build from the source tree; VID2VID_FAST_NO_EXTENSION=1
    skips all of them."""
    if os.environ.get("VID2VID_FAST_NO_EXTENSION", "0") == "1":
        return False, "VID2VID_FAST_NO_EXTENSION=1 is set"
    library = os.environ.get("VID2VID_FAST_LIBRARY")
    if library:
        torch.ops.load_library(library)
        return True, f"the library VID2VID_FAST_LIBRARY={library}"
    try:
        importlib.import_module("vid2vid_fast._C")
        return True, "the installed extension vid2vid_fast._C"
    except ImportError as e:
        missing = str(e)
    if os.environ.get("VID2VID_FAST_NO_JIT", "0") == "1":
        return False, f"vid2vid_fast._C is not built ({missing}) and VID2VID_FAST_NO_JIT=1 is set"
    if not _SOURCE_DIR.is_dir():
        return False, f"vid2vid_fast._C is not built ({missing}) and no csrc/ sources are next to the package"
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        return False, f"vid2vid_fast._C is not built ({missing}) and no C++ compiler ({compiler}) was found"
    try:
        _jit_build()
    except Exception as e:  # a failed build must not make the package unusable: fall back, and say why
        return False, f"vid2vid_fast._C is not built and the JIT build failed: {e}"
    return True, "a JIT build of csrc/"


EXTENSION_LOADED, EXTENSION_SOURCE = _load_extension()
if EXTENSION_LOADED:
    log.info("vid2vid_fast: using %s", EXTENSION_SOURCE)
else:
    warnings.warn(
        f"vid2vid_fast: the compiled kernels are unavailable, so every op uses the pure PyTorch reference "
        f"backend (slower). Why: {EXTENSION_SOURCE}. Build them with `pip install --no-build-isolation .`.",
        RuntimeWarning,
        stacklevel=2,
    )


# Which devices the loaded extension has kernels for; a constant, so torch.compile traces through it.
EXTENSION_DEVICES = frozenset(
    device_type
    for device_type, dispatch_key in (("cpu", "CPU"), ("cuda", "CUDA"))
    if EXTENSION_LOADED
    and torch._C._dispatch_has_kernel_for_dispatch_key("vid2vid_fast::flow_warp", dispatch_key)
)


def _extension_has(device_type):
    return device_type in EXTENSION_DEVICES


# Constants, so torch.compile traces through the backend choice. The interpreter must be chosen before
# triton compiles anything, so it is read once, at import.
TRITON_IMPORTABLE = importlib.util.find_spec("triton") is not None
TRITON_INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"


def _triton_runs_on(device_type):
    return TRITON_IMPORTABLE and (device_type == "cuda" or (device_type == "cpu" and TRITON_INTERPRETED))


def available_backends(device="cpu"):
    """The backends that can run on `device` (a torch.device or string), fastest first. (Triton's
    interpreter also runs backend="triton" on CPU tensors, but far too slowly to be listed here.)"""
    device_type = torch.device(device).type
    names = [device_type] if device_type in ("cpu", "cuda") and _extension_has(device_type) else []
    if device_type == "cuda" and _triton_runs_on("cuda"):
        names.append("triton")
    return names + ["reference"]


def resolve_backend(backend, op, img):
    """The backend that runs `op` on the image tensor `img` (img, prev or src): the one asked for, checked,
    or with "auto" the fastest available. On CUDA tensors "auto" picks triton or cuda per op, dtype and
    size from the measured table of dispatch.py."""
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    device = img.device
    if backend == "auto":
        if device.type == "cuda":
            return dispatch.pick_gpu_backend(op, img.dtype, img.numel(), available_backends(device))
        return available_backends(device)[0]
    if backend in ("cpu", "cuda"):
        if device.type != backend:
            raise ValueError(f"backend={backend!r} needs {backend} tensors, got tensors on {device}")
        if not _extension_has(backend):
            why = EXTENSION_SOURCE if not EXTENSION_LOADED else "the extension was built without CUDA kernels"
            raise RuntimeError(f"backend={backend!r} is unavailable: {why}")
    if backend == "triton":
        if not TRITON_IMPORTABLE:
            raise RuntimeError("backend='triton' is unavailable: triton is not installed (pip install triton)")
        if not _triton_runs_on(device.type):
            raise ValueError(
                f"backend='triton' needs CUDA tensors (or CPU tensors with TRITON_INTERPRET=1 set before import), "
                f"got tensors on {device}"
            )
    return backend

if EXTENSION_LOADED:
    from . import registration

    registration.register()

if TRITON_IMPORTABLE:
    from .triton import registration as triton_registration  # noqa: F401  (defines vid2vid_fast_triton::*)
