"""masked_warp_l1: vid2vid's MaskedL1 loss on a warped image, fused with the warp."""

import torch
from torch import nn

from . import reference
from .backends import resolve_backend
from .checks import autocast_inputs, check_image_and_flow, check_like, check_padding_mode


def masked_warp_l1(src, flow, target, mask, padding_mode="border", *, backend="auto"):
    """``mean(|flow_warp(src, flow) * mask - target * mask|)`` over all B*C*H*W elements, as a 0-d tensor.

    src and target are (B, C, H, W), mask is (B, 1, H, W) (broadcast over channels) or (B, C, H, W).
    This is vid2vid's flow-warp and temporal-consistency loss. Differentiable with respect to all four
    tensors. See flow_warp for the flow convention, padding_mode and backend.
    """
    src, flow, target, mask = autocast_inputs(src, flow, target, mask)
    check_image_and_flow(src, flow, "src")
    check_like(target, "target", src, "src")
    check_like(mask, "mask", src, "src", channels=(1, src.shape[1]))
    check_padding_mode(padding_mode)
    backend = resolve_backend(backend, "masked_warp_l1", src)
    if backend == "reference":
        return reference.masked_warp_l1(src, flow, target, mask, padding_mode)
    ops = torch.ops.vid2vid_fast_triton if backend == "triton" else torch.ops.vid2vid_fast
    return ops.masked_warp_l1(src, flow, target, mask, padding_mode)


class MaskedWarpL1Loss(nn.Module):
    """nn.Module form of masked_warp_l1: forward(src, flow, target, mask)."""

    def __init__(self, padding_mode="border", backend="auto"):
        super().__init__()
        check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
        self.backend = backend

    def forward(self, src, flow, target, mask):
        return masked_warp_l1(src, flow, target, mask, self.padding_mode, backend=self.backend)

    def extra_repr(self):
        return f"padding_mode={self.padding_mode!r}, backend={self.backend!r}"
