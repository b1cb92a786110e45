"""CUDA-only behaviour: deterministic mode, 64-bit offsets, streams. Skipped without a GPU."""

import pytest
import torch

import vid2vid_fast as v2v
from cases import OPS, assert_close_to_reference, make_flow, run_with_grads
from vid2vid_fast.ops import reference

pytestmark = [
    pytest.mark.cuda,
    pytest.mark.skipif(not torch.cuda.is_available() or "cuda" not in v2v.available_backends("cuda"),
                       reason="needs a GPU and the extension's CUDA kernels"),
]


@pytest.mark.parametrize("op", OPS)
def test_cuda_backward_refuses_deterministic_mode(op):
    make_inputs, fn, _ = OPS[op]
    inputs = [t.requires_grad_(True) for t in make_inputs((1, 3, 8, 8), torch.float32, "cuda", "contiguous")]
    out = fn(*inputs, "border", backend="cuda")
    torch.use_deterministic_algorithms(True)
    try:
        with pytest.raises(RuntimeError, match="does not have a deterministic implementation"):
            out.sum().backward()
    finally:
        torch.use_deterministic_algorithms(False)


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
    """numel >= 2^31: the kernels switch to 64-bit offsets (fp16, about 4.3 GB per image)."""
    free, _ = torch.cuda.mem_get_info()
    if free < 24 * 2**30:
        pytest.skip("needs about 24 GB of free GPU memory")
    b, c, h, w = 1, 2, 32768, 32769  # 2 * 32768 * 32769 > 2^31
    img = torch.rand(b, c, h, w, device="cuda", dtype=torch.float16)
    flow = torch.full((b, 2, h, w), 0.5, device="cuda", dtype=torch.float16)
    out = v2v.flow_warp(img, flow, "zeros", backend="cuda")
    # Spot-check the far corner, which only a 64-bit offset reaches.
    tail = (slice(None), slice(None), slice(h - 3, h), slice(w - 3, w))
    expected = reference.flow_warp(img[:, :, h - 4 :, w - 4 :].float(), flow[:, :, h - 4 :, w - 4 :].float(), "zeros")
    assert torch.allclose(out[tail].float(), expected[:, :, 1:, 1:], atol=1e-3)
