"""Pure PyTorch implementations: the oracle the kernels are tested against, and the benchmarks' baseline.

`grid_sample_warp` is the plain chain vid2vid runs (a cached base grid, normalisation, grid_sample). The
op functions below implement the whole contract of DESIGN.md §2 on top of it, including the cases
grid_sample cannot express directly:

- an image dimension of size 1 (align_corners=True normalisation divides by size - 1): the image is
  padded to size 2 along it, with replicated edge pixels ("border") or zeros ("zeros"), which samples
  exactly as the contract says;
- a NaN in either flow component: that output pixel is NaN, it sends no gradient to the image or the
  flow, and other gradients follow from the NaN by ordinary arithmetic;
- ±Inf or huge flows: clamped to an offset beyond the image, which samples like any far position
  (the edge pixel for "border", 0 for "zeros", no flow gradient), and never overflows an index.
"""

import functools

import torch
import torch.nn.functional as F

from .spec import Sampling


@functools.lru_cache(maxsize=16)
def _base_grid(height, width, dtype, device):
    """Pixel coordinates (x, y) of every pixel, shape (1, 2, H, W); cached as vid2vid caches its grid."""
    ys = torch.arange(height, dtype=dtype, device=device)
    xs = torch.arange(width, dtype=dtype, device=device)
    grid_y, grid_x = torch.meshgrid(ys, xs, indexing="ij")
    return torch.stack((grid_x, grid_y)).unsqueeze(0)


def grid_sample_warp(img, flow, padding_mode="border"):
    """Backward warp of img by a pixel flow with F.grid_sample (bilinear, align_corners=True).

    Needs H, W > 1 and a finite flow; the op functions below handle the rest.
    """
    _, _, height, width = img.shape
    pos = _base_grid(flow.shape[2], flow.shape[3], flow.dtype, flow.device) + flow
    scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], dtype=flow.dtype, device=flow.device)
    grid = (pos * scale.view(1, 2, 1, 1) - 1).permute(0, 2, 3, 1)
    return F.grid_sample(img, grid, mode="bilinear", padding_mode=padding_mode, align_corners=True)


def flow_warp(img, flow, padding_mode="border"):
    Sampling(padding_mode)
    _, _, height, width = img.shape
    if img.numel() == 0 or flow.numel() == 0:
        return img + 0 * flow.sum()  # empty, and still connected to both inputs for autograd
    # Far enough outside that every bilinear corner is outside the image, small enough to stay exact.
    far = float(2 * (max(height, width) + 2))
    invalid = flow.isnan().any(dim=1, keepdim=True)
    flow = torch.nan_to_num(flow, nan=0.0, posinf=far, neginf=-far).clamp(-far, far)
    pad = (0, int(width == 1), 0, int(height == 1))
    if any(pad):
        img = F.pad(img, pad, mode="replicate" if padding_mode == "border" else "constant")
    out = grid_sample_warp(img, flow, padding_mode)
    return torch.where(invalid, torch.full_like(out, float("nan")), out)


def warp_blend(prev, flow, raw, weight, padding_mode="border"):
    return raw * weight + flow_warp(prev, flow, padding_mode) * (1 - weight)


def masked_warp_l1(src, flow, target, mask, padding_mode="border"):
    return (flow_warp(src, flow, padding_mode) * mask - target * mask).abs().mean()
