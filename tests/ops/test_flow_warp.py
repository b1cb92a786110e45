"""flow_warp semantics beyond matching the reference: the convention itself, hostile flows, resample2d."""

import pytest
import torch
import torch.nn.functional as F

import vid2vid_fast as v2v
from cases import (
    ALL_SAMPLINGS,
    OPS,
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


def hostile_flow(h, w, dtype, device):
    """Finite flows with NaN, ±Inf and huge values sprinkled in, in both components."""
    flow = make((2, 2, h, w), torch.float64, device, scale=2.0)
    specials = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 6e4, -6e4],
                            dtype=torch.float64, device=device)
    pick = torch.randint(0, 4, flow.shape, device=device) == 0
    flow = torch.where(pick, specials[torch.randint(0, len(specials), flow.shape, device=device)], flow)
    return flow.to(dtype)


@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16, torch.float64], ids=str)
def test_hostile_flows(op, backend, sampling, dtype):
    """NaN, ±Inf and huge flows: never out of bounds; the result is the documented one: NaN flow (and ±Inf
    under reflection) -> NaN output pixel with no image or flow gradient; ±Inf / huge -> a far sample.

    Against the float64 reference where the two compute one position exactly: with bilinear sampling and
    align_corners=True. (With align_corners=False a huge position is scaled by size / (size - 1), and nearest
    rounds it: float32 and float64 land on different pixels, both correct.) Under reflection a huge flow puts
    the sample on an integer position, a kink where the flow gradient of either side is correct, so the flow
    gradients of those pixels are not compared."""
    make_inputs, fn, ref = OPS[op]
    torch.manual_seed(17)
    device = device_of(backend)
    inputs = make_inputs((2, 3, 13, 16), dtype, device, "contiguous")
    inputs[1] = hostile_flow(13, 16, dtype, device)
    out, grads = run_with_grads(fn, inputs, sampling, backend=backend)
    flow = inputs[1]
    invalid = flow.isnan() | (flow.isinf() if sampling.padding_mode == "reflection" else torch.zeros_like(flow, dtype=torch.bool))
    invalid = invalid.any(dim=1, keepdim=True)
    if op != "masked_warp_l1":
        assert out[invalid.expand_as(out)].isnan().all()
        assert not out[~invalid.expand_as(out)].isnan().any()
    else:
        assert out.isnan()
    assert torch.count_nonzero(grads[1][invalid.expand_as(grads[1])].nan_to_num(1.0)) == 0
    if sampling.mode != "bilinear" or not sampling.align_corners:
        for g, x in zip(grads, inputs):
            assert g.shape == x.shape and not g[~g.isnan()].isinf().any()
        return
    ref_out, ref_grads = run_with_grads(ref, [t.double() for t in inputs], sampling, grad_dtype=dtype)
    if op != "masked_warp_l1":
        assert_close_to_reference(out, ref_out, dtype, "output")
    if sampling.padding_mode == "reflection":
        huge = (flow.abs() > 1e3).any(dim=1, keepdim=True).expand_as(grads[1])
        grads[1], ref_grads[1] = grads[1].masked_fill(huge, 0), ref_grads[1].masked_fill(huge, 0)
    for g, rg in zip(grads, ref_grads):
        assert_close_to_reference(g, rg, dtype, "gradient")


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
