"""Pure PyTorch implementations: the oracle the kernels are tested against, and the benchmarks' baseline.

`grid_sample_warp` is the plain chain vid2vid and BasicSR run (a cached base grid, the (size - 1)
normalisation, grid_sample): the definition of the ops (README, "What the ops compute"), and the benchmarks'
baseline. It cannot express every case of the contract; the op functions below compute the same result with
F.grid_sample doing the sampling, and handle the rest themselves:

- Exact positions. The normalisation grid_sample undoes rounds (a zero flow moves a pixel of a float32 image
  by ~1e-5 at width 512), so the op functions pad the image along each axis to 2**k + 1 pixels, with edge
  pixels ("border", "reflection") or zeros ("zeros"): there the normalisation divides by a power of two and
  an integer position reaches grid_sample exactly. The padded pixels sample as the contract's border clip or
  zero padding do. The op functions compute grid_sample's sampling coordinate u themselves (align_corners,
  reflection) and hand it over with align_corners=True.
- An image dimension of size 1: u is the position itself (normalisation by size - 1 divides by 0 there).
- A NaN flow component, and under "reflection" a ±Inf one: that output pixel is NaN, it sends no gradient
  to the image or the flow, and other gradients follow from the NaN by ordinary arithmetic.
- ±Inf and huge flows under "border" and "zeros": clamped to an offset beyond the image, which samples like
  any far position and never overflows an index. Under "reflection" a flow is reduced exactly modulo the
  reflection's period, 2 * (size - 1) pixels, before anything is rounded.
- Precision: positions and sampling in float32 for float16 / bfloat16 inputs (float64 for float64), the
  result cast back to the input dtype, as the kernels do; autocast does not change it (the public functions
  cast the inputs to the autocast dtype before calling these). grid_sample never sees float16 / bfloat16:
  bfloat16 positions above 256 are wrong, and its CPU backward in those dtypes corrupts memory (torch 2.14.1).
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


def grid_sample_warp(img, flow, padding_mode="border", mode="bilinear", align_corners=True):
    """Backward warp of img by a pixel flow with F.grid_sample on the grid 2 * (base + flow) / (size - 1) - 1.

    Needs H, W > 1 and a finite flow, and computes in the inputs' dtype; the op functions below handle the rest.
    """
    _, _, height, width = img.shape
    pos = _base_grid(flow.shape[2], flow.shape[3], flow.dtype, flow.device) + flow
    scale = torch.tensor([2.0 / (width - 1), 2.0 / (height - 1)], dtype=flow.dtype, device=flow.device)
    grid = (pos * scale.view(1, 2, 1, 1) - 1).permute(0, 2, 3, 1)
    return F.grid_sample(img, grid, mode=mode, padding_mode=padding_mode, align_corners=align_corners)


def compute_dtype(dtype):
    """The dtype the reference computes in for inputs of `dtype`: float64 stays, everything else is float32."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _padded_size(size):
    """The smallest 2**k + 1 >= size (2 for size 1): grid_sample's align_corners=True normalisation of a
    dimension of this size divides by 2**k, exactly."""
    return (1 << max(size - 2, 0).bit_length()) + 1


def _sampling_coordinate(d, size, sampling):
    """grid_sample's unnormalised coordinate u along one axis (before the border clip, which grid_sample does),
    for the flow component d (finite) of the pixels at 0 .. size - 1 along the last dimension of d."""
    reflection = sampling.padding_mode == "reflection"
    if reflection:
        if size == 1:
            return d * 0  # reflection into a single pixel: u = 0, derivative 0
        # The reflection repeats every 2 * (size - 1) pixels of position, for both align_corners values. fmod
        # is exact, so a huge flow loses nothing before the position is formed, and every flow of a class
        # modulo the period becomes the same number in [0, period] (d + period rounds the exact value).
        period = 2 * (size - 1)
        d = torch.fmod(d, period)
        d = torch.where(d < 0, d + period, d)
    pos = torch.arange(size, dtype=d.dtype, device=d.device) + d
    if sampling.align_corners or size == 1:
        u = pos
    else:
        u = pos * size / (size - 1) - 0.5  # pos * size first: exact where u is a half-integer
    if reflection:
        low, span = (0.0, size - 1) if sampling.align_corners else (-0.5, size)
        r = torch.fmod(u - low, 2 * span)  # u - low >= 0: d is in [0, period]
        u = torch.where(r > span, 2 * span - r, r) + low
    return u


def _warp(img, flow, sampling):
    """flow_warp in the compute dtype of img (the result is not cast back)."""
    dtype = compute_dtype(img.dtype)
    img, flow = img.to(dtype), flow.to(dtype)
    if img.numel() == 0 or flow.numel() == 0:
        return img + 0 * flow.sum()  # empty, and still connected to both inputs for autograd
    _, _, height, width = img.shape
    invalid = flow.isnan()
    if sampling.padding_mode == "reflection":
        invalid |= flow.isinf()
    invalid = invalid.any(dim=1, keepdim=True)
    flow = torch.where(invalid, 0.0, flow)
    if sampling.padding_mode != "reflection":
        # Far enough outside that every corner is outside the image, small enough to stay exact.
        far = 2.0 * (max(height, width) + 2)
        flow = flow.clamp(-far, far)
    u_x = _sampling_coordinate(flow[:, 0], width, sampling)
    u_y = _sampling_coordinate(flow[:, 1].transpose(1, 2), height, sampling).transpose(1, 2)
    padded_h, padded_w = _padded_size(height), _padded_size(width)
    zeros = sampling.padding_mode == "zeros"
    img = F.pad(img, (0, padded_w - width, 0, padded_h - height), mode="constant" if zeros else "replicate")
    grid = torch.stack((u_x / ((padded_w - 1) / 2) - 1, u_y / ((padded_h - 1) / 2) - 1), dim=-1)
    out = F.grid_sample(img, grid, mode=sampling.mode, padding_mode="zeros" if zeros else "border",
                        align_corners=True)
    return torch.where(invalid, torch.full_like(out, float("nan")), out)


def flow_warp(img, flow, padding_mode="border", mode="bilinear", align_corners=True):
    return _warp(img, flow, Sampling(padding_mode, mode, align_corners)).to(img.dtype)


def warp_blend(prev, flow, raw, weight, padding_mode="border", mode="bilinear", align_corners=True):
    warped = _warp(prev, flow, Sampling(padding_mode, mode, align_corners))
    raw_c, weight_c = raw.to(warped.dtype), weight.to(warped.dtype)
    return (raw_c * weight_c + warped * (1 - weight_c)).to(raw.dtype)


def masked_warp_l1(src, flow, target, mask, padding_mode="border", mode="bilinear", align_corners=True):
    warped = _warp(src, flow, Sampling(padding_mode, mode, align_corners))
    target_c, mask_c = target.to(warped.dtype), mask.to(warped.dtype)
    return (warped * mask_c - target_c * mask_c).abs().mean().to(src.dtype)
