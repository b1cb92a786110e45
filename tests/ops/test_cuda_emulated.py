"""What only the emulation of the CUDA kernels on the CPU (tests/build_checks/cuda_emulated.py) can show:
every thread of a launch runs, thread order does not change a deterministic result (and does change the
atomic one, so the shuffle has teeth), the 64-bit offset path (forced on small tensors), barriers. The op
matrix itself runs against the emulation through the "cuda_emulated" backend of test_ops_vs_reference.py,
test_flow_warp.py and the others."""

import cuda_emulated
import pytest
import torch
from cases import (
    COMPILER_FOUND,
    CUDA_EMULATED,
    OPS,
    PADDING_MODES,
    Sampling,
    assert_close_to_reference,
    converging_inputs,
    deterministic_mode,
    rel_error,
    run_with_grads,
)
from test_ops_vs_reference import SHAPES, check_op

pytestmark = [pytest.mark.cuda_emulated, pytest.mark.skipif(not COMPILER_FOUND, reason="no C++ compiler")]


@pytest.fixture
def emulation():
    """The emulated ops, with the test hooks back at their defaults afterwards."""
    ops = cuda_emulated.load()
    yield ops
    ops.emulation_force_64bit_offsets(False)
    ops.emulation_honour_barriers(True)
    ops.emulation_seed(0)


def bits(t):
    """The tensor's bits, so that NaN equals NaN and -0 differs from +0."""
    return t.view({torch.float64: torch.int64, torch.float32: torch.int32}.get(t.dtype, torch.int16))


def test_every_thread_of_the_launch_runs(emulation):
    """One launch of ceil(pixels / 256) blocks of 256 threads, each thread once."""
    launches, threads = emulation.emulation_counts()
    img, flow = torch.rand(2, 3, 17, 23), torch.randn(2, 2, 17, 23)
    emulation.flow_warp(img, flow, "border", "bilinear", True)
    assert emulation.emulation_counts() == [launches + 1, threads + 4 * 256]  # 782 pixels


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_deterministic_backward_is_bit_identical_across_runs_and_thread_orders(emulation, op, dtype, layout):
    """Thousands of contributions land on a few pixels. In deterministic mode the gradients are bit-identical
    across runs and across thread orders; the atomic path's (the default's) change with the order, by rounding."""
    _, fn, _ = OPS[op]
    torch.manual_seed(11)
    inputs = converging_inputs(op, (2, 5, 24, 40), dtype, "cpu", layout)
    results = []
    with deterministic_mode():
        for seed in (1, 1, 2):  # two runs in one thread order, then another order
            emulation.emulation_seed(seed)
            results.append(run_with_grads(fn, inputs, "border", backend=CUDA_EMULATED))
    (first_out, first), others = results[0], results[1:]
    for out, grads in others:
        assert torch.equal(bits(out), bits(first_out))
        for g, g0 in zip(grads, first):
            assert g.dtype == g0.dtype == dtype
            assert torch.equal(bits(g), bits(g0))
    atomic = []
    for seed in (1, 2):
        emulation.emulation_seed(seed)
        atomic.append(run_with_grads(fn, inputs, "border", backend=CUDA_EMULATED)[1])
    for g, g1, g2 in zip(first, *atomic):
        for ga in (g1, g2):
            error = rel_error(g, ga)
            assert error <= (1e-4 if dtype == torch.float32 else 2e-2), f"deterministic vs atomic: {error:.3g}"
    if dtype == torch.float32:
        assert not torch.equal(bits(atomic[0][0]), bits(atomic[1][0])), "the thread order changed no atomic sum"


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
def test_64bit_offset_path(emulation, op, dtype, padding_mode, layout):
    """The kernels' int64 instantiations, forced on small tensors (on a GPU they run from 2^31 elements)."""
    emulation.emulation_force_64bit_offsets(True)
    check_op(op, CUDA_EMULATED, (2, 3, 17, 23), dtype, layout, padding_mode, seed=8)
    check_op(op, CUDA_EMULATED, SHAPES[1], dtype, layout, padding_mode, seed=9)


@pytest.mark.parametrize("op", OPS)
def test_64bit_offset_path_without_deterministic_mode(emulation, op):
    emulation.emulation_force_64bit_offsets(True)
    check_op(op, CUDA_EMULATED, (2, 3, 17, 23), torch.float32, "channels_last", Sampling("zeros", "nearest", False),
             seed=10)


def test_a_missing_barrier_is_caught(emulation):
    """masked_warp_l1's forward sums each block through shared memory between __syncthreads(). With the
    barriers ignored (as if the kernel had none) a thread reads partial sums before they are written, and the
    loss no longer matches the reference: the tests would catch a missing barrier."""
    make_inputs, fn, ref = OPS["masked_warp_l1"]
    torch.manual_seed(3)
    inputs = make_inputs((2, 3, 40, 50), torch.float64, "cpu", "contiguous")
    expected = ref(*inputs, "border")
    assert_close_to_reference(fn(*inputs, "border", backend=CUDA_EMULATED), expected, torch.float64, "loss")
    emulation.emulation_honour_barriers(False)
    assert rel_error(fn(*inputs, "border", backend=CUDA_EMULATED), expected) > 1e-3
