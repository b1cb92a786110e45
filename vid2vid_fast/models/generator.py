"""The vid2vid generators: CompositeGenerator (coarsest scale), CompositeLocalGenerator (finer scales) and
Vid2VidGenerator, the coarse-to-fine wrapper; the layers are those of NVIDIA/vid2vid's models/networks.py.

Both scale modules share one forward (_CompositeBase): encode labels and previous frames, sum; an image
branch makes img_raw; a flow branch makes flow and weight; warp_blend composites raw with the warped last
frame; the optional foreground branch pastes its image inside the foreground mask.
"""

from typing import NamedTuple, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from ..ops.warp_blend import warp_blend
from .layers import check_norm, conv7_block, down_block, head, resnet_blocks, up_block
from .phase_conv import phase_conv2d

# How the output heads run, all with the same parameters and outputs: "apart" as the original's modules;
# "stacked" runs the flow and weight heads (same features) as one convolution of their stacked weights;
# "phased" is stacked, and every head's convolution runs over its 2x2 output phases (phase_conv.py).
HEAD_FORMS = ("apart", "stacked", "phased")


class GeneratorOutput(NamedTuple):
    """What one generator scale returns. flow and weight are None for a raw-only (first) frame;
    img_feat / flow_feat / fg_feat feed the next finer scale; img_fg and mask are set with the foreground
    model; img_final_pyramid (Vid2VidGenerator only) holds every scale's img_final, finest first, so a
    caller can keep each scale's own previous frames as the original did."""

    img_final: torch.Tensor
    img_raw: torch.Tensor
    flow: Optional[torch.Tensor]
    weight: Optional[torch.Tensor]
    img_feat: torch.Tensor
    flow_feat: Optional[torch.Tensor] = None
    fg_feat: Optional[torch.Tensor] = None
    img_fg: Optional[torch.Tensor] = None
    mask: Optional[torch.Tensor] = None
    img_final_pyramid: Optional[Tuple[torch.Tensor, ...]] = None


def _check_positive(value, name, minimum=1):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(f"{name} must be an int >= {minimum}, got {value!r}")


def _fg_width(ngf, n_downsampling):
    # The original narrows the foreground branch only for deep (> 2 downsamples) generators.
    return ngf // 2 if n_downsampling > 2 else ngf


class _CompositeBase(nn.Module):
    """The forward shared by both scales; subclasses build the layers and say how coarse features enter."""

    def _init_common(self, input_nc, output_nc, prev_output_nc, ngf, n_downsampling, norm, use_fg_model,
                     backend, heads):
        _check_positive(input_nc, "input_nc")
        _check_positive(output_nc, "output_nc")
        _check_positive(prev_output_nc, "prev_output_nc")
        _check_positive(ngf, "ngf")
        _check_positive(n_downsampling, "n_downsampling", 0)
        check_norm(norm)
        if prev_output_nc < output_nc:
            raise ValueError(f"prev_output_nc ({prev_output_nc}) must hold at least one previous frame of "
                             f"output_nc ({output_nc}) channels")
        self.input_nc = input_nc
        self.output_nc = output_nc
        self.prev_output_nc = prev_output_nc
        self.use_fg_model = bool(use_fg_model)
        self.backend = backend
        if heads not in HEAD_FORMS:
            raise ValueError(f"heads must be one of {HEAD_FORMS}, got {heads!r}")
        self.heads = heads

    def _check_inputs(self, labels, prev, mask, coarse):
        if labels.dim() != 4 or labels.shape[1] != self.input_nc:
            raise ValueError(f"labels must be B x {self.input_nc} x H x W, got {tuple(labels.shape)}")
        if prev.dim() != 4 or prev.shape[1] != self.prev_output_nc:
            raise ValueError(f"prev must be B x {self.prev_output_nc} x H x W, got {tuple(prev.shape)}")
        if prev.shape[0] != labels.shape[0] or prev.shape[2:] != labels.shape[2:]:
            raise ValueError(f"prev {tuple(prev.shape)} and labels {tuple(labels.shape)} must share B, H, W")
        multiple = self.size_multiple
        if labels.shape[2] % multiple or labels.shape[3] % multiple:
            raise ValueError(f"labels H and W must be multiples of {multiple} at this scale, got "
                             f"{tuple(labels.shape[2:])}")
        if self.use_fg_model:
            if mask is None:
                raise ValueError("mask (B x 1 x H x W foreground mask) is required with use_fg_model=True")
            if mask.dim() != 4 or mask.shape[1] != 1 or mask.shape[2:] != labels.shape[2:]:
                raise ValueError(f"mask must be B x 1 x H x W matching labels, got {tuple(mask.shape)}")
        if self.needs_coarse and coarse is None:
            raise ValueError("coarse (the coarser scale's GeneratorOutput) is required at a local scale")

    def forward(self, labels, prev, mask=None, coarse=None, use_raw_only=False):
        """labels: B x input_nc x H x W; prev: B x prev_output_nc x H x W (previous frames, oldest first;
        the last output_nc channels are frame t-1); mask: B x 1 x H x W foreground mask (fg model only);
        coarse: the coarser scale's GeneratorOutput (local scales only); use_raw_only: skip the flow
        branch and return img_raw as img_final (a first frame with no real previous frames)."""
        self._check_inputs(labels, prev, mask, coarse)
        shared = self.label_encoder(labels) + self.prev_encoder(prev)
        img_feat = self._image_features(shared, coarse)
        img_raw = self._head(self.img_head, img_feat)

        flow = weight = flow_feat = None
        if use_raw_only:
            img_final = img_raw
        else:
            flow_feat = self._flow_features(shared, coarse)
            flow, weight = self._flow_and_weight(flow_feat)
            last = prev[:, self.prev_output_nc - self.output_nc:]
            img_final = warp_blend(last, flow, img_raw, weight, "border", backend=self.backend)

        fg_feat = img_fg = None
        if self.use_fg_model:
            fg_feat = self._fg_features(labels, coarse)
            img_fg = self._head(self.fg_head, fg_feat)
            # Under autocast the images are bf16/fp16 while the mask comes from float labels; blending in
            # the images' dtype keeps the outputs in it.
            m = mask.to(img_fg.dtype)
            img_final = img_fg * m + img_final * (1 - m)
            img_raw = img_fg * m + img_raw * (1 - m)
        return GeneratorOutput(img_final, img_raw, flow, weight, img_feat, flow_feat, fg_feat, img_fg,
                               mask if self.use_fg_model else None)


    def _head(self, head, features):
        """head(features) for a head made by layers.head (pad, conv[, activation])."""
        if self.heads != "phased":
            return head(features)
        out = phase_conv2d(head[0](features), head[1].weight, head[1].bias)
        return head[2](out) if len(head) > 2 else out

    def _flow_and_weight(self, flow_feat):
        if self.heads == "apart":
            return self.flow_head(flow_feat) * self.flow_multiplier, self.weight_head(flow_feat)
        # Both heads read the same padded features: one convolution with their weights stacked gives their
        # three output channels for about the time of one head (oneDNN's CPU kernels compute a 1-3 channel
        # output as 16 channels).
        pad, flow_conv = self.flow_head[0], self.flow_head[1]
        weight_conv, sigmoid = self.weight_head[1], self.weight_head[2]
        conv = phase_conv2d if self.heads == "phased" else F.conv2d
        out = conv(pad(flow_feat), torch.cat([flow_conv.weight, weight_conv.weight]),
                   torch.cat([flow_conv.bias, weight_conv.bias]))
        return out[:, :2] * self.flow_multiplier, sigmoid(out[:, 2:])


class CompositeGenerator(_CompositeBase):
    """The coarsest scale (width ngf). Argument names as the original's; its opt, no_flow and norm_layer
    are gone, norm ("batch" or "instance") takes the place of norm_layer before use_fg_model; backend is
    passed to warp_blend; heads is one of HEAD_FORMS (same parameters and outputs, less time on the CPU)."""

    needs_coarse = False
    flow_multiplier = 20.0

    def __init__(self, input_nc, output_nc, prev_output_nc, ngf, n_downsampling, n_blocks, norm="batch",
                 use_fg_model=False, *, backend="auto", heads="apart"):
        super().__init__()
        self._init_common(input_nc, output_nc, prev_output_nc, ngf, n_downsampling, norm, use_fg_model,
                          backend, heads)
        _check_positive(n_blocks, "n_blocks", 0)
        self.size_multiple = 2 ** n_downsampling
        deep = ngf * 2 ** n_downsampling
        # The encoders keep the first half (rounded up) of the ResnetBlocks; both branches get the rest.
        n_enc, n_dec = n_blocks - n_blocks // 2, n_blocks // 2

        def encoder(in_channels):
            layers = conv7_block(in_channels, ngf, norm)
            for i in range(n_downsampling):
                layers += down_block(ngf * 2 ** i, ngf * 2 ** (i + 1), norm)
            return nn.Sequential(*layers, *resnet_blocks(deep, n_enc, norm))

        def upsampler(width):
            layers = []
            for i in range(n_downsampling, 0, -1):
                layers += up_block(width * 2 ** i, width * 2 ** (i - 1), norm)
            return nn.Sequential(*layers)

        self.label_encoder = encoder(input_nc)
        self.prev_encoder = encoder(prev_output_nc)
        self.img_res = nn.Sequential(*resnet_blocks(deep, n_dec, norm))
        self.img_up = upsampler(ngf)
        self.img_head = head(ngf, output_nc, nn.Tanh())
        self.flow_res = nn.Sequential(*resnet_blocks(deep, n_dec, norm))
        self.flow_up = upsampler(ngf)
        self.flow_head = head(ngf, 2)
        self.weight_head = head(ngf, 1, nn.Sigmoid())
        if self.use_fg_model:
            width = _fg_width(ngf, n_downsampling)
            layers = conv7_block(input_nc, width, norm)
            for i in range(n_downsampling):
                layers += down_block(width * 2 ** i, width * 2 ** (i + 1), norm)
            self.fg_down = nn.Sequential(*layers)
            self.fg_res = nn.Sequential(*resnet_blocks(width * 2 ** n_downsampling, n_blocks, norm))
            self.fg_up = upsampler(width)
            self.fg_head = head(width, output_nc, nn.Tanh())

    def _image_features(self, shared, coarse):
        return self.img_up(self.img_res(shared))

    def _flow_features(self, shared, coarse):
        return self.flow_up(self.flow_res(shared))

    def _fg_features(self, labels, coarse):
        return self.fg_up(self.fg_res(self.fg_down(labels)))


class CompositeLocalGenerator(_CompositeBase):
    """A finer scale (width ngf, the caller passes ngf // 2**scale): one downsample, the coarser scale's
    features added, n_blocks_local ResnetBlocks, one upsample. Flow is scaled by 20 * 2**scale."""

    needs_coarse = True

    def __init__(self, input_nc, output_nc, prev_output_nc, ngf, n_downsampling, n_blocks_local,
                 norm="batch", use_fg_model=False, scale=1, *, backend="auto", heads="apart"):
        super().__init__()
        self._init_common(input_nc, output_nc, prev_output_nc, ngf, n_downsampling, norm, use_fg_model,
                          backend, heads)
        _check_positive(n_blocks_local, "n_blocks_local", 0)
        _check_positive(scale, "scale", 1)
        self.scale = scale
        self.size_multiple = 2
        self.flow_multiplier = 20.0 * 2 ** scale

        def encoder(in_channels, width):
            return nn.Sequential(*conv7_block(in_channels, width, norm), *down_block(width, 2 * width, norm))

        def decoder(width):
            return nn.Sequential(*resnet_blocks(2 * width, n_blocks_local, norm), *up_block(2 * width, width, norm))

        self.label_encoder = encoder(input_nc, ngf)
        self.prev_encoder = encoder(prev_output_nc, ngf)
        self.img_up = decoder(ngf)
        self.img_head = head(ngf, output_nc, nn.Tanh())
        self.flow_up = decoder(ngf)
        self.flow_head = head(ngf, 2)
        self.weight_head = head(ngf, 1, nn.Sigmoid())
        if self.use_fg_model:
            width = _fg_width(ngf, n_downsampling)
            self.fg_down = encoder(input_nc, width)
            self.fg_up = decoder(width)
            self.fg_head = head(width, output_nc, nn.Tanh())

    def _image_features(self, shared, coarse):
        return self.img_up(shared + coarse.img_feat)

    def _flow_features(self, shared, coarse):
        if coarse.flow_feat is None:
            raise ValueError("coarse.flow_feat is None: the coarser scale ran raw-only but this one did not")
        return self.flow_up(shared + coarse.flow_feat)

    def _fg_features(self, labels, coarse):
        return self.fg_up(self.fg_down(labels) + coarse.fg_feat)


class Vid2VidGenerator(nn.Module):
    """The coarse-to-fine vid2vid generator: scales[0] is the CompositeGenerator at the coarsest pyramid
    level (the original's netG0), scales[s] a CompositeLocalGenerator of width ngf // 2**s (netG{s}).

    forward(labels, prev_images) -> GeneratorOutput of the finest scale:
    labels: B x (n_frames_G * label_nc) x H x W, frames t-n_frames_G+1 .. t, oldest first.
    prev_images: B x ((n_frames_G - 1) * output_nc) x H x W, the previous frames oldest first, which is
    downsampled for the coarser scales; or a sequence of n_scales_spatial such tensors, finest first, one
    per pyramid level (each scale's own earlier outputs, as the original kept them); or None for a first
    frame without real previous frames: the previous-frame encoder sees zeros and every scale is
    raw-only (flow and weight None), as the original's no_first_img.
    use_raw_only: None means `prev_images is None`; True makes a frame raw-only with given previous
    frames (the original treats every frame of a sequence's first chunk so with no_first_img).
    """

    def __init__(self, label_nc, output_nc=3, n_frames_G=3, ngf=128, n_downsampling=3, n_blocks=9,
                 n_blocks_local=3, n_scales_spatial=1, norm="batch", use_fg_model=False, fg_labels=(),
                 *, backend="auto", heads="apart"):
        super().__init__()
        _check_positive(label_nc, "label_nc")
        _check_positive(output_nc, "output_nc")
        _check_positive(n_frames_G, "n_frames_G", 2)
        _check_positive(n_scales_spatial, "n_scales_spatial")
        if ngf % 2 ** (n_scales_spatial - 1):
            raise ValueError(f"ngf ({ngf}) must be divisible by 2**(n_scales_spatial - 1) = "
                             f"{2 ** (n_scales_spatial - 1)}")
        fg_labels = tuple(fg_labels)
        if use_fg_model:
            if not fg_labels:
                raise ValueError("fg_labels must name at least one label channel with use_fg_model=True")
            for c in fg_labels:
                if not isinstance(c, int) or not 0 <= c < label_nc:
                    raise ValueError(f"fg_labels entries must be ints in [0, label_nc={label_nc}), got {c!r}")
        self.label_nc = label_nc
        self.output_nc = output_nc
        self.n_frames_G = n_frames_G
        self.n_scales_spatial = n_scales_spatial
        self.use_fg_model = bool(use_fg_model)
        # Foreground channels of the newest frame (t) inside the stacked labels.
        self.fg_channels = tuple((n_frames_G - 1) * label_nc + c for c in fg_labels)
        self.coarse_frozen = False
        input_nc = label_nc * n_frames_G
        prev_output_nc = (n_frames_G - 1) * output_nc
        scales = [CompositeGenerator(input_nc, output_nc, prev_output_nc, ngf, n_downsampling, n_blocks, norm,
                                     use_fg_model, backend=backend, heads=heads)]
        for s in range(1, n_scales_spatial):
            scales.append(CompositeLocalGenerator(input_nc, output_nc, prev_output_nc, ngf // 2 ** s,
                                                  n_downsampling, n_blocks_local, norm, use_fg_model, scale=s,
                                                  backend=backend, heads=heads))
        self.scales = nn.ModuleList(scales)
        self.size_multiple = 2 ** (n_downsampling + n_scales_spatial - 1)
        self.downsample = nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False)

    def freeze_coarse_scales(self, frozen=True):
        """Trains only the finest scale while frozen (the original's niter_fix_global): the coarser scales'
        parameters stop requiring gradients. Call with False to train all scales again."""
        self.coarse_frozen = bool(frozen)
        for module in self.scales[:-1]:
            for p in module.parameters():
                p.requires_grad_(not frozen)
        return self

    def pyramid(self, x):
        """[x, x/2, x/4, ...] with n_scales_spatial levels, finest first (AvgPool 3, stride 2, pad 1)."""
        levels = [x]
        for _ in range(1, self.n_scales_spatial):
            levels.append(self.downsample(levels[-1]))
        return levels

    def foreground_mask(self, labels):
        """clamp(sum of the newest frame's foreground label channels, 0, 1): B x 1 x H x W."""
        mask = labels[:, self.fg_channels[0]:self.fg_channels[0] + 1]
        for c in self.fg_channels[1:]:
            mask = mask + labels[:, c:c + 1]
        return mask.clamp(0, 1)

    def _prev_pyramid(self, prev_images, labels):
        b, _, h, w = labels.shape
        prev_nc = (self.n_frames_G - 1) * self.output_nc
        if prev_images is None:
            return self.pyramid(labels.new_zeros(b, prev_nc, h, w))
        if isinstance(prev_images, torch.Tensor):
            if prev_images.dim() != 4 or tuple(prev_images.shape) != (b, prev_nc, h, w):
                raise ValueError(f"prev_images must be B x (n_frames_G - 1) * output_nc x H x W = "
                                 f"{(b, prev_nc, h, w)}, got {tuple(prev_images.shape)}")
            return self.pyramid(prev_images)
        levels = list(prev_images)
        if len(levels) != self.n_scales_spatial:
            raise ValueError(f"prev_images as a sequence must hold n_scales_spatial={self.n_scales_spatial} "
                             f"tensors (finest first), got {len(levels)}")
        for i, level in enumerate(levels):
            expected = (b, prev_nc, h // 2 ** i, w // 2 ** i)
            if tuple(level.shape) != expected:
                raise ValueError(f"prev_images[{i}] must have shape {expected}, got {tuple(level.shape)}")
        return levels

    def forward(self, labels, prev_images, use_raw_only=None):
        expected_c = self.n_frames_G * self.label_nc
        if labels.dim() != 4 or labels.shape[1] != expected_c:
            raise ValueError(f"labels must be B x n_frames_G * label_nc ({expected_c}) x H x W, got "
                             f"{tuple(labels.shape)}")
        if labels.shape[2] % self.size_multiple or labels.shape[3] % self.size_multiple:
            raise ValueError(f"labels H and W must be multiples of 2**(n_downsampling + n_scales_spatial - 1)"
                             f" = {self.size_multiple}, got {tuple(labels.shape[2:])}")
        if use_raw_only is None:
            use_raw_only = prev_images is None
        elif prev_images is None and not use_raw_only:
            raise ValueError("use_raw_only=False needs prev_images: there is no previous frame to warp")
        label_levels = self.pyramid(labels)
        prev_levels = self._prev_pyramid(prev_images, labels)
        out = None
        finals = []
        for s, module in enumerate(self.scales):
            level = self.n_scales_spatial - 1 - s
            mask = self.foreground_mask(label_levels[level]) if self.use_fg_model else None
            out = module(label_levels[level], prev_levels[level], mask, out, use_raw_only)
            finals.append(out.img_final)
        return out._replace(img_final_pyramid=tuple(reversed(finals)))
