"""VGG19 features for the perceptual loss, with weights from a local file (never downloaded).

The layers are torchvision's `vgg19().features` up to relu5_1, under the same state-dict keys
(`features.N.weight` / `features.N.bias`), so a file saved from
`torchvision.models.vgg19(weights=...).state_dict()` loads as it is; a file with only the `features.*`
keys (or `vgg19().features.state_dict()`, keys `N.weight`) loads too.
"""

import logging
import os

import torch
import torch.nn.functional as F
from torch import nn

from .weights_file import WeightsFileError, load_weights_file

log = logging.getLogger("vid2vid_fast")

# torchvision's VGG19 "E" configuration up to conv5_1 (index 28); "M" is a 2x2 max pool.
_CONFIG = (64, 64, "M", 128, 128, "M", 256, 256, 256, 256, "M", 512, 512, 512, 512, "M", 512)
# Index (in `features`) after which relu1_1 .. relu5_1 are taken, as the original's slices 0-2, 2-7,
# 7-12, 12-21, 21-30.
_TAPS = (1, 6, 11, 20, 29)
# The original VGGLoss weights for relu1_1 .. relu5_1.
LAYER_WEIGHTS = (1.0 / 32, 1.0 / 16, 1.0 / 8, 1.0 / 4, 1.0)
# ImageNet statistics of torchvision's VGG weights (for normalize_input=True).
_IMAGENET_MEAN = (0.485, 0.456, 0.406)
_IMAGENET_STD = (0.229, 0.224, 0.225)


def _build_features():
    layers, in_ch = [], 3
    for item in _CONFIG:
        if item == "M":
            layers.append(nn.MaxPool2d(kernel_size=2, stride=2))
        else:
            layers += [nn.Conv2d(in_ch, item, kernel_size=3, padding=1), nn.ReLU(inplace=True)]
            in_ch = item
    return nn.Sequential(*layers)


class VGG19Features(nn.Module):
    """Frozen VGG19 returning [relu1_1, relu2_1, relu3_1, relu4_1, relu5_1] of its input."""

    def __init__(self):
        super().__init__()
        self.features = _build_features()
        self.requires_grad_(False)
        self.eval()

    def train(self, mode=True):
        # Frozen: stays in eval mode whatever a parent module asks.
        return super().train(False)

    def forward(self, x):
        outputs = []
        for i, layer in enumerate(self.features):
            x = layer(x)
            if i in _TAPS:
                outputs.append(x)
        return outputs

    @classmethod
    def from_file(cls, path):
        """Loads the weights from a state-dict file saved from torchvision's vgg19 (see the module doc)."""
        state = load_weights_file(path, "VGG19 weights")
        model = cls()
        model.features.load_state_dict(_features_state(state, path, model.features.state_dict()))
        return model


def _features_state(state, path, expected):
    """The `features` entries of a loaded file, keyed as in the Sequential ("N.weight"), checked against
    the expected shapes; entries past relu5_1 and the classifier are ignored."""
    prefixed = any(k.startswith("features.") for k in state)
    picked = {}
    for key, want in expected.items():
        source = f"features.{key}" if prefixed else key
        if source not in state:
            raise WeightsFileError(
                f"VGG19 weights file {path!r} has no {source!r}: it is not a torchvision VGG19 state dict "
                f"(expected keys features.N.weight / features.N.bias; found e.g. {sorted(state)[:4]})"
            )
        if state[source].shape != want.shape:
            raise WeightsFileError(
                f"VGG19 weights file {path!r}: {source!r} has shape {tuple(state[source].shape)}, "
                f"expected {tuple(want.shape)} (is it a VGG19, not another VGG depth?)"
            )
        picked[key] = state[source].float()
    return picked


class VGGLoss(nn.Module):
    """The perceptual loss of vid2vid / pix2pixHD: Σ_k w_k · L1(vgg_k(x), vgg_k(y)) over relu1_1..relu5_1
    with w = 1/32, 1/16, 1/8, 1/4, 1 (without λ_feat). y is the target and gets no gradient.

    weights_path names a torchvision VGG19 state-dict file; without one the loss is disabled
    (`enabled` is False, forward returns 0) and the log says so. Like the original, inputs wider than
    1024 px are halved (2x2 average pooling) until they are not.

    normalize_input: the original feeds the [-1, 1] images to VGG19 as they are (no ImageNet
    normalisation), which is the default here so that losses match; True maps [-1, 1] to torchvision's
    expected input ((x + 1) / 2 - mean) / std.
    """

    def __init__(self, weights_path=None, normalize_input=False):
        super().__init__()
        self.normalize_input = bool(normalize_input)
        self.weights_path = None if weights_path is None else os.fspath(weights_path)
        if self.weights_path is None:
            self.vgg = None
            log.warning(
                "vid2vid_fast: VGG perceptual loss disabled: no VGG19 weights file given. Pass a local "
                "file saved from torchvision.models.vgg19(weights=...).state_dict() to enable it."
            )
        else:
            self.vgg = VGG19Features.from_file(self.weights_path)
            log.info("vid2vid_fast: VGG perceptual loss uses weights from %s", self.weights_path)
        mean = torch.tensor(_IMAGENET_MEAN).view(1, 3, 1, 1)
        std = torch.tensor(_IMAGENET_STD).view(1, 3, 1, 1)
        self.register_buffer("mean", mean, persistent=False)
        self.register_buffer("std", std, persistent=False)

    @property
    def enabled(self):
        return self.vgg is not None

    def forward(self, x, y):
        if x.dim() != 4 or x.shape[1] != 3:
            raise ValueError(f"x must be a (B, 3, H, W) image, got shape {tuple(x.shape)}")
        if y.shape != x.shape:
            raise ValueError(f"y must have the shape of x {tuple(x.shape)}, got {tuple(y.shape)}")
        if not self.enabled:
            return x.new_zeros(())
        while x.shape[3] > 1024:
            x, y = F.avg_pool2d(x, 2), F.avg_pool2d(y, 2)
        if self.normalize_input:
            x = ((x + 1) / 2 - self.mean) / self.std
            y = ((y + 1) / 2 - self.mean) / self.std
        x_feats = self.vgg(x)
        with torch.no_grad():
            y_feats = self.vgg(y)
        loss = 0
        for w, fx, fy in zip(LAYER_WEIGHTS, x_feats, y_feats):
            loss = loss + w * (fx - fy).abs().mean()
        return loss

    def extra_repr(self):
        return f"weights_path={self.weights_path!r}, normalize_input={self.normalize_input}"
