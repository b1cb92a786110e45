"""flow_warp semantics beyond matching the reference: the convention itself, hostile flows, resample2d."""

import pytest
import torch
import torch.nn.functional as F

import vid2vid_fast as v2v
from cases import (
    ALL_SAMPLINGS,
    OPS,
    check_hostile_flows,
    PADDING_MODES,
    assert_close_to_reference,
    backend_params,
    device_of,
    make,
    compiled_backend_params,
    public_backend_params,
    run_with_grads,
)
from vid2vid_fast.ops import reference
from vid2vid_fast.ops.backends import EXTENSION_DEVICES


flow_warp = OPS["flow_warp"][1]  # takes backend="cuda_emulated" too


def same(backend, a, b):
    """Exact for the kernels (integer positions read pixels exactly); grid_sample's normalisation
    rounds, so the reference is only close."""
    return torch.equal(a, b) if backend != "reference" else torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_zero_flow_is_identity(backend, padding_mode):
    img = make((2, 3, 9, 11), device=device_of(backend))
    flow = torch.zeros(2, 2, 9, 11, device=img.device)
    assert same(backend, flow_warp(img, flow, padding_mode, backend=backend), img)


@pytest.mark.parametrize("backend", backend_params())
def test_integer_shift_moves_pixels(backend):
    """flow (dx, dy) = (2, -1): output (x, y) is input (x + 2, y - 1): the backward-warp convention."""
    img = make((1, 2, 8, 10), device=device_of(backend))
    flow = torch.zeros(1, 2, 8, 10, device=img.device)
    flow[:, 0] = 2.0
    flow[:, 1] = -1.0
    out = flow_warp(img, flow, "zeros", backend=backend)
    assert same(backend, out[..., 1:, :8], img[..., :7, 2:])
    assert same(backend, out[..., 0, :], torch.zeros_like(out[..., 0, :]))
    assert same(backend, out[..., :, 8:], torch.zeros_like(out[..., :, 8:]))
    border = flow_warp(img, flow, "border", backend=backend)
    assert same(backend, border[..., 1:, :8], img[..., :7, 2:])
    assert same(backend, border[..., 0, :8], img[..., 0, 2:])  # row -1 clamps to row 0
    assert same(backend, border[..., 3, 8:], img[..., 2, 9:].expand(-1, -1, 2))


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_reference_equals_grid_sample(padding_mode):
    """The contract's definition: grid_sample(bilinear, align_corners=True) on a normalised grid."""
    img = make((2, 3, 12, 15), torch.float64)
    flow = make((2, 2, 12, 15), torch.float64, scale=4.0)
    xs = torch.arange(15, dtype=torch.float64).view(1, 1, 15) + flow[:, 0]
    ys = torch.arange(12, dtype=torch.float64).view(1, 12, 1) + flow[:, 1]
    grid = torch.stack((2 * xs / 14 - 1, 2 * ys / 11 - 1), dim=-1)
    expected = F.grid_sample(img, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)
    assert torch.allclose(reference.flow_warp(img, flow, padding_mode), expected, atol=1e-12)


@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
def test_hostile_flows(op, backend, sampling, dtype):
    check_hostile_flows(op, backend, sampling, dtype)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_nan_flow_pixel_is_isolated(backend, padding_mode):
    """One NaN flow pixel makes exactly that output pixel NaN and sends the image no gradient."""
    img = make((1, 3, 6, 7), torch.float64, device_of(backend))
    flow = make((1, 2, 6, 7), torch.float64, device_of(backend))
    flow[0, 1, 2, 3] = float("nan")
    out, (g_img, g_flow) = run_with_grads(flow_warp, [img, flow], padding_mode, backend=backend)
    assert out[0, :, 2, 3].isnan().all() and out.isnan().sum() == 3
    assert not g_img.isnan().any() and torch.equal(g_flow[0, :, 2, 3], torch.zeros(2, dtype=torch.float64, device=img.device))


@pytest.mark.parametrize("backend", public_backend_params())
def test_resample2d_module_is_flownet2_compatible(backend):
    img = make((2, 3, 9, 8), device=device_of(backend))
    flow = make((2, 2, 9, 8), device=device_of(backend), scale=2.0)
    module = v2v.Resample2d(backend=backend)
    assert torch.equal(module(img, flow), v2v.flow_warp(img, flow, "border", backend=backend))
    assert torch.equal(v2v.resample2d(img, flow, backend=backend), module(img, flow))
    with pytest.raises(ValueError, match="kernel_size must be 1"):
        v2v.Resample2d(kernel_size=3)


def test_modules_match_functions():
    torch.manual_seed(2)
    for name, module in [
        ("flow_warp", v2v.FlowWarp("zeros")),
        ("warp_blend", v2v.WarpBlend("zeros")),
        ("masked_warp_l1", v2v.MaskedWarpL1Loss("zeros")),
    ]:
        make_inputs, fn, _ = OPS[name]
        inputs = make_inputs((1, 3, 5, 6), torch.float32, "cpu", "contiguous")
        assert torch.equal(module(*inputs), fn(*inputs, "zeros")), name
        assert "zeros" in repr(module)


@pytest.mark.parametrize("op", OPS)
def test_cpu_backward_is_deterministic(op):
    """Bit-identical gradients across runs on CPU, by construction (no atomics). The CUDA backward uses
    atomics and refuses deterministic mode instead (test_cuda.py)."""
    if "cpu" not in EXTENSION_DEVICES:
        pytest.skip("the extension has no cpu kernels")
    backend = "cpu"
    make_inputs, fn, _ = OPS[op]
    torch.manual_seed(23)
    inputs = make_inputs((2, 3, 31, 29), torch.float32, "cpu", "contiguous")
    first = run_with_grads(fn, inputs, "border", backend=backend)
    for _ in range(3):
        again = run_with_grads(fn, inputs, "border", backend=backend)
        assert torch.equal(first[0], again[0])
        assert all(torch.equal(a, b) for a, b in zip(first[1], again[1]))
