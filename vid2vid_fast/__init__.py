"""vid2vid_fast: fused flow-warping kernels and a fast vid2vid for PyTorch."""

__version__ = "0.1.0"

from .ops import (  # noqa: E402
    FlowWarp,
    MaskedWarpL1Loss,
    Resample2d,
    WarpBlend,
    available_backends,
    flow_warp,
    masked_warp_l1,
    resample2d,
    warp_blend,
)

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
