"""warp_blend: vid2vid's composite step, raw * weight + flow_warp(prev, flow) * (1 - weight), in one pass."""

import torch
from torch import nn

from . import reference
from .backends import resolve_backend
from .checks import autocast_inputs, check_image_and_flow, check_like, check_padding_mode


def warp_blend(prev, flow, raw, weight, padding_mode="border", *, backend="auto"):
    """Blends the hallucinated frame raw (B, C, H, W) with prev (B, C, H, W) warped by flow (B, 2, H, W):
    ``raw * weight + flow_warp(prev, flow) * (1 - weight)``, weight (B, 1, H, W) broadcast over channels.

    The weight multiplies raw, as in vid2vid's models/networks.py. Differentiable with respect to all
    four tensors. See flow_warp for the flow convention, padding_mode and backend.
    """
    prev, flow, raw, weight = autocast_inputs(prev, flow, raw, weight)
    check_image_and_flow(prev, flow, "prev")
    check_like(raw, "raw", prev, "prev")
    check_like(weight, "weight", prev, "prev", channels=(1,))
    check_padding_mode(padding_mode)
    backend = resolve_backend(backend, "warp_blend", prev)
    if backend == "reference":
        return reference.warp_blend(prev, flow, raw, weight, padding_mode)
    ops = torch.ops.vid2vid_fast_triton if backend == "triton" else torch.ops.vid2vid_fast
    return ops.warp_blend(prev, flow, raw, weight, padding_mode)


class WarpBlend(nn.Module):
    """nn.Module form of warp_blend: forward(prev, flow, raw, weight)."""

    def __init__(self, padding_mode="border", backend="auto"):
        super().__init__()
        check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
        self.backend = backend

    def forward(self, prev, flow, raw, weight):
        return warp_blend(prev, flow, raw, weight, self.padding_mode, backend=self.backend)

    def extra_repr(self):
        return f"padding_mode={self.padding_mode!r}, backend={self.backend!r}"
