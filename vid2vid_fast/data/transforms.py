"""Clip-consistent augmentation: one set of parameters is drawn per clip and applied to all its frames.

Two schemes, because their outputs differ:

- ``VideoAugment`` for the video loaders (DALI, PyAV), whose batches need one fixed output size:
  resize each frame (keeping its aspect ratio) to cover ``size`` times a random zoom, crop ``size``
  at a random place, flip at random. DALI does this inside its pipeline; ``apply_video_transform``
  is the same arithmetic in PyTorch.
- ``Vid2VidAugment`` for the image-sequence datasets: the original vid2vid ``resize_or_crop`` modes
  (``get_img_params`` in vid2vid's ``data/base_dataset.py``), where the output size follows each
  sequence's aspect ratio and every size ends as a multiple of 32.

Random draws use torch's generator (the global one unless one is passed), so a DataLoader worker's
seed, and ``torch.manual_seed``, govern them.
"""

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

SIZE_MULTIPLE = 32


def _uniform(low, high, generator=None) -> float:
    return low + (high - low) * torch.rand((), generator=generator).item()


def _coin(generator=None) -> bool:
    return torch.rand((), generator=generator).item() < 0.5


@dataclass(frozen=True)
class VideoAugment:
    size: tuple[int, int]  # output (height, width); vid2vid's generator wants multiples of 32
    max_scale: float = 1.0  # zoom drawn uniformly from [1, max_scale] before cropping
    random_crop: bool = True  # False: centre crop
    flip: bool = True  # horizontal flip with probability 1/2

    def __post_init__(self):
        if len(self.size) != 2 or min(self.size) <= 0:
            raise ValueError(f"size must be (height, width), both positive; got {self.size}")
        if self.max_scale < 1.0:
            raise ValueError(f"max_scale must be >= 1, got {self.max_scale}")

    @classmethod
    def deterministic(cls, size) -> "VideoAugment":
        """Resize to cover, centre crop, no flip: for evaluation and for comparing backends."""
        return cls(tuple(size), max_scale=1.0, random_crop=False, flip=False)


@dataclass(frozen=True)
class VideoTransform:
    scale: float
    crop_y: float  # crop position as a fraction of the free margin, 0 = top
    crop_x: float  # 0 = left
    flip: bool


def draw_video_transform(augment: VideoAugment, generator=None) -> VideoTransform:
    scale = _uniform(1.0, augment.max_scale, generator) if augment.max_scale > 1.0 else 1.0
    if augment.random_crop:
        crop_y, crop_x = _uniform(0.0, 1.0, generator), _uniform(0.0, 1.0, generator)
    else:
        crop_y = crop_x = 0.5
    flip = augment.flip and _coin(generator)
    return VideoTransform(scale, crop_y, crop_x, flip)


def cover_size(source_hw, target_hw, scale=1.0) -> tuple[int, int]:
    """Size that keeps the source's aspect ratio and is nowhere smaller than ``target * scale``."""
    factor = max(target_hw[0] * scale / source_hw[0], target_hw[1] * scale / source_hw[1])
    # rounded half up, as DALI's resize does, so both backends crop from the same size
    return tuple(max(t, math.floor(s * factor + 0.5)) for s, t in zip(source_hw, target_hw))


def apply_video_transform(
    frames: torch.Tensor, augment: VideoAugment, transform: VideoTransform
) -> torch.Tensor:
    """uint8 frames (T, H, W, C) -> float32 (T, C, h, w) in [-1, 1], the same transform on every frame."""
    x = frames.permute(0, 3, 1, 2).float()
    resized_hw = cover_size(x.shape[-2:], augment.size, transform.scale)
    if tuple(x.shape[-2:]) != resized_hw:
        x = F.interpolate(x, size=resized_hw, mode="bilinear", align_corners=False, antialias=True)
    out_h, out_w = augment.size
    top = math.floor(transform.crop_y * (resized_hw[0] - out_h) + 0.5)
    left = math.floor(transform.crop_x * (resized_hw[1] - out_w) + 0.5)
    x = x[:, :, top : top + out_h, left : left + out_w]
    if transform.flip:
        x = x.flip(-1)
    return (x / 127.5 - 1.0).clamp_(-1.0, 1.0).contiguous()


RESIZE_OR_CROP_MODES = (
    "scale_width",
    "scale_width_and_crop",
    "random_scale_width_and_crop",
    "resize_and_crop",
    "none",
)


def round_to_multiple(n: float, base: int = SIZE_MULTIPLE) -> int:
    return max(base, int(round(n / base) * base))


@dataclass(frozen=True)
class Vid2VidAugment:
    """vid2vid's ``--resize_or_crop``, ``--loadSize``, ``--fineSize``, ``--no_flip``.

    - ``scale_width``: width to load_size, height keeps the aspect ratio;
    - ``scale_width_and_crop``: then crop fine_size x fine_size;
    - ``random_scale_width_and_crop``: width drawn from [fine_size, load_size], then crop;
    - ``resize_and_crop``: resize to load_size x load_size, then crop;
    - ``none``: keep the source size.
    Without a crop, sizes are rounded to multiples of 32; crops are fine_size, or the largest multiple
    of 32 that fits where the resized frame is smaller (the original returned the uncropped side).
    """

    resize_or_crop: str = "scale_width"
    load_size: int = 512
    fine_size: int = 512
    flip: bool = True

    def __post_init__(self):
        if self.resize_or_crop not in RESIZE_OR_CROP_MODES:
            raise ValueError(
                f"resize_or_crop must be one of {RESIZE_OR_CROP_MODES}, got {self.resize_or_crop!r}"
            )
        if "crop" in self.resize_or_crop and self.fine_size > self.load_size:
            raise ValueError(f"fine_size ({self.fine_size}) must not exceed load_size ({self.load_size})")


@dataclass(frozen=True)
class FrameParams:
    new_size: tuple[int, int]  # (width, height) after resizing
    crop_box: tuple[int, int, int, int] | None  # (left, top, right, bottom) or None
    flip: bool


def draw_frame_params(
    augment: Vid2VidAugment, source_size, train: bool = True, generator=None
) -> FrameParams:
    """One draw of vid2vid's per-clip parameters for a source of ``source_size`` = (width, height)."""
    w, h = source_size
    mode = augment.resize_or_crop
    if mode == "resize_and_crop":
        new_w = new_h = augment.load_size
    elif mode in ("scale_width", "scale_width_and_crop"):
        new_w, new_h = augment.load_size, augment.load_size * h // w
    elif mode == "random_scale_width_and_crop":
        new_w = int(torch.randint(augment.fine_size, augment.load_size + 1, (), generator=generator))
        new_h = new_w * h // w
    else:
        new_w, new_h = w, h
    crop_box = None
    if "crop" in mode:
        new_w, new_h = int(round(new_w / 4)) * 4, int(round(new_h / 4)) * 4
        # vid2vid crops fine_size, or less where the frame is smaller; here "less" is the largest
        # multiple of 32 that fits, so every output size stays a multiple of 32
        crop_w = min(
            round_to_multiple(augment.fine_size), max(SIZE_MULTIPLE, new_w // SIZE_MULTIPLE * SIZE_MULTIPLE)
        )
        crop_h = min(
            round_to_multiple(augment.fine_size), max(SIZE_MULTIPLE, new_h // SIZE_MULTIPLE * SIZE_MULTIPLE)
        )
        if train:
            # vid2vid: x near the centre (normal, sd = a third of the margin), y in the top eighth
            x_span = (new_w - crop_w) // 2
            x = int(torch.randn((), generator=generator).item() * x_span / 3 + x_span)
            crop_x = max(0, min(2 * x_span, x))
            y_max = min(max(0, new_h - crop_h), new_h // 8)
            crop_y = int(torch.randint(0, y_max + 1, (), generator=generator))
        else:
            crop_x, crop_y = max(0, (new_w - crop_w) // 2), 0
        crop_box = (crop_x, crop_y, min(new_w, crop_x + crop_w), min(new_h, crop_y + crop_h))
    else:
        new_w, new_h = round_to_multiple(new_w), round_to_multiple(new_h)
    flip = train and augment.flip and _coin(generator)
    return FrameParams((new_w, new_h), crop_box, flip)


def apply_frame_params(image, params: FrameParams):
    """Resize (bicubic), crop and flip one PIL image."""
    from PIL import Image

    image = image.resize(params.new_size, Image.Resampling.BICUBIC)
    if params.crop_box is not None:
        image = image.crop(params.crop_box)
    if params.flip:
        image = image.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return image


def apply_frame_params_to_ids(ids: np.ndarray, params: FrameParams) -> np.ndarray:
    """Resize (nearest neighbour), crop and flip a map of class or instance ids (H, W).

    Done with index arrays rather than PIL, whose nearest filter picks different pixels for 8-bit
    and 16-bit images, which would misalign label and instance maps.
    """
    height, width = ids.shape
    new_w, new_h = params.new_size
    rows = np.minimum(((np.arange(new_h) + 0.5) * height / new_h).astype(np.int64), height - 1)
    cols = np.minimum(((np.arange(new_w) + 0.5) * width / new_w).astype(np.int64), width - 1)
    ids = ids[rows[:, None], cols[None, :]]
    if params.crop_box is not None:
        left, top, right, bottom = params.crop_box
        ids = ids[top:bottom, left:right]
    if params.flip:
        ids = ids[:, ::-1]
    return np.ascontiguousarray(ids)
