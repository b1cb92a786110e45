"""The fused ops: flow_warp / resample2d, warp_blend and masked_warp_l1, with their nn.Module wrappers.

Semantics (DESIGN.md §2): tensors are (B, C, H, W), flow is (B, 2, H, W) in pixels (dx, dy) (or (B, H, W, 2)
with flow_layout="bhwc"), warping is backward (output at (x, y) samples the input at (x + dx, y + dy)), as
grid_sample samples it with mode, padding_mode and align_corners (default bilinear, border, True).
"""

from .backends import available_backends
from .flow_warp import FlowWarp, Resample2d, flow_warp, resample2d
from .masked_warp_l1 import MaskedWarpL1Loss, masked_warp_l1
from .warp_blend import WarpBlend, warp_blend

__all__ = [
    "FlowWarp",
    "MaskedWarpL1Loss",
    "Resample2d",
    "WarpBlend",
    "available_backends",
    "flow_warp",
    "masked_warp_l1",
    "resample2d",
    "warp_blend",
]
