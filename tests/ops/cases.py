"""Inputs and comparisons shared by the op tests (DESIGN.md §5)."""

import contextlib
import itertools
import shutil

import cuda_emulated
import pytest
import torch

import vid2vid_fast as v2v
from vid2vid_fast.ops import reference
from vid2vid_fast.ops.backends import EXTENSION_DEVICES, TRITON_IMPORTABLE, TRITON_INTERPRETED
from vid2vid_fast.ops.spec import ALL_SAMPLINGS, DEFAULT_SAMPLING, PADDING_MODES, Sampling

# Relative error (max |a - b| / max |b|) allowed against the float64 reference.
TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-3, torch.bfloat16: 1e-2}

LAYOUTS = ("contiguous", "channels_last", "strided")


# "cuda_emulated": the CUDA backend's code (csrc/cuda) run on the CPU by the emulation test library
# (tests/build_checks/cuda_emulated.py), under its own op namespace; the tests reach it through OPS below.
CUDA_EMULATED = "cuda_emulated"
COMPILER_FOUND = shutil.which("c++") is not None


def device_of(backend):
    if backend == "triton":
        return "cpu" if TRITON_INTERPRETED else "cuda"
    return "cuda" if backend == "cuda" else "cpu"


def _backend_marks(name):
    if name == CUDA_EMULATED:
        return [pytest.mark.cuda_emulated,
                pytest.mark.skipif(not COMPILER_FOUND, reason="no C++ compiler to build the CUDA emulation")]
    return [pytest.mark.cuda] * (name != "cpu") + [
        pytest.mark.skipif(name == "triton" and not TRITON_IMPORTABLE, reason="triton is not installed"),
        pytest.mark.skipif(name in ("cpu", "cuda") and name not in EXTENSION_DEVICES,
                           reason=f"the extension has no {name} kernels"),
    ]


def compiled_backend_params():
    """The kernel backends for this machine: the extension's "cpu", the CUDA kernels emulated on the CPU, and
    "cuda" and "triton" where there is a GPU. (Triton under the interpreter is too slow for the full matrices:
    test_triton_ops.py covers it.)"""
    names = ["cpu", CUDA_EMULATED] + (["cuda", "triton"] if torch.cuda.is_available() else [])
    return [pytest.param(name, marks=_backend_marks(name)) for name in names]


def backend_params():
    """The reference and the kernel backends."""
    return [pytest.param("reference")] + compiled_backend_params()


def public_backend_params():
    """The backends the public functions take (all but the emulated CUDA kernels, reached only through OPS)."""
    return [p for p in backend_params() if p.values[0] != CUDA_EMULATED]


def make(shape, dtype=torch.float32, device="cpu", layout="contiguous", scale=1.0, offset=0.0):
    """A random tensor of `shape` with the given memory layout (values scale * N(0, 1) + offset)."""
    b, c, h, w = shape
    if layout == "strided":
        # A view into a larger tensor: every stride differs from the dense one.
        base = torch.randn(b, c + 1, h, 2 * w, dtype=torch.float64, device=device)[:, 1:, :, ::2]
    else:
        base = torch.randn(shape, dtype=torch.float64, device=device)
    t = (base * scale + offset).to(dtype)
    if layout == "channels_last":
        t = t.contiguous(memory_format=torch.channels_last)
    return t


def make_flow(b, h, w, dtype=torch.float32, device="cpu", layout="contiguous", sampling=DEFAULT_SAMPLING):
    """Flows of a few pixels, with about one pixel in eight pushed far outside the image, kept clear of the
    kinks of `sampling`."""
    flow = make((b, 2, h, w), torch.float64, device, layout, scale=3.0)
    far = (torch.rand(b, 1, h, w, device=device) < 0.125).to(torch.float64) * (max(h, w) + 4)
    sign = torch.where(torch.rand(b, 2, h, w, device=device) < 0.5, -1.0, 1.0).to(torch.float64)
    return clear_of_kinks(flow + far * sign, sampling, dtype)


def sampling_coordinate(pos, size, align_corners):
    """grid_sample's unnormalised coordinate u of a pixel position (README, "What the ops compute")."""
    if align_corners or size == 1:
        return pos, 1.0
    scale = size / (size - 1)
    return pos * scale - 0.5, scale


def clear_of_kinks(flow, sampling, dtype):
    """flow in `dtype`, each component moved (by a quarter pixel, at most three times) until its sampling
    coordinate u is at least 0.05 from an integer and from a half-integer: bilinear sampling has kinks at
    integer u (and the border and reflection edges sit there), nearest rounds at half-integers, reflection
    with align_corners=False reflects at them. At a kink the kernel and the float64 reference may take
    different one-sided derivatives, or round a position that differs in its last bit differently."""
    b, _, h, w = flow.shape
    flow = flow.to(dtype).to(torch.float64)
    for _ in range(3):
        moved = False
        for axis, size in ((0, w), (1, h)):
            shape = (1, 1, size) if axis == 0 else (1, size, 1)
            base = torch.arange(size, dtype=torch.float64, device=flow.device).view(shape)
            u, scale = sampling_coordinate(base + flow[:, axis], size, sampling.align_corners)
            frac = u - u.floor()
            near = (frac < 0.05) | (frac > 0.95) | ((frac - 0.5).abs() < 0.05)
            if near.any():
                moved = True
                flow[:, axis] = torch.where(near, flow[:, axis] + 0.25 / scale, flow[:, axis])
        flow = flow.to(dtype).to(torch.float64)
        if not moved:
            break
    return flow.to(dtype)


# Each op: how to build its inputs, call it and call the reference. Inputs are in the order of the op.
def flow_warp_inputs(shape, dtype, device, layout, sampling=DEFAULT_SAMPLING):
    b, _, h, w = shape
    return [make(shape, dtype, device, layout), make_flow(b, h, w, dtype, device, layout, sampling)]


def warp_blend_inputs(shape, dtype, device, layout, sampling=DEFAULT_SAMPLING):
    b, _, h, w = shape
    weight = torch.rand(b, 1, h, w, dtype=torch.float64, device=device).to(dtype)
    if layout == "channels_last":
        weight = weight.contiguous(memory_format=torch.channels_last)
    return [
        make(shape, dtype, device, layout),
        make_flow(b, h, w, dtype, device, layout, sampling),
        make(shape, dtype, device, layout),
        weight,
    ]


def masked_warp_l1_inputs(shape, dtype, device, layout, sampling=DEFAULT_SAMPLING, mask_channels=1):
    b, c, h, w = shape
    mask = (torch.rand(b, mask_channels if mask_channels == 1 else c, h, w, device=device) < 0.7).to(dtype)
    if layout == "channels_last":
        mask = mask.contiguous(memory_format=torch.channels_last)
    src = make(shape, dtype, device, layout)
    flow = make_flow(b, h, w, dtype, device, layout, sampling)
    target = make(shape, dtype, device, layout)
    # |x| has a kink at 0 where the float64 reference and a kernel may legitimately pick different signs;
    # keep every target clear of the warped value (with this sampling and with border padding, which
    # tests calling with another padding use), as gradcheck keeps clear of kinks.
    near = torch.zeros_like(target, dtype=torch.bool)  # keeps the layout of target
    for s in {sampling, DEFAULT_SAMPLING, Sampling("zeros")}:
        warped = reference.flow_warp(src.double(), flow.double(), **s.keywords()) if src.numel() else src.double()
        near |= (target.double() - warped).abs() < 0.05
    target = torch.where(near, target.double() + 0.125, target.double()).to(dtype)
    return [src, flow, target, mask]


def op_on_backend(name):
    """The public function `name` (fn(*inputs, padding_mode, backend=...)), which also takes
    backend="cuda_emulated": then it calls the emulated CUDA op directly, as a caller of torch.ops would
    (autocast is the dispatcher's, csrc/autocast.cpp)."""
    public = getattr(v2v, name)

    def fn(*args, mode="bilinear", align_corners=True, backend="auto"):
        if backend != CUDA_EMULATED:
            return public(*args, mode=mode, align_corners=align_corners, backend=backend)
        return getattr(cuda_emulated.load(), name)(*args, mode, align_corners)

    fn.__name__ = name
    return fn


OPS = {
    "flow_warp": (flow_warp_inputs, op_on_backend("flow_warp"), reference.flow_warp),
    "warp_blend": (warp_blend_inputs, op_on_backend("warp_blend"), reference.warp_blend),
    "masked_warp_l1": (masked_warp_l1_inputs, op_on_backend("masked_warp_l1"), reference.masked_warp_l1),
}


@contextlib.contextmanager
def deterministic_mode():
    previous = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(previous)


def converging_inputs(op, shape, dtype, device, layout):
    """Inputs whose flow sends every pixel into a 4x4 patch in the middle of the image, plus a few NaN and
    ±Inf flows: thousands of contributions land on each of a few image pixels, where float atomics add in
    a different order on every run."""
    make_inputs, _, _ = OPS[op]
    inputs = make_inputs(shape, dtype, device, layout)
    b, _, h, w = shape
    ys = torch.arange(h, device=device, dtype=torch.float64).view(1, h, 1).expand(b, h, w)
    xs = torch.arange(w, device=device, dtype=torch.float64).view(1, 1, w).expand(b, h, w)
    jitter = torch.rand(b, 2, h, w, device=device, dtype=torch.float64) * 3.7
    flow = torch.stack((w / 2 - 2 - xs, h / 2 - 2 - ys), dim=1) + jitter
    flow[0, 0, 1, 2], flow[0, 1, 3, 4], flow[-1, 0, 5, 6] = float("nan"), float("inf"), float("-inf")
    flow = flow.to(dtype)
    inputs[1] = flow.contiguous(memory_format=torch.channels_last) if layout == "channels_last" else flow
    return inputs


def run_with_grads(fn, inputs, sampling, grad_seed=0, grad_dtype=None, **kwargs):
    """Runs fn on detached copies of inputs with `sampling` (a Sampling, or a padding mode) and backpropagates a
    fixed random upstream gradient, made representable in grad_dtype (default: the output's dtype) so that a
    low-precision run and its float64 reference see the same gradient. Returns (output, [input gradients])."""
    sampling = Sampling(sampling) if isinstance(sampling, str) else sampling
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves, sampling.padding_mode, mode=sampling.mode, align_corners=sampling.align_corners, **kwargs)
    gen = torch.Generator(device="cpu").manual_seed(grad_seed)
    upstream = torch.randn(out.shape, generator=gen, dtype=torch.float64).to(grad_dtype or out.dtype)
    out.backward(upstream.to(out.dtype).to(out.device))
    return out.detach(), [leaf.grad for leaf in leaves]


def rel_error(actual, expected):
    actual = actual.detach().to(torch.float64).cpu()
    expected = expected.detach().to(torch.float64).cpu()
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    if expected.numel() == 0:
        return 0.0
    nan_a, nan_e = actual.isnan(), expected.isnan()
    assert torch.equal(nan_a, nan_e), f"NaN positions differ: {nan_a.sum()} vs {nan_e.sum()}"
    diff = (actual - expected).abs()[~nan_e]
    if diff.numel() == 0:
        return 0.0
    return (diff.max() / expected[~nan_e].abs().max().clamp_min(1e-6)).item()


def assert_close_to_reference(actual, expected, dtype, what, tolerance=None):
    """Relative error (of the largest value) at most tolerance, by default TOLERANCE[dtype]."""
    tolerance = TOLERANCE[dtype] if tolerance is None else tolerance
    err = rel_error(actual, expected)
    assert err <= tolerance, f"{what}: relative error {err:.3g} > {tolerance:.0e} for {dtype}"


def check_op(op, backend, shape, dtype, layout, sampling, seed, tolerance=None):
    """op on backend against the float64 reference of the same inputs: the output and every gradient.
    sampling: a Sampling, or a padding mode."""
    sampling = Sampling(sampling) if isinstance(sampling, str) else sampling
    make_inputs, fn, ref = OPS[op]
    torch.manual_seed(seed)
    device = device_of(backend)
    inputs = make_inputs(shape, dtype, device, layout, sampling)
    out, grads = run_with_grads(fn, inputs, sampling, backend=backend)
    ref_out, ref_grads = run_with_grads(ref, [t.to(torch.float64) for t in inputs], sampling, grad_dtype=dtype)
    assert out.dtype == dtype and out.device.type == device
    assert_close_to_reference(out, ref_out, dtype, f"{op} output ({sampling})", tolerance)
    names = ["input", "flow", "third input", "fourth input"]
    for name, g, rg, x in zip(names, grads, ref_grads, inputs):
        assert g is not None and g.shape == x.shape and g.dtype == dtype, name
        assert_close_to_reference(g, rg, dtype, f"{op} gradient of {name} ({sampling})", tolerance)


def hostile_flow(h, w, dtype, device):
    """Finite flows with NaN, ±Inf and huge values sprinkled in, in both components."""
    flow = make((2, 2, h, w), torch.float64, device, scale=2.0)
    specials = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 6e4, -6e4],
                            dtype=torch.float64, device=device)
    pick = torch.randint(0, 4, flow.shape, device=device) == 0
    flow = torch.where(pick, specials[torch.randint(0, len(specials), flow.shape, device=device)], flow)
    return flow.to(dtype)


def check_hostile_flows(op, backend, sampling, dtype):
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


class CompositeStep(torch.nn.Module):
    """A vid2vid-like step: a conv predicts flow, weight and raw frame; warp_blend composites them with
    the previous frame; the flow-warp loss compares a warped real frame with the current one; every op
    runs on `backend`."""

    def __init__(self, backend="auto", channels=3):
        super().__init__()
        self.backend = backend
        self.head = torch.nn.Conv2d(2 * channels, channels + 3, 3, padding=1)

    def forward(self, prev, real_prev, real, conf):
        out = self.head(torch.cat((prev, real), dim=1))
        raw = torch.tanh(out[:, :3])
        flow = out[:, 3:5] * 4
        weight = torch.sigmoid(out[:, 5:6])
        fake = v2v.warp_blend(prev, flow, raw, weight, backend=self.backend)
        loss = torch.nn.functional.l1_loss(fake, real)
        loss = loss + v2v.masked_warp_l1(real_prev, flow, real, conf, backend=self.backend)
        loss = loss + v2v.flow_warp(real_prev, flow, backend=self.backend).mean()
        return fake, loss


def composite_inputs(device="cpu", size=(16, 20)):
    torch.manual_seed(4)
    prev, real_prev, real = (torch.rand(2, 3, *size, device=device) * 2 - 1 for _ in range(3))
    conf = (torch.rand(2, 1, *size, device=device) > 0.3).float()
    return prev, real_prev, real, conf


def check_compile_matches_eager(model, inputs):
    """torch.compile(fullgraph=True) of the model: one graph, no break, the eager values and gradients."""
    torch._dynamo.reset()
    fake, loss = model(*inputs)
    loss.backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True)
    cfake, closs = compiled(*inputs)
    closs.backward()
    assert torch.allclose(cfake, fake, atol=1e-5) and torch.allclose(closs, loss, atol=1e-5)
    for g, eg in zip((p.grad for p in model.parameters()), eager_grads):
        assert torch.allclose(g, eg, atol=1e-5, rtol=1e-4)
    explanation = torch._dynamo.explain(model)(*inputs)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


def check_autocast(model, inputs, dtype):
    """Under autocast the step runs in `dtype`, its gradients are finite and it stays near fp32."""
    with torch.autocast(inputs[0].device.type, dtype=dtype):
        fake, loss = model(*inputs)
    assert fake.dtype == dtype
    loss.backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
    with torch.no_grad():
        ref_fake, _ = model(*inputs)
    assert (fake.float() - ref_fake).abs().max() < 0.1


def check_64bit_offsets(backend):
    """numel >= 2^31 on a GPU: the kernels switch to 64-bit offsets (fp16, about 4.3 GB per image); the far
    corner, which only a 64-bit offset reaches, is checked against the reference."""
    free, _ = torch.cuda.mem_get_info()
    if free < 24 * 2**30:
        pytest.skip("needs about 24 GB of free GPU memory")
    b, c, h, w = 1, 2, 32768, 32769  # 2 * 32768 * 32769 > 2^31
    img = torch.rand(b, c, h, w, device="cuda", dtype=torch.float16)
    flow = torch.full((b, 2, h, w), 0.5, device="cuda", dtype=torch.float16)
    out = v2v.flow_warp(img, flow, "zeros", backend=backend)
    tail = (slice(None), slice(None), slice(h - 3, h), slice(w - 3, w))
    expected = reference.flow_warp(img[:, :, h - 4 :, w - 4 :].float(), flow[:, :, h - 4 :, w - 4 :].float(), "zeros")
    assert torch.allclose(out[tail].float(), expected[:, :, 1:, 1:], atol=1e-3)


def check_backward_leaves_inputs_unchanged(op, backend, device, shape=(2, 3, 6, 7),
                                           dtypes=(torch.float64, torch.float32)):
    """With requires_grad on any non-empty subset of the inputs, backward leaves every input bit-unchanged
    (an unrequested gradient must never be computed into a view of an input)."""
    make_inputs, fn, _ = OPS[op]
    for dtype in dtypes:
        torch.manual_seed(13)
        inputs = make_inputs(shape, dtype, device, "contiguous")
        for subset in itertools.product((False, True), repeat=len(inputs)):
            if not any(subset):
                continue
            leaves = [t.clone().requires_grad_(needed) for t, needed in zip(inputs, subset)]
            out = fn(*leaves, "border", backend=backend)
            out.backward(torch.ones_like(out))
            for i, (leaf, original) in enumerate(zip(leaves, inputs)):
                same_bits = torch.equal(leaf.detach().view(torch.uint8), original.view(torch.uint8))
                assert same_bits, f"{op} on {backend}: input {i} changed by a backward with requires_grad {subset}"
                assert (leaf.grad is not None) == subset[i]
