"""flow_warp: backward bilinear warping of an image by a pixel flow; resample2d: FlowNet2's name for it."""

import torch
from torch import nn

from . import reference
from .backends import resolve_backend
from .checks import autocast_inputs, check_image_and_flow, check_padding_mode


def flow_warp(img, flow, padding_mode="border", *, backend="auto"):
    """Samples img (B, C, H, W) at (x + dx, y + dy) for every pixel (x, y), bilinearly.

    flow is (B, 2, H, W) in pixels, channel 0 = dx (along W), channel 1 = dy (along H); pixel centres sit
    at integer coordinates (align_corners=True). padding_mode "border" takes the nearest edge pixel for
    positions outside the image (grid_sample's border mode, FlowNet2's Resample2d); "zeros" lets pixels
    outside contribute 0. A NaN flow gives a NaN output pixel; ±Inf flows sample like far positions.
    Differentiable with respect to img and flow. backend: "auto", "reference", "cpu", "cuda" or "triton".
    """
    img, flow = autocast_inputs(img, flow)
    check_image_and_flow(img, flow, "img")
    check_padding_mode(padding_mode)
    backend = resolve_backend(backend, "flow_warp", img)
    if backend == "reference":
        return reference.flow_warp(img, flow, padding_mode)
    ops = torch.ops.vid2vid_fast_triton if backend == "triton" else torch.ops.vid2vid_fast
    return ops.flow_warp(img, flow, padding_mode)


def resample2d(img, flow, *, backend="auto"):
    """FlowNet2 / vid2vid's Resample2d(kernel_size=1): flow_warp with border padding."""
    return flow_warp(img, flow, "border", backend=backend)


class FlowWarp(nn.Module):
    """nn.Module form of flow_warp: forward(img, flow)."""

    def __init__(self, padding_mode="border", backend="auto"):
        super().__init__()
        check_padding_mode(padding_mode)
        self.padding_mode = padding_mode
        self.backend = backend

    def forward(self, img, flow):
        return flow_warp(img, flow, self.padding_mode, backend=self.backend)

    def extra_repr(self):
        return f"padding_mode={self.padding_mode!r}, backend={self.backend!r}"


class Resample2d(nn.Module):
    """Drop-in replacement for FlowNet2's Resample2d: forward(input1, input2) warps image input1 by flow
    input2. Only kernel_size=1 (plain bilinear warping, the only size FlowNet2 and vid2vid use) exists."""

    def __init__(self, kernel_size=1, dilation=1, sigma=5, bilinear=True, *, backend="auto"):
        super().__init__()
        if kernel_size != 1:
            raise ValueError(f"kernel_size must be 1 (bilinear warping), got {kernel_size}")
        if not bilinear:
            raise ValueError("bilinear must be True: only bilinear sampling is implemented")
        self.kernel_size = kernel_size
        self.backend = backend

    def forward(self, input1, input2):
        return resample2d(input1, input2, backend=self.backend)
