"""Ground-truth optical flow for vid2vid's flow, warp and temporal losses, behind one interface.

A flow source maps (image_t, image_prev), images in [-1, 1], to (flow, conf):
- flow (B, 2, H, W) in pixels (ch0 = dx, ch1 = dy) with `flow_warp(image_prev, flow) ≈ image_t`, i.e. for
  every pixel of frame t, where it was in frame t-1 (the original's `flowNet(real_B, real_B_prev)`);
- conf (B, 1, H, W) in {0, 1}: 1 where `Σ_c (image_t − flow_warp(image_prev, flow))² < 0.02`, as the
  original's FlowNet wrapper computes it (models/flownet.py).

Sources: ClassicalFlow (OpenCV DIS, no weights, the default) and RAFTFlow (torchvision's RAFT with
weights from a file the user names). The original used a frozen FlowNet2, which is not provided here.
"""

import abc
import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..ops import flow_warp
from .weights_file import WeightsFileError, load_weights_file

__all__ = ["ClassicalFlow", "FlowSource", "RAFTFlow", "flow_confidence", "make_flow_source"]

CONF_THRESHOLD = 0.02


def flow_confidence(image_t, image_prev, flow, threshold=CONF_THRESHOLD, *, backend="auto"):
    """1 where the flow carries image_prev onto image_t: `Σ_c (image_t − flow_warp(image_prev, flow))²
    < threshold` (images in [-1, 1], so the original's 0.02 is about 4% of the range per channel), else 0.
    Returns (B, 1, H, W) in image_t's dtype."""
    _check_pair(image_t, image_prev)
    warped = flow_warp(image_prev, flow, "border", backend=backend)
    err = (image_t - warped).pow(2).sum(dim=1, keepdim=True)
    return (err < threshold).to(image_t.dtype)


def _check_pair(image_t, image_prev):
    for name, t in (("image_t", image_t), ("image_prev", image_prev)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4 or t.shape[1] != 3:
            raise ValueError(f"{name} must be a (B, 3, H, W) image in [-1, 1], got shape {tuple(t.shape)}")
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating point tensor, got {t.dtype}")
    if image_t.shape != image_prev.shape:
        raise ValueError(
            f"image_prev must have the shape of image_t {tuple(image_t.shape)}, got {tuple(image_prev.shape)}"
        )
    if image_t.device != image_prev.device:
        raise ValueError(f"image_prev is on {image_prev.device} but image_t is on {image_t.device}")


class FlowSource(nn.Module, abc.ABC):
    """Abstract base: `source(image_t, image_prev) -> (flow, conf)` (see the module doc). Images are
    (B, 3, H, W), or (B, T, 3, H, W) for T pairs at once (then flow is (B, T, 2, H, W) and conf
    (B, T, 1, H, W)). Runs without gradients and outside autocast; a subclass implements `estimate`
    (a class without it cannot be instantiated)."""

    def forward(self, image_t, image_prev):
        if image_t.dim() == 5 and image_prev.dim() == 5:
            b, t = image_t.shape[:2]
            flow, conf = self(image_t.flatten(0, 1), image_prev.flatten(0, 1))
            return flow.unflatten(0, (b, t)), conf.unflatten(0, (b, t))
        _check_pair(image_t, image_prev)
        # Ground truth in the images' precision: a trainer's autocast region must not lower it (the conf
        # threshold compares small squared differences).
        with torch.no_grad(), torch.autocast(image_t.device.type, enabled=False):
            if image_t.numel() == 0:
                b, _, h, w = image_t.shape
                return image_t.new_zeros(b, 2, h, w), image_t.new_zeros(b, 1, h, w)
            flow = self.estimate(image_t, image_prev).to(image_t.dtype)
            conf = flow_confidence(image_t, image_prev, flow)
        return flow, conf

    @abc.abstractmethod
    def estimate(self, image_t, image_prev):
        """The flow (B, 2, H, W) with flow_warp(image_prev, flow) ≈ image_t."""


_DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}


class ClassicalFlow(FlowSource):
    """OpenCV's DIS optical flow (Kroeger et al. 2016) on the grey-level frames; needs no weights.

    preset: "medium" (default), "fast" or "ultrafast". Measured on the bundled clips (2 CPU cores),
    "medium" gives the lowest warp error at about 6x the time of "fast" (bikes.mp4 640x272: 7.4 vs 2.1 ms
    a pair, mean |t − warp(t-1)| 0.0076 vs 0.0083; 1280x720: 61 vs 10 ms). Farneback was slower than
    "medium" and worse than "fast". Runs on the CPU (tensors on a GPU are copied over and back);
    `workers` > 1 estimates the pairs of a batch in a thread pool (OpenCV releases the GIL).
    """

    def __init__(self, preset="medium", workers=1):
        super().__init__()
        if preset not in _DIS_PRESETS:
            raise ValueError(f"preset must be one of {tuple(_DIS_PRESETS)}, got {preset!r}")
        if int(workers) != workers or workers < 1:
            raise ValueError(f"workers must be an integer >= 1, got {workers!r}")
        import cv2  # noqa: F401  (fail here, clearly, when OpenCV is missing)

        self.preset = preset
        self.workers = int(workers)

    def _pair(self, gray_t, gray_prev):
        import cv2

        # A DIS object keeps per-call state, so each call gets its own (creation costs microseconds).
        dis = cv2.DISOpticalFlow_create(_DIS_PRESETS[self.preset])
        # calc(I0, I1) returns f with I0(x) ≈ I1(x + f(x)): I0 = frame t, I1 = frame t-1.
        return dis.calc(gray_t, gray_prev, None)

    def estimate(self, image_t, image_prev):
        gray_t, gray_prev = _to_gray_uint8(image_t), _to_gray_uint8(image_prev)
        pairs = list(zip(gray_t, gray_prev))
        if self.workers > 1 and len(pairs) > 1:
            with ThreadPoolExecutor(min(self.workers, len(pairs))) as pool:
                flows = list(pool.map(lambda p: self._pair(*p), pairs))
        else:
            flows = [self._pair(*p) for p in pairs]
        flow = torch.from_numpy(np.stack(flows)).permute(0, 3, 1, 2)
        return flow.to(image_t.device)

    def extra_repr(self):
        return f"preset={self.preset!r}, workers={self.workers}"


_LUMA = (0.299, 0.587, 0.114)


def _to_gray_uint8(images):
    """(B, 3, H, W) RGB in [-1, 1] -> (B, H, W) uint8 grey (ITU-R BT.601 luma, as cv2's RGB2GRAY)."""
    weights = torch.tensor(_LUMA, device=images.device) * 127.5
    luma = torch.einsum("bchw,c->bhw", images.detach().float(), weights)
    # + 0.5 then truncation rounds to nearest; one pass each, the conversion runs on every batch.
    return luma.add_(127.5 + 0.5).clamp_(0, 255).to(torch.uint8).cpu().numpy()


class RAFTFlow(FlowSource):
    """torchvision's RAFT (raft_large or raft_small, told apart by the checkpoint's keys) with weights
    from a state-dict file, e.g. one saved from `raft_large(weights=Raft_Large_Weights.DEFAULT)
    .state_dict()`. Images in [-1, 1] are what RAFT's weights expect. Sizes that are not multiples of 8
    are edge-padded for the network and the flow cropped back; RAFT needs at least 128 px a side.
    num_flow_updates: RAFT's iterations (12, torchvision's default). Frozen, eval mode; move it with
    `.to(device)`."""

    def __init__(self, checkpoint_path, num_flow_updates=12):
        super().__init__()
        try:
            from torchvision.models.optical_flow import raft_large, raft_small
        except ImportError as e:
            raise ImportError(
                "RAFTFlow needs torchvision (pip install torchvision); the default ClassicalFlow does not"
            ) from e
        if int(num_flow_updates) != num_flow_updates or num_flow_updates < 1:
            raise ValueError(f"num_flow_updates must be an integer >= 1, got {num_flow_updates!r}")
        self.checkpoint_path = os.fspath(checkpoint_path)
        self.num_flow_updates = int(num_flow_updates)
        state = load_weights_file(self.checkpoint_path, "RAFT checkpoint")
        # Only raft_small's encoders use bottleneck blocks, which have a third conv.
        self.size = "small" if "feature_encoder.layer1.0.convnormrelu3.0.weight" in state else "large"
        self.model = (raft_small if self.size == "small" else raft_large)(weights=None, progress=False)
        try:
            self.model.load_state_dict(state)
        except RuntimeError as e:
            raise WeightsFileError(
                f"RAFT checkpoint {self.checkpoint_path!r} does not match torchvision's raft_{self.size}: {e}"
            ) from e
        self.model.requires_grad_(False)
        self.model.eval()

    def train(self, mode=True):
        return super().train(False)

    def estimate(self, image_t, image_prev):
        device = next(self.model.parameters()).device
        if image_t.device != device:
            raise ValueError(f"RAFTFlow is on {device} but the images are on {image_t.device}; use .to(device)")
        h, w = image_t.shape[2:]
        pad = (0, -w % 8, 0, -h % 8)
        dtype = next(self.model.parameters()).dtype
        # RAFT(img1, img2) returns f with img1(x) ≈ img2(x + f(x)): img1 = frame t, img2 = frame t-1.
        img1 = F.pad(image_t.to(dtype), pad, mode="replicate")
        img2 = F.pad(image_prev.to(dtype), pad, mode="replicate")
        flow = self.model(img1, img2, num_flow_updates=self.num_flow_updates)[-1]
        return flow[:, :, :h, :w]

    def extra_repr(self):
        return (
            f"checkpoint_path={self.checkpoint_path!r}, size={self.size!r}, "
            f"num_flow_updates={self.num_flow_updates}"
        )


FLOW_SOURCES = ("classical", "raft")


def make_flow_source(name="classical", checkpoint=None):
    """A flow source by name: "classical" (ClassicalFlow, no checkpoint) or "raft" (RAFTFlow, needs
    checkpoint = a torchvision raft_large / raft_small state-dict file)."""
    if name == "classical":
        if checkpoint is not None:
            raise ValueError("the 'classical' flow source takes no checkpoint; pass checkpoint=None")
        return ClassicalFlow()
    if name == "raft":
        if checkpoint is None:
            raise ValueError("the 'raft' flow source needs checkpoint=<a torchvision RAFT state-dict file>")
        return RAFTFlow(checkpoint)
    raise ValueError(f"flow source must be one of {FLOW_SOURCES}, got {name!r}")
