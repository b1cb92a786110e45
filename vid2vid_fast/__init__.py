"""vid2vid_fast: fused flow-warping kernels and a fast vid2vid for PyTorch."""

__version__ = "0.1.0"

from . import ops  # noqa: E402
from .ops import *  # noqa: E402,F401,F403  (the op API, re-exported at the top level)

__all__ = list(ops.__all__)
