"""Builds the compiled extension vid2vid_fast._C: CPU kernels always, CUDA kernels when a toolkit is found.

Environment:
  CUDA_HOME                 CUDA toolkit to use (default: what torch finds).
  TORCH_CUDA_ARCH_LIST      GPU architectures (default below: no GPU is visible at build time here).
  VID2VID_FAST_CPU_ONLY=1   build the CPU kernels only, even with a toolkit.
  MAX_JOBS                  parallel compile jobs (ninja).
"""

import glob
import os

from setuptools import setup
from torch.utils.cpp_extension import CUDA_HOME, BuildExtension, CppExtension, CUDAExtension

DEFAULT_CUDA_ARCHS = "7.5;8.0;8.6;8.9;9.0+PTX"


def extension():
    sources = sorted(glob.glob("csrc/*.cpp") + glob.glob("csrc/cpu/*.cpp"))
    # -fno-trapping-math lets the compiler vectorize the branch-free sampling math (warp_math.h).
    # -fstrict-aliasing undoes Python's -fno-strict-aliasing, under which every float store in a kernel
    # loop forces the reload of every pointer and index around it.
    # -fopenmp: at::parallel_for is an OpenMP pragma inlined from torch's headers; without the flag the
    # CPU kernels silently run on one thread. The library links the libgomp torch has already loaded.
    cxx_flags = ["-O3", "-fno-trapping-math", "-fstrict-aliasing", "-fopenmp"]
    link_flags = ["-fopenmp"]
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
        extra_compile_args={"cxx": cxx_flags, "nvcc": ["-O3", "-lineinfo"]},
        extra_link_args=link_flags,
    )


setup(ext_modules=[extension()], cmdclass={"build_ext": BuildExtension})
