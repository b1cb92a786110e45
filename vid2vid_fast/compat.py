"""Drop-in replacements for the warping calls other projects define: change one import line.

- ``flow_warp(x, flow, interp_mode, padding_mode, align_corners)``: BasicSR's ``basicsr.archs.arch_util`` and
  mmagic's ``mmagic.models.utils`` (mmagic names the third argument ``interpolation``);
- ``Resample2d(kernel_size=1, bilinear=True)``: FlowNet2's and imaginaire's module;
- ``resample(image, flow)``: vid2vid's and imaginaire's function.

Each computes what its original computes (README, "Switching from BasicSR, mmagic, FlowNet2 or vid2vid", lists
the few places where they differ and why) with the fused kernels, forward and backward.
"""

import torch

from .ops.flow_warp import flow_warp as _flow_warp
from .ops.frontend import OpModule
from .ops.reference import compute_dtype
from .ops.spec import MODES


def flow_warp(x, flow, interp_mode="bilinear", padding_mode="zeros", align_corners=True, *, interpolation=None,
              backend="auto"):
    """BasicSR's / mmagic's flow_warp: x (N, C, H, W) sampled at (x + dx, y + dy), flow (N, H, W, 2) in pixels.

    interp_mode (mmagic: interpolation) "bilinear" or "nearest"; padding_mode "zeros", "border" or
    "reflection"; the grid is normalised by (size - 1) for either align_corners, as theirs is. The flow is cast
    to x's dtype (mmagic casts its grid so). An axis of size 1 samples as theirs does (they divide by
    max(size - 1, 1)): with align_corners=True always the one pixel, with False the position minus 0.5.
    """
    if interpolation is not None:
        if interp_mode != "bilinear":
            raise TypeError("flow_warp got both interp_mode and interpolation (mmagic's name for it); pass one")
        interp_mode = interpolation
    if interp_mode not in MODES:
        raise ValueError(f"interp_mode must be one of {MODES}, got {interp_mode!r}")
    if not isinstance(x, torch.Tensor) or not isinstance(flow, torch.Tensor):
        raise TypeError(f"x and flow must be tensors, got {type(x).__name__} and {type(flow).__name__}")
    if x.shape[-2:] != flow.shape[1:3]:
        raise ValueError(f"the spatial sizes of x {tuple(x.shape[-2:])} and flow {tuple(flow.shape[1:3])} are not "
                         "the same: x must be (N, C, H, W) and flow (N, H, W, 2)")
    if flow.dim() != 4 or flow.shape[3] != 2:
        raise ValueError(f"flow must be (N, H, W, 2), got shape {tuple(flow.shape)}")
    flow = _size_one_axes_as_basicsr(flow.to(x.dtype), x.shape[2], x.shape[3], align_corners)
    return _flow_warp(x, flow, padding_mode, mode=interp_mode, align_corners=align_corners, flow_layout="bhwc",
                      backend=backend)


def _size_one_axes_as_basicsr(flow, height, width, align_corners):
    """flow (N, H, W, 2) changed along axes of size 1 so that our rule there (the sampling coordinate is the
    position) gives BasicSR's: its grid divides by max(size - 1, 1), which grid_sample maps to coordinate 0
    (align_corners=True) or to the position minus 0.5 (align_corners=False)."""
    if height > 1 and width > 1:
        return flow
    components = [flow[..., 0], flow[..., 1]]
    for axis, size in ((0, width), (1, height)):
        if size == 1:
            components[axis] = components[axis] * 0 if align_corners else components[axis] - 0.5
    return torch.stack(components, dim=-1)


def resample(image, flow, *, backend="auto"):
    """vid2vid's and imaginaire's resample: image (N, C, H, W) warped by flow (N, 2, H, W) in pixels, bilinear,
    border padding, align_corners=True."""
    return _flow_warp(image, flow, "border", backend=backend)


class Resample2d(OpModule):
    """FlowNet2's and imaginaire's Resample2d(kernel_size=1, bilinear=True): forward(input1, input2) warps the
    image input1 (N, C, H, W) by the flow input2 (N, 2, H, W) in pixels, with border padding; bilinear=False
    samples the nearest pixel.

    flownet2_edge_gradient (default False): the flow gradient where a sample position is exactly 0 along an
    axis (the image's first column or row), where the derivative has a kink. False: 0, grid_sample's and the
    kernels' choice. True: FlowNet2's CUDA kernel's, the derivative from inside the image
    (img[..., 1] - img[..., 0] along that axis, interpolated along the other), added by an exact correction
    in the backward pass. Only for bilinear sampling.
    """

    def __init__(self, kernel_size=1, bilinear=True, *, flownet2_edge_gradient=False, backend="auto"):
        if kernel_size != 1:
            raise ValueError(f"kernel_size must be 1 (plain warping, the size FlowNet2 and vid2vid use), "
                             f"got {kernel_size!r}")
        if not isinstance(bilinear, bool):
            raise TypeError(f"bilinear must be True (bilinear) or False (nearest), got {bilinear!r}")
        if flownet2_edge_gradient and not bilinear:
            raise ValueError("flownet2_edge_gradient=True needs bilinear=True: nearest sampling has no flow gradient")
        super().__init__("border", mode="bilinear" if bilinear else "nearest", backend=backend)
        self.kernel_size = kernel_size
        self.bilinear = bilinear
        self.flownet2_edge_gradient = flownet2_edge_gradient

    def forward(self, input1, input2):
        out = _flow_warp(input1, input2, **self.options())
        if not self.flownet2_edge_gradient:
            return out
        batch = out.shape[0]
        return _FlowNet2EdgeGradient.apply(out, input1.expand(batch, -1, -1, -1), input2.expand(batch, -1, -1, -1))

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, bilinear={self.bilinear}, "
                f"flownet2_edge_gradient={self.flownet2_edge_gradient}, {super().extra_repr()}")


class _FlowNet2EdgeGradient(torch.autograd.Function):
    """Passes the warped image `out` through and adds, in the backward pass, the flow gradient FlowNet2 has and
    the border-clipped warp has not: at a sample position exactly 0 along an axis."""

    @staticmethod
    def forward(ctx, out, img, flow):
        ctx.save_for_backward(img, flow)
        return out.clone()  # not `out` itself, which autograd would make a view the caller cannot modify in place

    @staticmethod
    def backward(ctx, grad_out):
        img, flow = ctx.saved_tensors
        grad_flow = edge_flow_gradient(grad_out, img, flow) if ctx.needs_input_grad[2] else None
        return grad_out, None, grad_flow


def edge_flow_gradient(grad_out, img, flow):
    """FlowNet2's flow gradient minus the border-clipped warp's, for img (N, C, H, W) and flow (N, 2, H, W): at a
    sample position exactly 0 along an axis (a flow of exactly minus the pixel's coordinate), FlowNet2 takes
    the one-sided derivative from inside the image, where the clip's gate gives 0. Zero elsewhere."""
    dtype = compute_dtype(flow.dtype)
    grad_out, img, flow_c = grad_out.to(dtype), img.to(dtype), flow.to(dtype)
    grad = torch.zeros(flow.shape, dtype=dtype, device=flow.device)
    sizes = (img.shape[3], img.shape[2])  # along x (flow channel 0), along y (flow channel 1)
    for axis in (0, 1):
        size, other_size = sizes[axis], sizes[1 - axis]
        if size == 1:
            continue  # one pixel: both FlowNet2 corners are that pixel, the derivative is 0
        coords = torch.arange(size, dtype=dtype, device=flow.device)
        coords = coords.view(1, size) if axis == 0 else coords.view(size, 1)
        other = flow_c[:, 1 - axis]
        at_zero = (flow_c[:, axis] == -coords) & ~other.isnan()  # a NaN pixel sends no gradient
        b, y, x = at_zero.nonzero(as_tuple=True)
        if b.numel() == 0:
            continue
        # The other axis's position, clamped just outside the image, where FlowNet2's clamped corners both
        # sit on the edge pixel whatever the fraction (a far or infinite position too).
        pos = ((y if axis == 0 else x).to(dtype) + other[b, y, x]).clamp(-1, other_size)
        low = pos.floor()
        t = (pos - low).unsqueeze(1)
        i0 = low.clamp(0, other_size - 1).long()
        i1 = (low + 1).clamp(0, other_size - 1).long()
        if axis == 0:
            step = img[:, :, :, 1] - img[:, :, :, 0]  # (N, C, H): the derivative along x at column 0
        else:
            step = img[:, :, 1, :] - img[:, :, 0, :]  # (N, C, W): along y at row 0
        derivative = step[b, :, i0] * (1 - t) + step[b, :, i1] * t  # (pixels, C)
        grad[b, axis, y, x] = (derivative * grad_out[b, :, y, x]).sum(1)
    return grad.to(flow.dtype)
