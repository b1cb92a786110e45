"""CUDA-only behaviour: deterministic mode, 64-bit offsets, streams. Skipped without a GPU."""

import pytest
import torch
from cases import (
    OPS,
    assert_close_to_reference,
    check_64bit_offsets,
    converging_inputs,
    deterministic_mode,
    make_flow,
    rel_error,
    run_with_grads,
)

import vid2vid_fast as v2v
from vid2vid_fast.ops import reference

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available() or "cuda" not in v2v.available_backends("cuda"),
                       reason="needs a GPU and the extension's CUDA kernels"),
]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("op", OPS)
def test_cuda_backward_is_bit_identical_in_deterministic_mode(op, dtype, layout):
    _, fn, _ = OPS[op]
    torch.manual_seed(11)
    inputs = converging_inputs(op, (2, 5, 64, 96), dtype, "cuda", layout)
    with deterministic_mode():
        first_out, first = run_with_grads(fn, inputs, "border", backend="cuda")
        second_out, second = run_with_grads(fn, inputs, "border", backend="cuda")
    # Compare bits, so that NaN equals NaN and -0 differs from +0.
    bits = torch.int16 if dtype == torch.bfloat16 else torch.int32
    assert torch.equal(first_out.view(bits), second_out.view(bits))
    for g1, g2 in zip(first, second):
        assert g1.dtype == g2.dtype == dtype
        assert torch.equal(g1.view(bits), g2.view(bits))
    # The deterministic path changes only the order of the additions: the atomic path's result to the
    # rounding of sums of thousands of terms (looser than one op's rounding), NaN in the same places.
    _, atomic = run_with_grads(fn, inputs, "border", backend="cuda")
    for g, ga in zip(first, atomic):
        error = rel_error(g, ga)
        assert error <= (1e-4 if dtype == torch.float32 else 2e-2), f"deterministic vs atomic: {error:.3g}"


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
@pytest.mark.parametrize("op", OPS)
def test_cuda_deterministic_backward_matches_reference(op, padding_mode):
    make_inputs, fn, ref = OPS[op]
    torch.manual_seed(12)
    inputs = make_inputs((2, 3, 33, 47), torch.float32, "cuda", "strided")
    with deterministic_mode():
        out, grads = run_with_grads(fn, inputs, padding_mode, backend="cuda")
    ref_out, ref_grads = run_with_grads(ref, [t.double() for t in inputs], padding_mode, grad_dtype=torch.float32)
    assert_close_to_reference(out, ref_out, torch.float32, f"{op} output")
    for g, rg in zip(grads, ref_grads):
        assert_close_to_reference(g, rg, torch.float32, f"{op} gradient")


@pytest.mark.parametrize("op", OPS)
def test_cuda_matches_cpu_kernels(op):
    """Same arithmetic (warp_math.h) on both devices: agreement to float32 rounding."""
    make_inputs, fn, _ = OPS[op]
    torch.manual_seed(9)
    inputs = make_inputs((2, 5, 33, 47), torch.float32, "cpu", "contiguous")
    cpu_out, cpu_grads = run_with_grads(fn, inputs, "zeros", backend="cpu")
    cuda_out, cuda_grads = run_with_grads(fn, [t.cuda() for t in inputs], "zeros", backend="cuda")
    assert_close_to_reference(cuda_out, cpu_out, torch.float32, "output")
    for g, cg in zip(cuda_grads, cpu_grads):
        assert_close_to_reference(g, cg, torch.float32, "gradient")


def test_runs_on_the_current_stream():
    img = torch.rand(2, 3, 64, 64, device="cuda")
    flow = make_flow(2, 64, 64, device="cuda")
    side = torch.cuda.Stream()
    with torch.cuda.stream(side):
        out = v2v.flow_warp(img, flow, backend="cuda")
    side.synchronize()
    assert torch.allclose(out, reference.flow_warp(img, flow), atol=1e-5)


@pytest.mark.slow
def test_64bit_offsets():
    check_64bit_offsets("cuda")
