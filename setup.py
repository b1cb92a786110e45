"""Builds the compiled extension vid2vid_fast._C: CPU kernels always, CUDA kernels when a toolkit is found.

Environment:
  CUDA_HOME                 CUDA toolkit to use (default: what torch finds).
  TORCH_CUDA_ARCH_LIST      GPU architectures (default below: no GPU is visible at build time here).
  VID2VID_FAST_CPU_ONLY=1   build the CPU kernels only, even with a toolkit.
  MAX_JOBS                  parallel compile jobs (ninja).
  VID2VID_FAST_DEBUG_INFO=1 compile the C++ with debug information (-g; the default is -g0).
  VID2VID_FAST_CPU_ISAS     "all" (default): the AVX2 and AVX-512 builds of the CPU kernels; "native": only
                            the one this machine runs best (scripts/demo.sh's quicker build).
"""

import glob
import importlib.util
import os

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

DEFAULT_CUDA_ARCHS = "7.5;8.0;8.6;8.9;9.0+PTX"


def x86_builds():
    """The instruction-set builds of the CPU kernels besides the baseline one: both (the library then runs at
    full speed on any x86-64 processor), or with VID2VID_FAST_CPU_ISAS=native only the one this machine runs
    best (a build for the machine itself: each build is minutes of compilation)."""
    wanted = os.environ.get("VID2VID_FAST_CPU_ISAS", "all")
    if wanted == "all":
        return {"avx2", "avx512"}
    if wanted != "native":
        raise SystemExit(f"VID2VID_FAST_CPU_ISAS must be 'all' or 'native', got {wanted!r}")
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            flags = next((line.split(":", 1)[1].split() for line in cpuinfo if line.startswith("flags")), [])
    except OSError:  # not Linux: all of them
        return {"avx2", "avx512"}
    # the features register_cpu.cpp checks before it runs each build
    if {"avx2", "fma", "avx512f", "avx512vl", "avx512bw", "avx512dq"} <= set(flags):
        return {"avx512"}
    return {"avx2"} if {"avx2", "fma"} <= set(flags) else set()


def build_flags():
    """vid2vid_fast/ops/build_flags.py, loaded by its path: the package itself imports torch and the extension."""
    path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vid2vid_fast", "ops", "build_flags.py")
    spec = importlib.util.spec_from_file_location("build_flags", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def extension():
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    flags = build_flags()
    cxx_flags = flags.cxx_flags()
    for isa in {"avx2", "avx512"} - x86_builds():
        sources.remove(f"csrc/cpu/kernels_{isa}.cpp")
        cxx_flags.append(f"-DV2V_CPU_SKIP_{isa.upper()}")
    link_flags = flags.LINK_FLAGS
    with_cuda = CUDA_HOME is not None and os.environ.get("VID2VID_FAST_CPU_ONLY", "0") != "1"
    if not with_cuda:
        return CppExtension(
            "vid2vid_fast._C", sources, extra_compile_args={"cxx": cxx_flags}, extra_link_args=link_flags
        )
    os.environ.setdefault("TORCH_CUDA_ARCH_LIST", DEFAULT_CUDA_ARCHS)
    sources += sorted(glob.glob("csrc/cuda/*.cu"))
    return CUDAExtension(
        "vid2vid_fast._C",
        sources,
        extra_compile_args={"cxx": cxx_flags, "nvcc": flags.NVCC_FLAGS},
        extra_link_args=link_flags,
    )


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExtension})
