"""The vid2vid losses (NVIDIA/vid2vid models/vid2vid_model_D.py and models/networks.py), each without
its λ, and the registry of loss terms (``loss_terms``): which network each term trains and its weight
(from LossWeights, whose defaults are the original's). The trainer adds every term it computes to a
``LossTotals``, which refuses a name the registry does not hold, so that a new term cannot silently
drop out of a network's total.

What the original adds up for the generator, per frame (S = n_scales_spatial):
  G_GAN       gan_loss(D(fake), True), on the final and the raw image (weight 1)
  G_GAN_Feat  feature_matching_loss(...) · λ_feat, on the final and the raw image
  G_VGG       VGGLoss(fake, real) · λ_feat, on the final and the raw image
  F_Flow      flow_loss(flow, flow_gt, conf) · λ_F / 2^(S-1)          (LossWeights.flow_weight(S))
  F_Warp      flow_warp_loss(real_prev, flow, real, conf) · λ_T
  G_Warp      temporal_consistency_loss(fake, fake_prev, flow_gt, conf) · λ_T
  W           weight_loss(weight, conf) · 1, only with no_first_img
  G_T_GAN, G_T_GAN_Feat   gan_loss / feature_matching_loss · λ_feat on each temporal D scale
and for each discriminator discriminator_loss(real_preds, fake_preds) = 0.5 (real + fake).
"""

from dataclasses import dataclass

import torch

from ..ops import masked_warp_l1
from .vgg import VGGLoss  # part of the losses API (in __all__); the network lives in vgg.py

__all__ = [
    "LossTerm",
    "LossTotals",
    "LossWeights",
    "VGGLoss",
    "discriminator_loss",
    "feature_matching_loss",
    "flow_loss",
    "flow_warp_loss",
    "gan_loss",
    "loss_terms",
    "masked_l1",
    "temporal_consistency_loss",
    "weight_loss",
]


@dataclass(frozen=True)
class LossWeights:
    """The λs of the original vid2vid (options/train_options.py defaults)."""

    lambda_feat: float = 10.0  # feature matching (image and temporal D) and VGG
    lambda_T: float = 10.0  # flow-warp loss and temporal-consistency loss
    lambda_F: float = 10.0  # flow loss, before the 1 / 2^(n_scales_spatial - 1) of flow_weight
    lambda_W: float = 1.0  # the original adds the weight loss unweighted

    def flow_weight(self, n_scales_spatial):
        """The flow loss factor: the original divides λ_F by 2^(n_scales_spatial - 1)."""
        if int(n_scales_spatial) != n_scales_spatial or n_scales_spatial < 1:
            raise ValueError(f"n_scales_spatial must be an integer >= 1, got {n_scales_spatial!r}")
        return self.lambda_F / 2 ** (int(n_scales_spatial) - 1)


@dataclass(frozen=True)
class LossTerm:
    """A loss term's owner (the network whose optimizer step its gradient drives: "G", "D", or "D_T_<s>"
    for the temporal discriminator of scale s) and the factor it enters that network's total with."""

    owner: str
    weight: float


def loss_terms(weights: LossWeights, n_scales_spatial: int, n_scales_temporal: int) -> dict[str, LossTerm]:
    """Every loss term of a vid2vid run, by name (the name it is logged under)."""
    terms = {
        "G_GAN": LossTerm("G", 1.0),
        "G_GAN_Feat": LossTerm("G", weights.lambda_feat),
        "G_VGG": LossTerm("G", weights.lambda_feat),
        "F_Flow": LossTerm("G", weights.flow_weight(n_scales_spatial)),
        "F_Warp": LossTerm("G", weights.lambda_T),
        "W": LossTerm("G", weights.lambda_W),
        "G_Warp": LossTerm("G", weights.lambda_T),
        # the image discriminator's loss is 0.5 · (real + fake); the real term counts the real pair
        # twice, as the fake one sums the final and the raw image
        "D_real": LossTerm("D", 0.5),
        "D_fake": LossTerm("D", 0.5),
    }
    for s in range(n_scales_temporal):
        terms[f"G_T_GAN_{s}"] = LossTerm("G", 1.0)
        terms[f"G_T_GAN_Feat_{s}"] = LossTerm("G", weights.lambda_feat)
        terms[f"D_T_{s}"] = LossTerm(f"D_T_{s}", 1.0)
    return terms


class LossTotals:
    """One iteration's loss terms, each weighted as its registry entry says, and the total of each
    owner (in the order the terms were added)."""

    def __init__(self, terms: dict[str, LossTerm]):
        self.terms = terms
        self.values: dict[str, torch.Tensor] = {}

    def add(self, name: str, value: torch.Tensor) -> None:
        """Add term ``name`` (unweighted); its weight and owner come from the registry."""
        term = self.terms.get(name)
        if term is None:
            raise KeyError(
                f"loss term {name!r} is not registered; add it to loss_terms (with its owner and weight). "
                f"Registered: {', '.join(self.terms)}"
            )
        if name in self.values:
            raise KeyError(f"loss term {name!r} was added twice in one iteration")
        self.values[name] = term.weight * value

    def owners(self) -> list[str]:
        """The owners with at least one term this iteration, in the order their first term came."""
        return list(dict.fromkeys(self.terms[name].owner for name in self.values))

    def total(self, owner: str) -> torch.Tensor:
        """The sum of ``owner``'s terms; an error when it has none (its step would train nothing)."""
        mine = [value for name, value in self.values.items() if self.terms[name].owner == owner]
        if not mine:
            raise KeyError(f"no loss term of {owner!r} was added this iteration")
        return sum(mine)


def _scales(preds, name):
    """preds as a MultiscaleDiscriminator returns them (a list per scale of per-layer outputs), or one
    NLayerDiscriminator's list of outputs, which counts as a single scale (as in the original)."""
    if isinstance(preds, torch.Tensor) or not isinstance(preds, (list, tuple)) or len(preds) == 0:
        raise TypeError(f"{name} must be a non-empty list of discriminator outputs, got {type(preds).__name__}")
    if all(isinstance(p, torch.Tensor) for p in preds):
        return [preds]
    for i, scale in enumerate(preds):
        if not isinstance(scale, (list, tuple)) or not scale or not all(isinstance(p, torch.Tensor) for p in scale):
            raise TypeError(f"{name}[{i}] must be a non-empty list of tensors (one discriminator's outputs)")
    return preds


def gan_loss(preds, target_is_real):
    """LSGAN loss, summed over discriminator scales: Σ_scales mean((pred - target)²) with target 1 for
    real and 0 for fake, on the last output (the patch prediction) of each scale."""
    loss = 0
    target = 1.0 if target_is_real else 0.0
    for scale in _scales(preds, "preds"):
        loss = loss + (scale[-1] - target).pow(2).mean()
    return loss


def discriminator_loss(real_preds, fake_preds):
    """A discriminator's loss, 0.5 · (gan_loss(real, True) + gan_loss(fake, False)); fake_preds must
    come from detached fakes."""
    return 0.5 * (gan_loss(real_preds, True) + gan_loss(fake_preds, False))


def feature_matching_loss(fake_preds, real_preds, num_D, n_layers_D):
    """Σ_i Σ_j (1/num_D)·(4/(n_layers_D + 1))·L1(fake_preds[i][j], real_preds[i][j].detach()) over the
    first num_D scales and every intermediate output but the last (the prediction). The original also
    multiplies by λ_feat inside this sum; here the trainer applies it."""
    fake_scales, real_scales = _scales(fake_preds, "fake_preds"), _scales(real_preds, "real_preds")
    if len(fake_scales) != len(real_scales):
        raise ValueError(
            f"fake_preds has {len(fake_scales)} scales but real_preds has {len(real_scales)}; they must match"
        )
    if num_D < 1 or n_layers_D < 1:
        raise ValueError(f"num_D and n_layers_D must be >= 1, got num_D={num_D}, n_layers_D={n_layers_D}")
    weight = (1.0 / num_D) * (4.0 / (n_layers_D + 1))
    loss = 0
    for i in range(min(len(fake_scales), num_D)):
        fake, real = fake_scales[i], real_scales[i]
        if len(fake) != len(real):
            raise ValueError(
                f"scale {i}: fake_preds has {len(fake)} outputs but real_preds has {len(real)}; they must match"
            )
        for j in range(len(fake) - 1):
            loss = loss + weight * (fake[j] - real[j].detach()).abs().mean()
    return loss


def _check_mask(mask, like, like_name):
    if not isinstance(mask, torch.Tensor) or mask.dim() != 4:
        raise ValueError(f"mask must be a (B, 1, H, W) tensor, got {getattr(mask, 'shape', type(mask).__name__)}")
    b, c, h, w = like.shape
    if mask.shape[0] != b or mask.shape[2:] != like.shape[2:] or mask.shape[1] not in (1, c):
        raise ValueError(
            f"mask must have shape ({b}, 1, {h}, {w}) or ({b}, {c}, {h}, {w}) to match {like_name}, "
            f"got {tuple(mask.shape)}"
        )


def masked_l1(a, b, mask):
    """vid2vid's MaskedL1Loss: mean |a·mask − b·mask| over all B·C·H·W elements. a and b are
    (B, C, H, W) (b may be a Python number), mask (B, 1, H, W) broadcast over channels or (B, C, H, W)."""
    if not isinstance(a, torch.Tensor) or a.dim() != 4:
        raise ValueError(f"a must be a (B, C, H, W) tensor, got {getattr(a, 'shape', type(a).__name__)}")
    if isinstance(b, torch.Tensor) and b.shape != a.shape:
        raise ValueError(f"b must have the shape of a {tuple(a.shape)}, got {tuple(b.shape)}")
    _check_mask(mask, a, "a")
    # Each product is expanded to a's shape, so the mean divides by B·C·H·W as the original's does.
    return (a * mask - b * mask).abs().mean()


def flow_loss(flow, flow_gt, conf):
    """MaskedL1(flow, flow_gt, conf): the generator's flow against the ground truth, in pixels.
    The original multiplies by λ_F / 2^(n_scales_spatial - 1) (LossWeights.flow_weight)."""
    return masked_l1(flow, flow_gt.detach(), conf.detach())


def flow_warp_loss(real_prev, flow, real, conf, *, backend="auto"):
    """MaskedL1(warp(real_prev, flow), real, conf): the generator's flow must carry the previous real
    frame onto the current one (gradient only to flow). The original multiplies by λ_T."""
    return masked_warp_l1(real_prev.detach(), flow, real.detach(), conf.detach(), "border", backend=backend)


def temporal_consistency_loss(fake, fake_prev, flow_gt, conf, *, backend="auto"):
    """MaskedL1(fake, warp(fake_prev, flow_gt).detach(), conf): the generated frame must agree with the
    previous generated frame carried along the ground-truth flow (gradient only to fake). The original
    multiplies by λ_T. |a − b| is symmetric, so this is masked_warp_l1 with fake as the target."""
    return masked_warp_l1(
        fake_prev.detach(), flow_gt.detach(), fake, conf.detach(), "border", backend=backend
    )


def weight_loss(weight, conf):
    """MaskedL1(weight, 0, conf): pushes the blend weight towards the warped previous frame where the
    flow is reliable. The original adds it (unweighted) only with no_first_img."""
    return masked_l1(weight, 0.0, conf.detach())
