"""The reference backend against the contract itself (README, "What the ops compute"): an exact per-pixel
formula written here in rational arithmetic, grid_sample on the contract's grid, exact positions, low
precision, autocast and the reflection's period."""

import math
from fractions import Fraction

import pytest
import torch

import vid2vid_fast as v2v
from cases import ALL_SAMPLINGS, Sampling, check_op, make, make_flow
from vid2vid_fast.ops import reference

SAMPLING_IDS = [str(s) for s in ALL_SAMPLINGS]
OP_NAMES = ("flow_warp", "warp_blend", "masked_warp_l1")


def contract_axis(d, x, size, sampling):
    """(u, du/dd) along one axis for the flow component d of the pixel at x, exactly as the contract defines
    them: u clipped into the image where the padding clips, du/dd with the clip's gate and the reflection's
    sign. None for an invalid pixel."""
    if math.isnan(d) or (math.isinf(d) and sampling.padding_mode == "reflection"):
        return None
    if math.isinf(d):
        d = math.copysign(1e300, d)  # ±Inf samples like a far position
    pos = Fraction(x) + Fraction(d)
    if sampling.align_corners or size == 1:
        u, du = pos, Fraction(1)
    else:
        u, du = pos * size / (size - 1) - Fraction(1, 2), Fraction(size, size - 1)
    if sampling.padding_mode == "reflection":
        if size == 1:
            u, du = Fraction(0), Fraction(0)
        else:
            low, span = (Fraction(0), size - 1) if sampling.align_corners else (Fraction(-1, 2), size)
            v, sign = u - low, 1
            if v < 0:
                v, sign = -v, -1
            r = v % (2 * span)
            if r > span:
                r, sign = 2 * span - r, -sign
            u, du = r + low, du * sign
    if sampling.padding_mode != "zeros":
        if not 0 < u < size - 1:
            du = Fraction(0)
        u = min(max(u, Fraction(0)), Fraction(size - 1))
    return u, du


def contract_taps(u, mode):
    """[(pixel index, weight, d weight / du)] of a sampling coordinate u."""
    if mode == "nearest":
        return [(round(u), Fraction(1), Fraction(0))]  # Fraction rounds half to even, as nearbyint does
    i0 = math.floor(u)
    t = u - i0
    return [(i0, 1 - t, Fraction(-1)), (i0 + 1, t, Fraction(1))]


def contract_flow_warp(img, flow, grad_out, sampling):
    """flow_warp's output and its gradients (of sum(output * grad_out)) by the contract, pixel by pixel, in
    rational arithmetic: (out, grad_img, grad_flow) as float64 tensors."""
    b_n, c_n, h, w = img.shape
    out = torch.zeros(img.shape, dtype=torch.float64)
    grad_img = torch.zeros(img.shape, dtype=torch.float64)
    grad_flow = torch.zeros(flow.shape, dtype=torch.float64)
    for b in range(b_n):
        for y in range(h):
            for x in range(w):
                ax = contract_axis(flow[b, 0, y, x].item(), x, w, sampling)
                ay = contract_axis(flow[b, 1, y, x].item(), y, h, sampling)
                if ax is None or ay is None:
                    out[b, :, y, x] = float("nan")
                    continue
                (u_x, du_x), (u_y, du_y) = ax, ay
                for c in range(c_n):
                    value = d_ux = d_uy = Fraction(0)
                    g = Fraction(grad_out[b, c, y, x].item())
                    for iy, wy, dwy in contract_taps(u_y, sampling.mode):
                        for ix, wx, dwx in contract_taps(u_x, sampling.mode):
                            if not (0 <= iy < h and 0 <= ix < w):
                                continue  # a tap outside the image contributes 0
                            pixel = Fraction(img[b, c, iy, ix].item())
                            value += wx * wy * pixel
                            d_ux += dwx * wy * pixel
                            d_uy += wx * dwy * pixel
                            grad_img[b, c, iy, ix] += float(g * wx * wy)
                    out[b, c, y, x] = float(value)
                    grad_flow[b, 0, y, x] += float(g * d_ux * du_x)
                    grad_flow[b, 1, y, x] += float(g * d_uy * du_y)
    return out, grad_img, grad_flow


def hostile(flow, sampling):
    """flow with NaN, ±Inf, huge values and a position several reflection periods away sprinkled in."""
    flow = flow.clone()
    _, _, h, w = flow.shape
    period = 2 * (w - 1)
    specials = [float("nan"), float("inf"), -float("inf"), 1e30, -1e30, flow[0, 0, 0, 0].item() + 7 * period]
    dx = flow[:, 0].flatten().clone()  # dx only, so each special value sits next to an ordinary dy
    for i, value in zip(range(1, dx.numel(), 2), specials):
        dx[i] = value
    flow[:, 0] = dx.view_as(flow[:, 0])
    return flow


# Tiny shapes, among them every combination of size-1 axes.
TINY_SHAPES = [(1, 2, 1, 1), (1, 2, 1, 5), (1, 2, 4, 1), (2, 2, 3, 4), (1, 3, 5, 6)]


@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
@pytest.mark.parametrize("shape", TINY_SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_reference_equals_the_contract_pixel_by_pixel(sampling, shape):
    torch.manual_seed(sum(shape))
    b, _, h, w = shape
    img = make(shape, torch.float64)
    flow = make_flow(b, h, w, torch.float64, sampling=sampling)
    if h * w > 4:
        flow = hostile(flow, sampling)
    grad_out = torch.randn(shape, dtype=torch.float64)
    expected, expected_grad_img, expected_grad_flow = contract_flow_warp(img, flow, grad_out, sampling)
    img.requires_grad_(True)
    flow.requires_grad_(True)
    out = reference.flow_warp(img, flow, **sampling.keywords())
    out.backward(grad_out)
    torch.testing.assert_close(out, expected, rtol=0, atol=1e-12, equal_nan=True)
    torch.testing.assert_close(img.grad, expected_grad_img, rtol=0, atol=1e-12)
    torch.testing.assert_close(flow.grad, expected_grad_flow, rtol=0, atol=1e-12)


@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
def test_reference_equals_grid_sample_on_the_contract_grid(sampling):
    """The definition: F.grid_sample on grid = 2 * (base + flow) / (size - 1) - 1 (grid_sample_warp), values
    and gradients, wherever grid_sample can express the case (sizes > 1, finite flows)."""
    torch.manual_seed(4)
    img = make((2, 3, 9, 14), torch.float64)
    flow = make_flow(2, 9, 14, torch.float64, sampling=sampling)
    grad_out = torch.randn(img.shape, dtype=torch.float64)
    results = []
    for fn in (reference.flow_warp, reference.grid_sample_warp):
        leaves = [img.clone().requires_grad_(True), flow.clone().requires_grad_(True)]
        out = fn(*leaves, **sampling.keywords())
        out.backward(grad_out)
        results.append((out, leaves[0].grad, leaves[1].grad))
    for ours, definition in zip(*results):
        torch.testing.assert_close(ours, definition, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32, torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("sampling", [s for s in ALL_SAMPLINGS if s.align_corners], ids=str)
def test_integer_flows_move_pixels_exactly(dtype, sampling):
    """With align_corners=True an integer flow copies pixels, bit for bit, in every dtype and at widths where
    grid_sample's own normalisation rounds (the float16/bfloat16 bug moved pixels at width 512)."""
    img = make((2, 3, 5, 1029), dtype)
    flow = torch.zeros(2, 2, 5, 1029, dtype=dtype)
    out = reference.flow_warp(img, flow, **sampling.keywords())
    assert out.dtype == dtype and torch.equal(out, img)
    flow[:, 0], flow[:, 1] = 3.0, -1.0
    out = reference.flow_warp(img, flow, **sampling.keywords())
    assert torch.equal(out[:, :, 1:, :-3], img[:, :, :-1, 3:])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
@pytest.mark.parametrize("op", OP_NAMES)
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
def test_low_precision_matches_float64_of_the_same_inputs(op, sampling, dtype):
    """The reference in float16/bfloat16 (through the public function) against the float64 reference of the
    same low-precision inputs, at a width where low-precision positions are wrong: output and gradients."""
    check_op(op, "reference", (1, 3, 4, 515), dtype, "contiguous", sampling, seed=6)


def float32_inputs(op, shape):
    """The op's float32 inputs: image and flow, then the blend's raw frame and weight or the loss's target and mask."""
    b, _, h, w = shape
    img, flow = make(shape), make_flow(b, h, w)
    if op == "flow_warp":
        return [img, flow]
    weight_or_mask = torch.rand(b, 1, h, w)
    return [img, flow, make(shape), weight_or_mask if op == "warp_blend" else (weight_or_mask < 0.7).float()]


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
@pytest.mark.parametrize("op", OP_NAMES)
def test_autocast_runs_in_the_autocast_dtype(op, dtype):
    """Under torch.autocast the public function casts float32 inputs to the autocast dtype and the reference
    returns that dtype, bit for bit what it returns for those inputs outside autocast; called directly, the
    reference returns its inputs' dtype (grid_sample's autocast policy does not upcast its result)."""
    torch.manual_seed(7)
    inputs = float32_inputs(op, (2, 3, 6, 520))
    low = [t.to(dtype) for t in inputs]
    expected_low = getattr(reference, op)(*low)
    expected_float = getattr(reference, op)(*inputs)
    with torch.autocast("cpu", dtype=dtype):
        public = getattr(v2v, op)(*inputs, backend="reference")
        direct_low = getattr(reference, op)(*low)
        direct_float = getattr(reference, op)(*inputs)
    assert public.dtype == dtype and torch.equal(public, expected_low)
    assert direct_low.dtype == dtype and torch.equal(direct_low, expected_low)
    assert direct_float.dtype == torch.float32 and torch.equal(direct_float, expected_float)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("periods", [1, -3, 2**12, -(2**40)])
def test_reflection_repeats_every_period_exactly(dtype, align_corners, periods):
    """Under "reflection" a flow k * 2 * (size - 1) pixels longer samples the same pixels, bit for bit, with
    the same gradients, however large k (the flow is reduced modulo the period before any rounding)."""
    if dtype == torch.float32 and abs(periods) > 2**12:
        pytest.skip("k * period is not a float32 value")
    torch.manual_seed(8)
    sampling = Sampling("reflection", align_corners=align_corners)
    h, w = 6, 9
    img = make((1, 2, h, w), dtype)
    # Sixteenths: flow + k * period is exact in dtype.
    flow = (torch.round(make((1, 2, h, w), torch.float64, scale=3.0) * 16) / 16).to(dtype)
    moved = flow + torch.tensor([2 * (w - 1), 2 * (h - 1)], dtype=dtype).view(1, 2, 1, 1) * periods
    grad_out = torch.randn(img.shape, dtype=dtype)
    results = []
    for f in (flow, moved):
        leaves = [img.clone().requires_grad_(True), f.clone().requires_grad_(True)]
        out = reference.flow_warp(*leaves, **sampling.keywords())
        out.backward(grad_out)
        results.append((out, leaves[0].grad, leaves[1].grad))
    for a, b in zip(*results):
        assert torch.equal(a, b)


@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
@pytest.mark.parametrize("shape", [(1, 2, 1, 4), (1, 2, 3, 1), (2, 2, 1, 1)], ids=lambda s: "x".join(map(str, s)))
def test_gradcheck_with_size_one_axes(sampling, shape):
    torch.manual_seed(9)
    b, _, h, w = shape
    img = make(shape, torch.float64).requires_grad_(True)
    flow = make_flow(b, h, w, torch.float64, sampling=sampling).requires_grad_(True)
    assert torch.autograd.gradcheck(lambda i, f: reference.flow_warp(i, f, **sampling.keywords()), (img, flow))

