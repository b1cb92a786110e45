"""The benchmark cases shared by test_bench_ops.py (pytest-benchmark) and ops_table.py (the side-by-side table).

Each op is timed as the fused op and as the eager chain a vid2vid user runs today: reference.grid_sample_warp
(base grid + normalisation + F.grid_sample) followed by the blend or loss arithmetic written out.
"""

import torch

import vid2vid_fast as v2v
from vid2vid_fast.ops.reference import grid_sample_warp

SHAPES = ((1, 3, 256, 512), (4, 3, 128, 256), (1, 32, 128, 128))
PASSES = ("fwd", "fwd+bwd")


def eager_flow_warp(img, flow):
    return grid_sample_warp(img, flow)


def eager_warp_blend(prev, flow, raw, weight):
    return raw * weight + grid_sample_warp(prev, flow) * (1 - weight)


def eager_masked_warp_l1(src, flow, target, mask):
    return (grid_sample_warp(src, flow) * mask - target * mask).abs().mean()


# op name -> (eager chain, fused op taking backend=)
OPS = {
    "flow_warp": (eager_flow_warp, v2v.flow_warp),
    "warp_blend": (eager_warp_blend, v2v.warp_blend),
    "masked_warp_l1": (eager_masked_warp_l1, v2v.masked_warp_l1),
}


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


def make_step(op, impl, pass_, inputs, backend):
    """A no-argument callable that runs one repetition: forward, or forward and the gradients of every input.

    impl is "reference" (the eager chain) or "fused" (the op on `backend`). Gradients are returned by
    torch.autograd.grad rather than accumulated into .grad, so repetitions do not add up."""
    eager, fused = OPS[op]
    fn = eager if impl == "reference" else (lambda *xs: fused(*xs, backend=backend))
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


def shape_name(shape):
    return "x".join(map(str, shape))
