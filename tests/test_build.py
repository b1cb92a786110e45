"""The other ways of building the extension: CMake (CPU-only, and with CUDA where nvcc is found), the JIT build
of a source checkout, and an AddressSanitizer build of the CPU kernels run on hostile inputs. Each build goes to a temporary folder and is
checked in a fresh interpreter (tests/build_checks/), so the extension this test process loaded is untouched."""

import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
CHECKS = Path(__file__).resolve().parent / "build_checks"
JOBS = str(os.cpu_count() or 1)


def cuda_home():
    """The CUDA toolkit to build with, or None. Not torch's guess: the nvcc on PATH may be a wrapper script."""
    home = os.environ.get("CUDA_HOME", "/usr/local/cuda")
    return home if Path(home, "bin", "nvcc").is_file() else None


def run(command, env=None, timeout=900, cwd=None):
    """Runs command (an argument list); on failure, fails the test with its output."""
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=timeout, cwd=cwd)
    if result.returncode != 0:
        pytest.fail(
            f"{command[0]} exited with {result.returncode}\n--- stdout\n{result.stdout[-6000:]}\n"
            f"--- stderr\n{result.stderr[-6000:]}",
            pytrace=False,
        )
    return result


@pytest.mark.parametrize("with_cuda", [False, True], ids=["cpu_only", "with_cuda"])
def test_cmake_build_loads_through_VID2VID_FAST_LIBRARY(with_cuda, tmp_path):
    if shutil.which("cmake") is None:
        pytest.skip("cmake is not installed")
    env = dict(os.environ)
    home = cuda_home()
    if home is not None:
        env["CUDA_HOME"] = home  # torch's CMake config looks for the toolkit even for our CPU-only build
    configure = [
        "cmake", "-S", str(REPO), "-B", str(tmp_path),
        f"-DCMAKE_PREFIX_PATH={torch.utils.cmake_prefix_path}",
        f"-DPython3_EXECUTABLE={sys.executable}",
    ]
    if with_cuda:
        if home is None or torch.version.cuda is None:
            pytest.skip("needs nvcc (CUDA_HOME or /usr/local/cuda) and a CUDA build of torch")
        configure.append(f"-DCMAKE_CUDA_COMPILER={home}/bin/nvcc")
        # One architecture is enough to check that the CUDA build works; setup.py covers the others.
        env.setdefault("TORCH_CUDA_ARCH_LIST", "8.0+PTX")
    else:
        configure.append("-DVID2VID_FAST_CUDA=OFF")
    run(configure, env)
    run(["cmake", "--build", str(tmp_path), "-j", JOBS], env)

    libraries = sorted(tmp_path.glob("_C*.so"))
    assert len(libraries) == 1, f"expected one _C*.so in {tmp_path}, found {libraries}"
    library = str(libraries[0])
    check = [sys.executable, str(CHECKS / "check_library.py"), library] + (["--with-cuda"] if with_cuda else [])
    result = run(check, dict(os.environ, VID2VID_FAST_LIBRARY=library))
    assert result.stdout.count("matches the reference") == (6 if with_cuda and torch.cuda.is_available() else 3)


def asan_environment():
    """The environment that runs asan_ops.py under AddressSanitizer (or skips the test without one)."""
    compiler = os.environ.get("CXX", "c++")
    if shutil.which(compiler) is None:
        pytest.skip(f"no C++ compiler ({compiler})")
    libasan, libstdcxx = (
        subprocess.run([compiler, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
        for name in ("libasan.so", "libstdc++.so")
    )
    if not os.path.isabs(libasan):
        pytest.skip(f"{compiler} has no AddressSanitizer runtime (libasan.so)")
    # The ASan runtime must come first. libstdc++ is preloaded too because python does not link it, and ASan's
    # __cxa_throw interceptor must find it at startup, or the first C++ exception (torch throws and catches
    # some) stops the process.
    env = dict(
        os.environ,
        LD_PRELOAD=f"{libasan} {libstdcxx}",
        ASAN_OPTIONS="detect_leaks=0:abort_on_error=1",
        MAX_JOBS=JOBS,
    )
    env.pop("VID2VID_FAST_LIBRARY", None)
    return env


def run_asan_ops(build_dir, env, *options):
    result = subprocess.run(
        [sys.executable, str(CHECKS / "asan_ops.py"), str(build_dir), *options],
        env=env, capture_output=True, text=True, timeout=1800,
    )
    report = f"--- {options}\n--- stdout\n{result.stdout[-4000:]}\n--- stderr\n{result.stderr[-12000:]}"
    assert "AddressSanitizer" not in result.stderr, report
    assert result.returncode == 0, report
    assert result.stdout.strip().splitlines()[-1].startswith("ok: "), report


def test_cpu_kernels_under_address_sanitizer(tmp_path):
    env = asan_environment()
    # Every build of the CPU kernels (kernels.h) this processor can run; later runs reuse the first one's
    # build folder.
    for isa in ("avx512", "avx2", "baseline"):
        run_asan_ops(tmp_path, dict(env, VID2VID_FAST_CPU_ISA=isa))


@pytest.mark.cuda_emulated
def test_emulated_cuda_kernels_under_address_sanitizer(tmp_path):
    """The CUDA kernels' code, run on the CPU by the emulation (cuda_emulated.py), on the same hostile inputs."""
    run_asan_ops(tmp_path, asan_environment(), "--cuda-emulated")


def test_jit_build_when_the_extension_is_not_installed(tmp_path):
    """A source checkout without a built vid2vid_fast._C compiles csrc/ at import (torch.utils.cpp_extension)."""
    for name in ("vid2vid_fast", "csrc"):
        shutil.copytree(REPO / name, tmp_path / name, ignore=shutil.ignore_patterns("_C*.so", "__pycache__"))
    script = (
        "import torch, vid2vid_fast\n"
        "from vid2vid_fast.ops import backends\n"
        "print(backends.EXTENSION_SOURCE)\n"
        "img, flow = torch.rand(1, 3, 8, 9, dtype=torch.float64), torch.randn(1, 2, 8, 9, dtype=torch.float64)\n"
        "diff = vid2vid_fast.flow_warp(img, flow, backend='cpu') - vid2vid_fast.flow_warp(img, flow, backend='reference')\n"
        "print(float(diff.abs().max()))\n"
    )
    # -S: no site hooks, so an editable install of this checkout cannot supply its built _C; the copy and
    # the environment's packages come from PYTHONPATH instead (and the working directory is the copy's).
    packages = sysconfig.get_paths()["purelib"]
    env = dict(os.environ, PYTHONPATH=f"{tmp_path}{os.pathsep}{packages}", TORCH_EXTENSIONS_DIR=str(tmp_path / "ext"))
    for name in ("VID2VID_FAST_LIBRARY", "VID2VID_FAST_NO_EXTENSION", "VID2VID_FAST_NO_JIT"):
        env.pop(name, None)
    result = run([sys.executable, "-S", "-c", script], env, cwd=tmp_path)
    source, diff = result.stdout.strip().splitlines()[-2:]
    assert source == "a JIT build of csrc/"
    assert float(diff) < 1e-12
