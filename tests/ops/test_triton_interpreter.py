"""Runs the Triton tests (test_triton_ops.py) under Triton's interpreter, on CPU tensors, in a subprocess:
the interpreter must be chosen before any kernel is compiled, and must not leak into the rest of the suite.
Also: the triton backend's errors in an ordinary process."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import vid2vid_fast as v2v
from vid2vid_fast.ops.backends import TRITON_IMPORTABLE, TRITON_INTERPRETED

pytestmark = pytest.mark.skipif(not TRITON_IMPORTABLE, reason="triton is not installed")

HERE = Path(__file__).resolve().parent


@pytest.mark.skipif(TRITON_INTERPRETED, reason="this process already runs under the interpreter")
def test_triton_kernels_under_the_interpreter():
    env = dict(os.environ, TRITON_INTERPRET="1")
    result = subprocess.run(
        [sys.executable, "-m", "pytest", str(HERE / "test_triton_ops.py"), "-q", "-p", "no:cacheprovider",
         "-m", "not slow"],  # the slow tests need a GPU's memory
        cwd=HERE.parents[1], env=env, capture_output=True, text=True, timeout=1200,
    )
    summary = result.stdout.strip().splitlines()[-1] if result.stdout.strip() else ""
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-3000:]
    # Every selected test ran: a skip here would mean the interpreter silently did not run the kernels.
    assert re.search(r"\d+ passed", summary) and "skipped" not in summary, summary


@pytest.mark.skipif(TRITON_INTERPRETED, reason="under the interpreter CPU tensors are accepted")
def test_cpu_tensors_need_the_interpreter():
    img, flow = torch.rand(1, 3, 4, 5), torch.rand(1, 2, 4, 5)
    with pytest.raises(ValueError, match="backend='triton' needs CUDA tensors"):
        v2v.flow_warp(img, flow, backend="triton")
    assert "triton" not in v2v.available_backends("cpu")


def test_unknown_backend_lists_triton():
    with pytest.raises(ValueError, match="'triton'"):
        v2v.flow_warp(torch.rand(1, 3, 4, 5), torch.rand(1, 2, 4, 5), backend="tritn")
