"""masked_warp_l1: vid2vid's MaskedL1 loss on a warped image, fused with the warp."""

from .frontend import OpModule, run_op
from .spec import MASKED_WARP_L1, Sampling


def masked_warp_l1(src, flow, target, mask, padding_mode="border", *, mode="bilinear", align_corners=True,
                   flow_layout="bchw", backend="auto"):
    """``mean(|flow_warp(src, flow) * mask - target * mask|)`` over all B*C*H*W elements, as a 0-d tensor.

    src and target are (B, C, H, W), mask is (B, 1, H, W) (broadcast over channels) or (B, C, H, W); any of
    them with batch 1 broadcasts. This is vid2vid's flow-warp and temporal-consistency loss. Differentiable
    with respect to all four tensors. See flow_warp for the flow and the sampling options.
    """
    sampling = Sampling(padding_mode, mode, align_corners)
    return run_op(MASKED_WARP_L1, (src, flow, target, mask), sampling, flow_layout, backend)


class MaskedWarpL1Loss(OpModule):
    """nn.Module form of masked_warp_l1: MaskedWarpL1Loss(padding_mode, *, mode, align_corners, flow_layout,
    backend), forward(src, flow, target, mask)."""

    def forward(self, src, flow, target, mask):
        return masked_warp_l1(src, flow, target, mask, **self.options())
