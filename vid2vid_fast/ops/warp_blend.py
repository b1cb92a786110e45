"""warp_blend: vid2vid's composite step, raw * weight + flow_warp(prev, flow) * (1 - weight), in one pass."""

from .frontend import OpModule, run_op
from .spec import WARP_BLEND, Sampling


def warp_blend(prev, flow, raw, weight, padding_mode="border", *, mode="bilinear", align_corners=True,
               flow_layout="bchw", backend="auto"):
    """Blends the hallucinated frame raw (B, C, H, W) with prev (B, C, H, W) warped by flow (B, 2, H, W):
    ``raw * weight + flow_warp(prev, flow) * (1 - weight)``, weight (B, 1, H, W) broadcast over channels.

    The weight multiplies raw, as in vid2vid's models/networks.py. Differentiable with respect to all
    four tensors; any of them with batch 1 broadcasts. See flow_warp for the flow and the sampling options.
    """
    sampling = Sampling(padding_mode, mode, align_corners)
    return run_op(WARP_BLEND, (prev, flow, raw, weight), sampling, flow_layout, backend)


class WarpBlend(OpModule):
    """nn.Module form of warp_blend: WarpBlend(padding_mode, *, mode, align_corners, flow_layout, backend),
    forward(prev, flow, raw, weight)."""

    def forward(self, prev, flow, raw, weight):
        return warp_blend(prev, flow, raw, weight, **self.options())
