"""The C++ kernels (CPU and the CUDA code emulated on the CPU) for every sampling option — padding_mode "border",
"zeros", "reflection", mode "bilinear", "nearest", align_corners True and False — called through their ops
directly (torch.ops.vid2vid_fast.*, torch.ops.vid2vid_fast_cuda_emulated.*), against F.grid_sample in float64
with grid = 2 * pos / (size - 1) - 1 (the contract of issue 14, DESIGN.md §2)."""

import itertools
import shutil

import cuda_emulated
import pytest
import torch
import torch.nn.functional as F

import vid2vid_fast  # noqa: F401  (loads the extension's ops)
from vid2vid_fast.ops.backends import EXTENSION_DEVICES

PADDINGS = ("border", "zeros", "reflection")
MODES = ("bilinear", "nearest")
OPTIONS = list(itertools.product(PADDINGS, MODES, (True, False)))
OPTION_IDS = [f"{p}-{m}-{'align' if a else 'noalign'}" for p, m, a in OPTIONS]
OPS = ("flow_warp", "warp_blend", "masked_warp_l1")

BACKENDS = [
    pytest.param("cpu", marks=pytest.mark.skipif("cpu" not in EXTENSION_DEVICES, reason="no cpu kernels")),
    pytest.param("cuda_emulated", marks=[pytest.mark.cuda_emulated,
                                         pytest.mark.skipif(shutil.which("c++") is None, reason="no C++ compiler")]),
]


def ops_of(backend):
    return torch.ops.vid2vid_fast if backend == "cpu" else cuda_emulated.load()


# --------------------------------------------------------------------------------------------- the reference

def warp_reference(img, flow, padding_mode, mode, align_corners):
    """F.grid_sample with the (size - 1) normalisation. An axis of size 1 samples at the identity (u = pos, our
    rule): grid_sample then reads pixel 0 whatever its grid coordinate, and under zeros padding the sample is
    scaled by the weight pixel 0 gets at u = pos (bilinear 1 - |pos| where positive, nearest 1 for |pos| <= 0.5)."""
    b, _, h, w = img.shape
    xs = torch.arange(w, dtype=flow.dtype).view(1, 1, w) + flow[:, 0]
    ys = torch.arange(h, dtype=flow.dtype).view(1, h, 1) + flow[:, 1]
    factor = torch.ones_like(xs)
    grid = []
    for pos, size in ((xs, w), (ys, h)):
        if size > 1:
            grid.append(2 * pos / (size - 1) - 1)
            continue
        grid.append(torch.zeros_like(pos))
        if padding_mode == "zeros":
            factor = factor * (torch.relu(1 - pos.abs()) if mode == "bilinear" else (pos.abs() <= 0.5).to(pos.dtype))
    out = F.grid_sample(img, torch.stack(grid, dim=-1), mode=mode, padding_mode=padding_mode,
                        align_corners=align_corners)
    return out * factor.unsqueeze(1)


def op_reference(op, inputs, *options):
    if op == "flow_warp":
        img, flow = inputs
        return warp_reference(img, flow, *options)
    if op == "warp_blend":
        prev, flow, raw, weight = inputs
        return raw * weight + warp_reference(prev, flow, *options) * (1 - weight)
    src, flow, target, mask = inputs
    return (warp_reference(src, flow, *options) * mask - target * mask).abs().mean()


# ------------------------------------------------------------------------------------------------- inputs

def sampling_coordinate(pos, size, align_corners):
    """grid_sample's coordinate u of a position, before padding."""
    return pos if align_corners or size == 1 else pos * size / (size - 1) - 0.5


def position_of(u, size, align_corners):
    return u if align_corners or size == 1 else (u + 0.5) * (size - 1) / size


def make_flow(b, h, w, align_corners, reach=2.5):
    """Flows whose coordinates u lie up to `reach` image sizes outside the image (several reflections), and at
    least 0.025 from every multiple of 0.5: there bilinear, nearest, border and reflection have their kinks,
    where the kernel and the float64 reference may take different one-sided derivatives."""
    flow = torch.empty(b, 2, h, w, dtype=torch.float64)
    for axis, size in ((0, w), (1, h)):
        base = torch.arange(size, dtype=torch.float64)
        base = base.view(1, 1, size) if axis == 0 else base.view(1, size, 1)
        u = (torch.rand(b, h, w, dtype=torch.float64) * (2 * reach + 1) - reach) * size
        u = torch.floor(2 * u) / 2 + 0.025 + 0.45 * torch.rand(b, h, w, dtype=torch.float64)
        flow[:, axis] = position_of(u, size, align_corners) - base
    return flow


def make_inputs(op, shape, align_corners, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    b, c, h, w = shape
    img = torch.randn(shape, dtype=torch.float64)
    flow = make_flow(b, h, w, align_corners)
    if op == "flow_warp":
        inputs = [img, flow]
    else:
        other = torch.randn(shape, dtype=torch.float64)
        weight = torch.rand(b, 1, h, w, dtype=torch.float64)
        inputs = [img, flow, other, weight]
    return [t.to(dtype) for t in inputs]


def run(fn, inputs, grad_seed=1):
    """fn's output and the gradients of all its inputs for a random output gradient."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    torch.manual_seed(grad_seed)
    grad_out = torch.randn(out.shape, dtype=torch.float64).to(out.dtype)  # the same values for every dtype
    grads = torch.autograd.grad(out, leaves, grad_out, allow_unused=True)  # a 1 x 1 reference ignores the flow
    return out.detach(), [torch.zeros_like(t) if g is None else g.detach() for t, g in zip(leaves, grads)]


def rel_error(actual, expected):
    """max |a - e| / max |e|, comparing in float64; NaN where exactly one of them is NaN counts as infinite."""
    actual, expected = actual.double(), expected.double()
    if not torch.equal(actual.isnan(), expected.isnan()):
        return float("inf")
    keep = ~expected.isnan()
    if not keep.any():
        return 0.0
    return ((actual - expected)[keep].abs().max() / expected[keep].abs().max().clamp_min(1e-30)).item()


def assert_matches(actual, expected, tolerance, what):
    error = rel_error(actual, expected)
    assert error <= tolerance, f"{what}: relative error {error:.3g} > {tolerance:.1g}"


def check_against_reference(backend, op, inputs, options, tolerance):
    fn = getattr(ops_of(backend), op)
    out, grads = run(lambda *t: fn(*t, *options), inputs)
    ref_out, ref_grads = run(lambda *t: op_reference(op, t, *options), [t.double() for t in inputs])
    assert out.dtype == inputs[0].dtype
    assert_matches(out, ref_out, tolerance, f"{op} {options} output")
    for name, g, rg in zip(("image", "flow", "third input", "fourth input"), grads, ref_grads):
        assert_matches(g, rg, tolerance, f"{op} {options} gradient of the {name}")


# ------------------------------------------------------------------------------------------------- tests

def test_reference_equals_grid_sample_of_the_contract():
    """The reference above is the contract's formula: at align_corners=True a zero flow is the identity, and
    at align_corners=False it samples at pos * size / (size - 1) - 0.5 (checked on one pixel by hand)."""
    img = torch.randn(1, 2, 5, 7, dtype=torch.float64)
    zero = torch.zeros(1, 2, 5, 7, dtype=torch.float64)
    for padding_mode, mode in itertools.product(PADDINGS, MODES):
        assert torch.allclose(warp_reference(img, zero, padding_mode, mode, True), img)
    out = warp_reference(img, zero, "border", "bilinear", False)
    u, v = 3 * 7 / 6 - 0.5, 2 * 5 / 4 - 0.5  # pixel (x=3, y=2): u = 3.0, v = 2.0
    assert u == 3.0 and v == 2.0 and torch.allclose(out[0, :, 2, 3], img[0, :, 2, 3])
    u = 1 * 7 / 6 - 0.5  # pixel x=1: between 0 and 1
    expected = img[0, :, 2, 0] * (1 - u) + img[0, :, 2, 1] * u
    assert torch.allclose(out[0, :, 2, 1], expected)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_grid_sample_in_float64(backend, op, options):
    inputs = make_inputs(op, (2, 5, 7, 9), options[2])
    check_against_reference(backend, op, inputs, options, 1e-10)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_matches_grid_sample_in_float32(backend, op, options):
    """float32: the CPU's channel-block sampling (AVX2 / AVX-512 builds), rows longer than a tile (128). The
    positions reach hundreds of pixels, where float32 rounds them by up to 3e-5 pixels: hence 1e-4."""
    inputs = make_inputs(op, (2, 5, 6, 140), options[2], torch.float32, seed=1)
    check_against_reference(backend, op, inputs, options, 1e-4)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_gradcheck(backend, op, options):
    inputs = [t.requires_grad_(True) for t in make_inputs(op, (1, 2, 4, 5), options[2], seed=2)]
    fn = getattr(ops_of(backend), op)
    # The CUDA kernels' image gradients add with float atomics in any order (the emulation shuffles the threads):
    # two backward runs may differ by rounding.
    nondet_tol = 1e-12 if backend == "cuda_emulated" else 0.0
    assert torch.autograd.gradcheck(lambda *t: fn(*t, *options), inputs, eps=1e-6, atol=1e-8, nondet_tol=nondet_tol)


@pytest.mark.parametrize("shape", [(2, 3, 1, 7), (2, 3, 6, 1), (1, 2, 1, 1)], ids=str)
@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_size_one_axes(backend, options, shape):
    """A size-1 axis samples at the identity (u = pos) under every option; its flow gradient is 0 except under
    zeros padding, where the weight of pixel 0 depends on the position."""
    for op in OPS:
        inputs = make_inputs(op, shape, options[2], seed=3)
        inputs[1] = torch.randn_like(inputs[1]) * 1.5  # away from the kinks at 0 and ±1 with probability 1
        check_against_reference(backend, op, inputs, options, 1e-10)


@pytest.mark.parametrize("options", OPTIONS, ids=OPTION_IDS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_layouts_of_the_public_functions(backend, options):
    """What the public functions pass the ops: a channels_last image, a (B, H, W, 2) flow permuted to a
    (B, 2, H, W) view (strides (H*W*2, 1, W*2, 2), no copy), and a batch-1 image or flow expanded to the batch
    (stride 0). The gradients come back dense, and the inputs stay unchanged."""
    fn = getattr(ops_of(backend), "flow_warp")
    img, flow = make_inputs("flow_warp", (3, 4, 6, 8), options[2], seed=4)
    bhwc = flow.permute(0, 2, 3, 1).contiguous()
    cases = {
        "channels_last image, bhwc flow": (img.contiguous(memory_format=torch.channels_last), bhwc.permute(0, 3, 1, 2)),
        "expanded image": (img[:1].expand(3, -1, -1, -1), flow),
        "expanded flow": (img, flow[:1].expand(3, -1, -1, -1)),
    }
    for name, (i, f) in cases.items():
        before = [i.clone(), f.clone()]
        out, grads = run(lambda a, b: fn(a, b, *options), [i, f])
        ref_out, ref_grads = run(lambda a, b: warp_reference(a, b, *options), [i.contiguous(), f.contiguous()])
        assert_matches(out, ref_out, 1e-10, f"{name}: output")
        for g, rg in zip(grads, ref_grads):
            assert_matches(g, rg, 1e-10, f"{name}: gradient")
        assert torch.equal(i, before[0]) and torch.equal(f, before[1]), f"{name}: an input changed"

    # The ops themselves on an expanded input (stride 0 in dim 0), without autograd in between.
    expanded = img[:1].expand(3, -1, -1, -1)
    grad_out = torch.randn(3, 4, 6, 8, dtype=torch.float64)
    backward = getattr(ops_of(backend), "flow_warp_backward")
    g_img, g_flow = backward(grad_out, expanded, flow, *options, [True, True])
    leaves = [expanded.contiguous().requires_grad_(True), flow.clone().requires_grad_(True)]
    ref_g_img, ref_g_flow = torch.autograd.grad(warp_reference(*leaves, *options), leaves, grad_out)
    assert g_img.stride(0) != 0 and g_img.shape == expanded.shape
    assert_matches(g_img, ref_g_img, 1e-10, "backward op: image gradient of an expanded image")
    assert_matches(g_flow, ref_g_flow, 1e-10, "backward op: flow gradient")


@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("padding_mode", PADDINGS)
@pytest.mark.parametrize("backend", BACKENDS)
def test_nearest_sends_no_flow_gradient(backend, padding_mode, align_corners):
    """mode="nearest": the flow gradient is exactly 0, and each output pixel's gradient goes to one pixel."""
    ops = ops_of(backend)
    img, flow = make_inputs("flow_warp", (2, 3, 7, 9), align_corners, torch.float32, seed=5)
    options = (padding_mode, "nearest", align_corners)
    grad_out = torch.ones(2, 3, 7, 9)
    g_img, g_flow = ops.flow_warp_backward(grad_out, img, flow, *options, [True, True])
    assert torch.equal(g_flow, torch.zeros_like(g_flow))
    # Every output pixel sends its 1 to the pixel it read: one per output under border and reflection.
    if padding_mode != "zeros":
        assert g_img.sum().item() == grad_out.sum().item()
    ones_read = ops.flow_warp(torch.ones_like(img), flow, *options)
    assert g_img.sum().item() == ones_read.sum().item()


@pytest.mark.parametrize("backend", BACKENDS)
def test_nearest_rounds_half_to_even(backend):
    """A coordinate exactly between two pixels reads the even one, as grid_sample's nearbyint does. Coordinates
    given exactly: at align_corners=True they are positions; at align_corners=False, width 2 scales by exactly 2."""
    ops = ops_of(backend)
    w = 8
    img = torch.arange(1, w + 1, dtype=torch.float64).view(1, 1, 1, w).expand(1, 1, 3, w).contiguous()
    u = torch.tensor([0.5, 1.5, 2.5, 3.5, 4.5, 5.5, 2.0, 3.0], dtype=torch.float64)
    flow = torch.zeros(1, 2, 3, w, dtype=torch.float64)
    flow[0, 0] = u - torch.arange(w, dtype=torch.float64)
    for padding_mode in PADDINGS:
        out = ops.flow_warp(img, flow, padding_mode, "nearest", True)
        assert out[0, 0, 1].tolist() == [1.0, 3.0, 3.0, 5.0, 5.0, 7.0, 3.0, 4.0], padding_mode
    # Width 2, zeros padding: u = 2 * pos - 0.5; -0.5 and 0.5 read pixel 0, 1.5 reads pixel 2 (outside: 0).
    img2 = torch.tensor([[[[10.0, 20.0]] * 3]], dtype=torch.float64)
    for u, expected in ((-0.5, 10.0), (0.5, 10.0), (1.5, 0.0)):
        flow2 = torch.zeros(1, 2, 3, 2, dtype=torch.float64)
        flow2[0, 0, 1, 0] = (u + 0.5) / 2
        out = ops.flow_warp(img2, flow2, "zeros", "nearest", False)
        assert out[0, 0, 1, 0].item() == expected, u


def reduced_for_reflection(flow):
    """The flow reduced exactly modulo the reflection period 2 (size - 1) of each axis (fmod: the README's
    rule, which changes no sample); a size-1 axis's flow becomes 0."""
    reduced = flow.clone()
    for axis, size in ((0, flow.shape[3]), (1, flow.shape[2])):
        period = 2 * (size - 1)
        reduced[:, axis] = torch.fmod(flow[:, axis], period) if period else torch.zeros_like(flow[:, axis])
    return reduced


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("align_corners", [True, False])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("backend", BACKENDS)
def test_reflection_of_hostile_flows(backend, dtype, mode, align_corners):
    """Under reflection a NaN or ±Inf flow component makes its pixel invalid (NaN output, no gradient sent
    anywhere, zero flow gradient); a huge finite one (±1e30, ±6e4: many periods away) is reduced exactly modulo the
    period first, and samples as the reduced flow does (flow gradients not compared there: a reduced 1e30 is an
    integer, a kink of bilinear sampling)."""
    ops = ops_of(backend)
    torch.manual_seed(6)
    h, w = 5, 7
    img = torch.rand(2, 3, h, w, dtype=torch.float64).to(dtype)
    flow = make_flow(2, h, w, align_corners)
    invalid_at = {(0, 0, 1, 2): float("nan"), (0, 1, 2, 3): float("inf"), (1, 0, 3, 4): -float("inf")}
    huge_at = {(1, 1, 0, 0): 1e30, (0, 0, 4, 6): -1e30, (0, 0, 3, 1): 6e4 + 0.25, (1, 1, 2, 5): -6e4 - 0.75}
    for index, value in {**invalid_at, **huge_at}.items():
        flow[index] = value
    flow = flow.to(dtype)
    options = ("reflection", mode, align_corners)
    out = ops.flow_warp(img, flow, *options)
    grad_out = torch.randn(out.shape, dtype=torch.float64).to(dtype)
    g_img, g_flow = ops.flow_warp_backward(grad_out, img, flow, *options, [True, True])

    def pixels(at):
        m = torch.zeros(2, 1, h, w, dtype=torch.bool)
        for b, _, y, x in at:
            m[b, 0, y, x] = True
        return m

    invalid, huge = pixels(invalid_at), pixels(huge_at)
    assert out.isnan().equal(invalid.expand_as(out))
    assert not g_img.isnan().any() and g_flow[invalid.expand_as(flow)].eq(0).all()
    clean = reduced_for_reflection(torch.where(invalid, 0.0, flow.double()))
    leaves = [img.double().requires_grad_(True), clean.requires_grad_(True)]
    ref_out = warp_reference(*leaves, *options)
    ref_g_img, ref_g_flow = torch.autograd.grad(ref_out, leaves, torch.where(invalid, 0.0, grad_out.double()))
    tolerance = 1e-10 if dtype == torch.float64 else 1e-5
    assert_matches(out[~invalid.expand_as(out)], ref_out.detach()[~invalid.expand_as(out)], tolerance, "output")
    assert_matches(g_img, ref_g_img, tolerance, "image gradient")
    compared = ~(invalid | huge).expand_as(flow)
    assert_matches(g_flow[compared], ref_g_flow[compared], tolerance, "flow gradient")
    assert g_flow.isfinite().all()


@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
@pytest.mark.parametrize("backend", BACKENDS)
def test_infinite_flows_sample_far_outside_border_and_zeros(backend, padding_mode):
    """Under border and zeros, ±Inf keeps its rule: a sample far outside (the edge, or 0), not an invalid pixel."""
    ops = ops_of(backend)
    img = torch.rand(1, 2, 4, 5, dtype=torch.float64)
    flow = torch.zeros(1, 2, 4, 5, dtype=torch.float64)
    flow[0, 0, 1, 2], flow[0, 1, 2, 3] = float("inf"), -float("inf")
    for mode, align_corners in itertools.product(MODES, (True, False)):
        out = ops.flow_warp(img, flow, padding_mode, mode, align_corners)
        assert not out.isnan().any()
        far = flow.clamp(-1e6, 1e6)
        assert_matches(out, warp_reference(img, far, padding_mode, mode, align_corners), 1e-12, "output")


@pytest.mark.parametrize("backend", BACKENDS)
def test_invalid_options_are_clear_errors(backend):
    ops = ops_of(backend)
    img, flow = torch.rand(1, 2, 3, 4), torch.zeros(1, 2, 3, 4)
    with pytest.raises(RuntimeError, match="padding_mode must be 'border', 'zeros' or 'reflection', got 'reflect'"):
        ops.flow_warp(img, flow, "reflect", "bilinear", True)
    with pytest.raises(RuntimeError, match="mode must be 'bilinear' or 'nearest', got 'bicubic'"):
        ops.warp_blend(img, flow, img, img[:, :1], "border", "bicubic", True)
    with pytest.raises(RuntimeError, match="mode must be 'bilinear' or 'nearest'"):
        ops.masked_warp_l1_backward(torch.ones(()), img, flow, img, img[:, :1], "zeros", "area", False,
                                    [True, True, True, True])
