"""The compiler flags of the extension's C++ sources, in one place for the two builds that compile them with
torch's tools: setup.py (which loads this file by its path, before the package can be imported) and the JIT
build of the ops (backends.py). CMakeLists.txt, for CMake's compilers, repeats the ones that matter for speed.

Kept free of imports from the package and of torch."""

import os
import subprocess


def compiler_is_gcc():
    """Whether the C++ compiler (CXX, else c++, which torch's builds use) is GCC."""
    try:
        version = subprocess.run([os.environ.get("CXX", "c++"), "--version"], capture_output=True, text=True).stdout
    except OSError:
        return False
    return "Free Software Foundation" in version and "clang" not in version


def cxx_flags():
    """The C++ flags (VID2VID_FAST_DEBUG_INFO=1 keeps debug information)."""
    # -fno-trapping-math lets the compiler vectorize the branch-free sampling math (warp_math.h).
    # -fstrict-aliasing undoes Python's -fno-strict-aliasing, under which every float store in a kernel
    # loop forces the reload of every pointer and index around it.
    # -fopenmp: at::parallel_for is an OpenMP pragma inlined from torch's headers; without the flag the
    # CPU kernels silently run on one thread. The library links the libgomp torch has already loaded.
    flags = ["-O3", "-fno-trapping-math", "-fstrict-aliasing", "-fopenmp"]
    # -g0 undoes Python's -g: debug information for the kernels' many template instances costs a fifth of
    # their compile time (kernels_avx512.cpp: 245 s against 199 s, side by side on a 2-core VM) and 25 MB
    # per translation unit. VID2VID_FAST_DEBUG_INFO=1 keeps it, for gdb or perf.
    if os.environ.get("VID2VID_FAST_DEBUG_INFO", "0") != "1":
        flags.append("-g0")
    # GCC gives each vectorized loop a second, narrower vector loop for its remainder. The kernels' loops run
    # over tiles of 128 pixels (a multiple of every vector width), so those loops almost never run, yet they
    # were a third of the kernels' code and compile time (kernels_avx512.cpp: 87 s against 51 s, 4.6 MB
    # against 3.1 MB of code, on a 2-core AMD EPYC Zen 5 VM with AVX-512; ops_table's speedups unchanged).
    if compiler_is_gcc():
        flags.append("--param=vect-epilogues-nomask=0")
    return flags


LINK_FLAGS = ["-fopenmp"]
NVCC_FLAGS = ["-O3", "-lineinfo"]
