"""The benchmark cases shared by test_bench_ops.py (pytest-benchmark) and ops_table.py (the side-by-side table).

Each op is timed as the fused op and as the eager chain a vid2vid user runs today: reference.grid_sample_warp
(base grid + normalisation + F.grid_sample) followed by the blend or loss arithmetic written out. Every op runs
with the default sampling (bilinear, border, align_corners=True); flow_warp, the op other libraries' warps map
to, also with the other modes of SAMPLINGS.
"""

import torch

import vid2vid_fast as v2v
from vid2vid_fast.ops.reference import grid_sample_warp
from vid2vid_fast.ops.spec import DEFAULT_SAMPLING, Sampling

SHAPES = ((1, 3, 256, 512), (4, 3, 128, 256), (1, 32, 128, 128))
PASSES = ("fwd", "fwd+bwd")
# The other sampling modes timed for flow_warp: BasicSR's / mmagic's default (zeros), with align_corners=False,
# nearest (their interp_mode="nearest") and reflection.
SAMPLINGS = (Sampling("zeros", align_corners=False), Sampling("zeros", "nearest"), Sampling("reflection"))


def eager_flow_warp(img, flow, sampling=DEFAULT_SAMPLING):
    return grid_sample_warp(img, flow, **sampling.keywords())


def eager_warp_blend(prev, flow, raw, weight, sampling=DEFAULT_SAMPLING):
    return raw * weight + grid_sample_warp(prev, flow, **sampling.keywords()) * (1 - weight)


def eager_masked_warp_l1(src, flow, target, mask, sampling=DEFAULT_SAMPLING):
    return (grid_sample_warp(src, flow, **sampling.keywords()) * mask - target * mask).abs().mean()


# op name -> (eager chain, fused op taking backend=); both take the sampling options.
OPS = {
    "flow_warp": (eager_flow_warp, v2v.flow_warp),
    "warp_blend": (eager_warp_blend, v2v.warp_blend),
    "masked_warp_l1": (eager_masked_warp_l1, v2v.masked_warp_l1),
}


def op_samplings():
    """The (op, sampling) pairs to time: every op with the default sampling, flow_warp with SAMPLINGS too."""
    return [(op, DEFAULT_SAMPLING) for op in OPS] + [("flow_warp", s) for s in SAMPLINGS]


def bind(op, impl, sampling, backend):
    """The function that runs op's eager chain (impl "reference") or fused op on tensors alone."""
    eager, fused = OPS[op]
    if impl == "reference":
        return lambda *xs: eager(*xs, sampling)
    return lambda *xs: fused(*xs, **sampling.keywords(), backend=backend)


def smooth_flow(b, h, w, gen):
    """A flow like optical flow between video frames: smooth, a few pixels (std 3 px), varying over regions
    of about 16 pixels (bilinear upsampling of a coarse random field)."""
    coarse = torch.randn(b, 2, max(h // 16, 2), max(w // 16, 2), generator=gen) * 3
    return torch.nn.functional.interpolate(coarse, size=(h, w), mode="bilinear", align_corners=False)


def make_inputs(op, shape, device="cpu", seed=0):
    """float32 inputs of op at shape (B, C, H, W), with a smooth flow of a few pixels (smooth_flow)."""
    gen = torch.Generator().manual_seed(seed)
    b, c, h, w = shape

    def randn(*size):
        return torch.randn(*size, generator=gen).to(device)

    flow = smooth_flow(b, h, w, gen).to(device)
    if op == "flow_warp":
        return [randn(b, c, h, w), flow]
    if op == "warp_blend":
        return [randn(b, c, h, w), flow, randn(b, c, h, w), torch.rand(b, 1, h, w, generator=gen).to(device)]
    mask = (torch.rand(b, 1, h, w, generator=gen) < 0.7).float().to(device)
    return [randn(b, c, h, w), flow, randn(b, c, h, w), mask]


def make_step(op, impl, pass_, inputs, backend, sampling=DEFAULT_SAMPLING):
    """A no-argument callable that runs one repetition: forward, or forward and the gradients of every input.

    impl is "reference" (the eager chain) or "fused" (the op on `backend`). Gradients are returned by
    torch.autograd.grad rather than accumulated into .grad, so repetitions do not add up."""
    fn = bind(op, impl, sampling, backend)
    if pass_ == "fwd":
        def forward():
            with torch.no_grad():
                return fn(*inputs)
        return forward

    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    upstream = None

    def forward_backward():
        nonlocal upstream
        out = fn(*leaves)
        if upstream is None:
            upstream = torch.randn_like(out)
        return torch.autograd.grad(out, leaves, upstream)
    return forward_backward


def forward_error(got, want, sampling):
    """The largest difference of got from want, relative to want's largest magnitude. Under nearest sampling a
    float32 position within rounding of a half-integer picks the other pixel than float64 does, both correct:
    the largest 0.1% of the differences (at least one) are left out."""
    diff = (got.detach().double() - want.detach().double()).abs().flatten()
    if sampling.mode == "nearest" and diff.numel() > 1:
        diff = diff.sort().values[: diff.numel() - -(-diff.numel() // 1000)]
    if diff.numel() == 0:
        return 0.0
    return (diff.max() / want.detach().double().abs().max().clamp_min(1e-6)).item()


def exact_forward(op, sampling, inputs):
    """What op computes on `inputs`, in float64: the reference backend, which hands grid_sample exact positions.
    (The eager chain rounds its normalised grid, which under nearest sampling picks the other pixel wherever a
    position is a half-integer, as low-precision flows often are.)"""
    with torch.no_grad():
        return bind(op, "fused", sampling, "reference")(*[t.double() for t in inputs])


def shape_name(shape):
    return "x".join(map(str, shape))
