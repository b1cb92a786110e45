"""Builds and loads the CUDA kernels emulated on the CPU: csrc/cuda/*.cu compiled by the host compiler against
csrc/cuda_emulation/shim.h, with the op schemas, autograd and autocast of csrc/*.cpp, all under the op namespace
vid2vid_fast_cuda_emulated (the flag -Dvid2vid_fast=vid2vid_fast_cuda_emulated renames it). A test library, not
part of the package: the tests marked cuda_emulated build it on first use (ninja rebuilds only what changed).

    python tests/build_checks/cuda_emulated.py [BUILD_DIR]     # builds it and prints the library's path
"""

import argparse
import os
from pathlib import Path

import torch
from torch.utils import cpp_extension

REPO = Path(__file__).resolve().parents[2]
CSRC = REPO / "csrc"
NAMESPACE = "vid2vid_fast_cuda_emulated"
# One folder per torch version: objects built against one torch's headers must not be reused with another, and
# the versions lock the folder differently (torch 2.14 leaves an advisory-lock file "lock" behind; torch 2.11 takes
# any such file for another build in progress and waits for it forever).
DEFAULT_BUILD_DIR = REPO / "build" / f"cuda_emulated-torch{torch.__version__.split('+')[0]}"
# -O1: the emulated kernels run on small test tensors, and the library builds in about a minute.
CFLAGS = ["-O1", "-g0", f"-Dvid2vid_fast={NAMESPACE}"]


def sources(csrc=CSRC):
    return sorted(str(p) for p in [*csrc.glob("*.cpp"), *csrc.glob("cuda_emulation/*.cpp")])


def build(build_dir=DEFAULT_BUILD_DIR, csrc=CSRC, extra_cflags=(), extra_ldflags=(), name="vid2vid_fast_cuda_emulated"):
    """Compiles the library into build_dir (incrementally) and returns its path."""
    build_dir = Path(build_dir)
    build_dir.mkdir(parents=True, exist_ok=True)
    return cpp_extension.load(
        name=name,
        sources=sources(csrc),
        extra_cflags=CFLAGS + list(extra_cflags),
        extra_ldflags=list(extra_ldflags),
        is_python_module=False,
        build_directory=str(build_dir),
        verbose=os.environ.get("VID2VID_FAST_BUILD_VERBOSE", "0") == "1",
    )


_loaded = None


def load(library=None):
    """torch.ops.vid2vid_fast_cuda_emulated, with the library loaded (built first unless `library` is given),
    and fake implementations registered for it as for the extension's ops."""
    global _loaded
    if _loaded is None:
        from vid2vid_fast.ops import registration

        torch.ops.load_library(library or build())
        registration.register(NAMESPACE)
        _loaded = getattr(torch.ops, NAMESPACE)
    return _loaded


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("build_dir", type=Path, nargs="?", default=DEFAULT_BUILD_DIR)
    print(build(parser.parse_args().build_dir))


if __name__ == "__main__":
    main()
