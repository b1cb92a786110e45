"""flow_warp: backward warping of an image by a pixel flow; resample2d: FlowNet2's name for it."""

from .frontend import OpModule, run_op
from .spec import FLOW_WARP, Sampling


def flow_warp(img, flow, padding_mode="border", *, mode="bilinear", align_corners=True, flow_layout="bchw",
              backend="auto"):
    """Samples img (B, C, H, W) at (x + dx, y + dy) for every pixel (x, y).

    flow is (B, 2, H, W) in pixels, channel 0 = dx (along W), channel 1 = dy (along H); with
    flow_layout="bhwc" it is (B, H, W, 2), as BasicSR and mmagic write it, and is read in place. A flow or
    image with batch 1 broadcasts over the other's batch.

    The result is ``F.grid_sample(img, grid, mode, padding_mode, align_corners)`` with
    ``grid = 2 * (base + flow) / (size - 1) - 1``, the grid every flow-warping library builds:
    mode "bilinear" or "nearest"; padding_mode "border" (the nearest edge pixel, FlowNet2's Resample2d),
    "zeros" (pixels outside contribute 0) or "reflection"; align_corners=True puts pixel centres at integer
    positions, so a zero flow is the identity. A NaN flow gives a NaN output pixel; ±Inf flows sample like
    far positions (under "reflection" they give NaN, like NaN). Differentiable with respect to img and flow.
    backend: "auto", "reference", "cpu", "cuda" or "triton". README, "What the ops compute", has the details.
    """
    sampling = Sampling(padding_mode, mode, align_corners)
    return run_op(FLOW_WARP, (img, flow), sampling, flow_layout, backend)


def resample2d(img, flow, *, backend="auto"):
    """vid2vid's Resample2d(kernel_size=1) / resample(): flow_warp with border padding, bilinear."""
    return flow_warp(img, flow, "border", backend=backend)


class FlowWarp(OpModule):
    """nn.Module form of flow_warp: FlowWarp(padding_mode, *, mode, align_corners, flow_layout, backend),
    forward(img, flow)."""

    def forward(self, img, flow):
        return flow_warp(img, flow, **self.options())


class Resample2d(OpModule):
    """A bilinear, border-padded warp with FlowNet2's module shape: forward(input1, input2) warps image input1
    by flow input2. Only kernel_size=1 (plain warping, the only size FlowNet2 and vid2vid use) exists. For
    FlowNet2's exact constructor, Resample2d(kernel_size=1, bilinear=True), use vid2vid_fast.compat.Resample2d."""

    def __init__(self, kernel_size=1, *extra, backend="auto"):
        if extra:
            raise TypeError(
                f"Resample2d takes kernel_size as its only positional argument, got {1 + len(extra)}: for FlowNet2's "
                "Resample2d(kernel_size, bilinear) use vid2vid_fast.compat.Resample2d")
        if kernel_size != 1:
            raise ValueError(f"kernel_size must be 1 (bilinear warping), got {kernel_size}")
        super().__init__("border", backend=backend)
        self.kernel_size = kernel_size

    def forward(self, input1, input2):
        return flow_warp(input1, input2, **self.options())
