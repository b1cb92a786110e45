"""The vid2vid discriminators: pix2pixHD's multi-scale PatchGAN (image D) and the temporal discriminators,
one multi-scale PatchGAN per temporal scale, fed n_frames_D frames sampled at stride n_frames_D**scale
plus the ground-truth flows between them."""

import torch
from torch import nn

from .layers import check_norm, norm_layer

# Every conv of the PatchGAN has kernel 4 and padding ceil(3 / 2) = 2, as in pix2pixHD.
_KERNEL, _PAD = 4, 2
_MAX_WIDTH = 512
# The sub-D at pyramid level k has width min(_LEVEL_MAX_WIDTH, ndf * 2**k) (the original's ndf_max).
_LEVEL_MAX_WIDTH = 64
# The temporal D sees flows divided by this, as the original (flows are ~ +-20 px, images in [-1, 1]).
FLOW_SCALE = 20.0


def _check_int(value, name, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


class NLayerDiscriminator(nn.Module):
    """PatchGAN: Conv4 s2 -> LReLU; (n_layers - 1) x [Conv4 s2 -> norm -> LReLU] (width x2, capped at
    512); Conv4 s1 -> norm -> LReLU; Conv4 s1 -> 1 channel. forward(x) returns the n_layers + 2 group
    outputs (the last is the patch prediction) with get_interm_feat, else a one-element list."""

    def __init__(self, input_nc, ndf=64, n_layers=3, norm="batch", get_interm_feat=True):
        super().__init__()
        _check_int(input_nc, "input_nc", 1)
        _check_int(ndf, "ndf", 1)
        _check_int(n_layers, "n_layers", 1)
        check_norm(norm)
        self.input_nc = input_nc
        self.n_layers = n_layers
        self.get_interm_feat = bool(get_interm_feat)

        def conv(c_in, c_out, stride):
            return nn.Conv2d(c_in, c_out, kernel_size=_KERNEL, stride=stride, padding=_PAD)

        groups = [nn.Sequential(conv(input_nc, ndf, 2), nn.LeakyReLU(0.2, True))]
        width = ndf
        for _ in range(1, n_layers):
            prev, width = width, min(width * 2, _MAX_WIDTH)
            groups.append(nn.Sequential(conv(prev, width, 2), norm_layer(norm, width), nn.LeakyReLU(0.2, True)))
        prev, width = width, min(width * 2, _MAX_WIDTH)
        groups.append(nn.Sequential(conv(prev, width, 1), norm_layer(norm, width), nn.LeakyReLU(0.2, True)))
        groups.append(nn.Sequential(conv(width, 1, 1)))
        self.layers = nn.ModuleList(groups)

    def forward(self, x):
        if x.dim() != 4 or x.shape[1] != self.input_nc:
            raise ValueError(f"discriminator input must be B x {self.input_nc} x H x W, got {tuple(x.shape)}")
        outputs = []
        for group in self.layers:
            x = group(x)
            outputs.append(x)
        return outputs if self.get_interm_feat else outputs[-1:]


class MultiscaleDiscriminator(nn.Module):
    """num_D PatchGANs on an image pyramid (AvgPool 3, stride 2, pad 1, count_include_pad=False between
    levels). discriminators[k] runs at level k (0 = full resolution) with width min(64, ndf * 2**k).
    forward(x) -> list over levels (level 0 first) of each PatchGAN's output list."""

    def __init__(self, input_nc, ndf=64, n_layers=3, norm="batch", num_D=2, get_interm_feat=True):
        super().__init__()
        _check_int(num_D, "num_D", 1)
        self.num_D = num_D
        self.n_layers = n_layers
        self.get_interm_feat = bool(get_interm_feat)
        self.discriminators = nn.ModuleList(
            NLayerDiscriminator(input_nc, min(_LEVEL_MAX_WIDTH, ndf * 2 ** k), n_layers, norm, get_interm_feat)
            for k in range(num_D))
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def forward(self, x):
        results = []
        for k, netD in enumerate(self.discriminators):
            if k:
                x = self.downsample(x)
            results.append(netD(x))
        return results


def temporal_frame_indices(n_frames, n_frames_D, scale):
    """Indices (oldest first) of the newest n_frames_D frames taken at stride n_frames_D**scale from a
    sequence of n_frames frames, or None when the sequence is too short."""
    _check_int(n_frames, "n_frames", 0)
    _check_int(n_frames_D, "n_frames_D", 2)
    _check_int(scale, "scale", 0)
    stride = n_frames_D ** scale
    first = n_frames - 1 - stride * (n_frames_D - 1)
    if first < 0:
        return None
    return list(range(first, n_frames, stride))


def sample_temporal_frames(frames, flows, n_frames_D, scale):
    """The temporal D input for temporal scale `scale`: the frames at temporal_frame_indices (oldest
    first) stacked along channels, then flows / 20.

    frames: B x T x C x H x W. flows: B x (n_frames_D - 1) x 2 x H x W, the ground-truth flows between
    consecutive sampled frames (flows[:, k] warps sampled frame k onto sampled frame k + 1), computed on
    the real clip and given unchanged for the real and the fake clip. At scale 0 these are the clip's
    per-frame flows at indices[1:]. Returns B x (C * n_frames_D + 2 * (n_frames_D - 1)) x H x W, or None
    when T is too short for this scale.
    """
    if frames.dim() != 5:
        raise ValueError(f"frames must be B x T x C x H x W, got {tuple(frames.shape)}")
    b, t, c, h, w = frames.shape
    indices = temporal_frame_indices(t, n_frames_D, scale)
    if indices is None:
        return None
    expected = (b, n_frames_D - 1, 2, h, w)
    if flows.dim() != 5 or tuple(flows.shape) != expected:
        raise ValueError(f"flows must be B x (n_frames_D - 1) x 2 x H x W = {expected}, got {tuple(flows.shape)}")
    sampled = frames[:, indices[0]::n_frames_D ** scale]
    return torch.cat([sampled.reshape(b, n_frames_D * c, h, w),
                      flows.reshape(b, 2 * (n_frames_D - 1), h, w) / FLOW_SCALE], dim=1)


class TemporalDiscriminators(nn.Module):
    """One MultiscaleDiscriminator per temporal scale (scales[s]), each on n_frames_D frames plus the
    n_frames_D - 1 flows between them: output_nc * n_frames_D + 2 * (n_frames_D - 1) input channels.
    forward(x, scale) runs scales[scale]; sample(frames, flows, scale) builds its input."""

    def __init__(self, output_nc=3, n_frames_D=3, n_scales_temporal=2, ndf=64, n_layers=3, norm="batch",
                 num_D=2):
        super().__init__()
        _check_int(output_nc, "output_nc", 1)
        _check_int(n_frames_D, "n_frames_D", 2)
        _check_int(n_scales_temporal, "n_scales_temporal", 1)
        self.output_nc = output_nc
        self.n_frames_D = n_frames_D
        self.n_scales_temporal = n_scales_temporal
        self.input_nc = output_nc * n_frames_D + 2 * (n_frames_D - 1)
        self.scales = nn.ModuleList(
            MultiscaleDiscriminator(self.input_nc, ndf, n_layers, norm, num_D, get_interm_feat=True)
            for _ in range(n_scales_temporal))

    def sample(self, frames, flows, scale):
        self._check_scale(scale)
        return sample_temporal_frames(frames, flows, self.n_frames_D, scale)

    def forward(self, x, scale):
        self._check_scale(scale)
        return self.scales[scale](x)

    def _check_scale(self, scale):
        if not isinstance(scale, int) or not 0 <= scale < self.n_scales_temporal:
            raise ValueError(f"scale must be an int in [0, n_scales_temporal={self.n_scales_temporal}), got {scale!r}")
