"""Backend choice and the fallback when the compiled extension is missing."""

import os
import subprocess
import sys

import pytest
import torch

import vid2vid_fast as v2v
from vid2vid_fast.ops import backends


def test_available_backends_lists_reference_last():
    names = v2v.available_backends("cpu")
    assert names[-1] == "reference"
    assert names[0] == ("cpu" if "cpu" in backends.EXTENSION_DEVICES else "reference")


def test_auto_picks_the_fastest_available():
    assert backends.resolve_backend("auto", "flow_warp", torch.zeros(1, 1, 2, 2)) == v2v.available_backends("cpu")[0]


def test_without_extension_everything_falls_back_and_says_why():
    script = (
        "import warnings, torch\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    import vid2vid_fast as v\n"
        "print(v.available_backends('cpu'))\n"
        "print([str(w.message) for w in caught if 'reference' in str(w.message)])\n"
        "img = torch.rand(1, 3, 4, 5); flow = torch.rand(1, 2, 4, 5)\n"
        "print(v.flow_warp(img, flow).shape)\n"
        "try:\n"
        "    v.flow_warp(img, flow, backend='cpu')\n"
        "except RuntimeError as e:\n"
        "    print('error:', e)\n"
    )
    env = dict(os.environ, VID2VID_FAST_NO_EXTENSION="1")
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True).stdout
    lines = out.splitlines()
    assert lines[0] == "['reference']"
    assert "VID2VID_FAST_NO_EXTENSION=1" in lines[1] and "pure PyTorch reference" in lines[1]
    assert lines[2] == "torch.Size([1, 3, 4, 5])"
    assert lines[3].startswith("error: backend='cpu' is unavailable")


@pytest.mark.parametrize("isa", ["baseline", "avx2", "avx512"])
def test_every_build_of_the_cpu_kernels_matches_the_reference(isa):
    """The CPU kernels are built for several instruction sets and the best one the processor runs is used;
    each build, forced with VID2VID_FAST_CPU_ISA, must match the float64 reference (older processors run
    the others)."""
    if "cpu" not in backends.EXTENSION_DEVICES:
        pytest.skip("the extension has no cpu kernels")
    script = (
        "import sys, torch\n"
        "sys.path[:0] = sys.argv[1:]\n"
        "from cases import OPS, run_with_grads, rel_error\n"
        "print(torch.ops.vid2vid_fast.cpu_isa())\n"
        "for name, (make_inputs, fn, ref) in OPS.items():\n"
        "    for padding_mode in ('border', 'zeros'):\n"
        "        torch.manual_seed(0)\n"
        "        inputs = make_inputs((2, 3, 37, 41), torch.float32, 'cpu', 'contiguous')\n"
        "        out, grads = run_with_grads(fn, inputs, padding_mode, backend='cpu')\n"
        "        r_out, r_grads = run_with_grads(ref, [t.double() for t in inputs], padding_mode)\n"
        "        errors = [rel_error(out, r_out)] + [rel_error(g, r) for g, r in zip(grads, r_grads)]\n"
        "        print(name, padding_mode, max(errors))\n"
    )
    env = dict(os.environ, VID2VID_FAST_CPU_ISA=isa)
    here = os.path.dirname(os.path.abspath(__file__))
    build_checks = os.path.join(os.path.dirname(here), "build_checks")  # cases.py imports cuda_emulated
    lines = subprocess.run(
        [sys.executable, "-c", script, here, build_checks], env=env, capture_output=True, text=True, check=True
    ).stdout.splitlines()
    if lines[0] != isa:
        pytest.skip(f"this processor cannot run the {isa} build (it runs {lines[0]})")
    assert len(lines) == 7
    for line in lines[1:]:
        assert float(line.split()[-1]) <= 1e-5, line
