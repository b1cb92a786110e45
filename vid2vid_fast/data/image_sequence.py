"""vid2vid's image-sequence datasets, in the original folder layouts.

``TemporalDataset`` (vid2vid's ``temporal`` mode: Cityscapes, edge-to-video, ...)::

    {root}/{phase}_A/<sequence>/*.png    labels (label_nc > 0) or input images (label_nc == 0)
    {root}/{phase}_B/<sequence>/*        real frames
    {root}/{phase}_inst/<sequence>/*     optional instance maps (use_instance=True)

Sequences pair up by sorted folder name and frames by sorted file name, as in the original.

Training items are clips drawn as vid2vid's ``get_video_params`` draws them: ``n_frames_total``
generated frames plus the ``n_frames_G - 1`` frames the generator conditions on, every ``t_step``
frames (``t_step`` uniform in [1, max_t_step], limited by the sequence length), from a random start.
One set of augmentation parameters (``Vid2VidAugment``) serves every frame of a clip; labels are
resized with nearest neighbour and one-hot encoded, images resized bicubic and normalised to [-1, 1].
Evaluation items (``train=False``) slide over every sequence: ``n_frames_G`` consecutive frames from
each start, centre crop, no flip (vid2vid's test mode).
"""

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import SequenceTooShortError, VideoDataError
from .transforms import (
    FrameParams,
    Vid2VidAugment,
    apply_frame_params,
    apply_frame_params_to_ids,
    draw_frame_params,
)

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".ppm", ".tif", ".tiff", ".webp"})


def list_sequences(folder) -> dict[str, list[Path]]:
    """``{sequence name: sorted frame paths}`` for the sub-folders of ``folder`` that hold images."""
    folder = Path(folder)
    if not folder.is_dir():
        raise VideoDataError(f"data set folder {folder} does not exist")
    sequences = {}
    for sub in sorted(p for p in folder.iterdir() if p.is_dir()):
        frames = sorted(
            p for p in sub.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".")
        )
        if frames:
            sequences[sub.name] = frames
    if not sequences:
        raise VideoDataError(f"data set folder {folder} holds no sequence folders with images")
    return sequences


def load_image(path, mode=None):
    """Open an image fully (so a truncated or corrupt file fails here, naming it)."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            return image.convert(mode) if mode is not None and image.mode != mode else image.copy()
    except (OSError, ValueError) as error:
        raise VideoDataError(f"cannot read frame {path}: {error}") from error


def image_to_tensor(image) -> torch.Tensor:
    """PIL image -> float32 (C, H, W) in [-1, 1]."""
    array = np.asarray(image, dtype=np.float32)
    if array.ndim == 2:
        array = array[:, :, None]
    return torch.from_numpy(array).permute(2, 0, 1) / 127.5 - 1.0


def load_ids(path, what) -> np.ndarray:
    """A label or instance map (one channel of integer ids, 8 to 32 bits) as an (H, W) array."""
    ids = np.asarray(load_image(path))
    if ids.ndim != 2:
        raise VideoDataError(f"{what} {path} has {ids.shape[2]} channels; expected one channel of ids")
    return ids


def label_to_one_hot(ids: np.ndarray, label_nc: int, path) -> torch.Tensor:
    """(H, W) class ids -> float32 (label_nc, H, W) one-hot."""
    ids = torch.from_numpy(ids.astype(np.int64))
    if ids.max() >= label_nc or ids.min() < 0:
        raise VideoDataError(
            f"label map {path} holds class id {int(ids.max())}, outside [0, label_nc={label_nc})"
        )
    return torch.nn.functional.one_hot(ids, label_nc).permute(2, 0, 1).float()


def instance_edges(instance: torch.Tensor) -> torch.Tensor:
    """Boundary map of an instance-id map (H, W): 1 where a 4-neighbour has another id (pix2pixHD)."""
    edges = torch.zeros_like(instance, dtype=torch.bool)
    horizontal = instance[:, 1:] != instance[:, :-1]
    vertical = instance[1:, :] != instance[:-1, :]
    edges[:, 1:] |= horizontal
    edges[:, :-1] |= horizontal
    edges[1:, :] |= vertical
    edges[:-1, :] |= vertical
    return edges.float()[None]


@dataclass(frozen=True)
class ClipDraw:
    start: int
    t_step: int
    num_frames: int


def draw_clip(
    sequence_length,
    n_frames_total,
    n_frames_G,
    max_t_step,
    frames_per_load=None,
    start_hint=None,
    generator=None,
) -> ClipDraw:
    """vid2vid's ``get_video_params`` for training: which frames of a sequence one clip reads.

    The start is random, or ``start_hint % offset_max`` when given (vid2vid's pose data set).
    """
    n_generated = min(n_frames_total, sequence_length - n_frames_G + 1)
    per_load = min(n_generated, frames_per_load) if frames_per_load else n_generated
    num_frames = per_load * (n_generated // per_load) + n_frames_G - 1
    t_step_max = max(1, min(max_t_step, (sequence_length - 1) // max(1, num_frames - 1)))
    t_step = int(torch.randint(1, t_step_max + 1, (), generator=generator))
    offset_max = max(1, sequence_length - (num_frames - 1) * t_step)
    if start_hint is None:
        start = int(torch.randint(0, offset_max, (), generator=generator))
    else:
        start = start_hint % offset_max
    return ClipDraw(start, t_step, num_frames)


class TemporalDataset(Dataset):
    """Clips of paired label (or input image) and real frame sequences; see the module docstring.

    Item: ``{"A": (T, C_A, H, W), "B": (T, 3, H, W), "inst": (T, 1, H, W) or absent, "sequence": name,
    "frame_indices": list of T ints, "A_paths", "B_paths"}``. ``C_A`` is ``label_nc`` (+1 edge channel
    with instance maps) for labels, else ``input_nc``. ``n_frames_total`` may be raised during
    training (vid2vid doubles it every few epochs).
    """

    def __init__(
        self,
        root,
        phase: str = "train",
        *,
        label_nc: int = 0,
        input_nc: int = 3,
        use_instance: bool = False,
        n_frames_total: int = 30,
        n_frames_G: int = 3,
        max_t_step: int = 1,
        frames_per_load: int | None = None,
        augment: Vid2VidAugment | None = None,
        train: bool = True,
    ):
        if label_nc == 0 and input_nc not in (1, 3):
            raise ValueError(f"input_nc must be 1 or 3 for image inputs, got {input_nc}")
        if use_instance and label_nc == 0:
            raise ValueError("use_instance needs label maps (label_nc > 0)")
        self.root = Path(root)
        self.label_nc, self.input_nc, self.use_instance = label_nc, input_nc, use_instance
        self.n_frames_total, self.n_frames_G, self.max_t_step = n_frames_total, n_frames_G, max_t_step
        self.frames_per_load, self.train = frames_per_load, train
        self.augment = augment if augment is not None else Vid2VidAugment()
        folders = {"A": self.root / f"{phase}_A", "B": self.root / f"{phase}_B"}
        if use_instance:
            folders["inst"] = self.root / f"{phase}_inst"
        listed = {key: list_sequences(folder) for key, folder in folders.items()}
        self.names = list(listed["B"])
        for key, sequences in listed.items():
            if list(sequences) != self.names:
                raise VideoDataError(
                    f"{folders[key]} and {folders['B']} hold different sequences: "
                    f"{sorted(set(sequences) ^ set(self.names))}"
                )
            for name in self.names:
                if len(sequences[name]) != len(listed["B"][name]):
                    raise VideoDataError(
                        f"sequence {name!r} has {len(sequences[name])} frames in {folders[key]} but "
                        f"{len(listed['B'][name])} in {folders['B']}"
                    )
        self.paths = [{key: listed[key][name] for key in listed} for name in self.names]
        too_short = [
            f"{name} ({len(p['B'])} frames)"
            for name, p in zip(self.names, self.paths)
            if len(p["B"]) < n_frames_G
        ]
        if too_short:
            raise SequenceTooShortError(
                f"a clip needs at least n_frames_G={n_frames_G} frames, but these sequences in "
                f"{folders['B']} are shorter: " + ", ".join(too_short)
            )
        # evaluation: every window of n_frames_G consecutive frames, sequence by sequence
        self.windows = [
            (s, start) for s, p in enumerate(self.paths) for start in range(len(p["B"]) - n_frames_G + 1)
        ]

    def __len__(self):
        return len(self.paths) if self.train else len(self.windows)

    def __getitem__(self, index):
        if self.train:
            sequence = index % len(self.paths)
            paths = self.paths[sequence]
            clip = draw_clip(
                len(paths["B"]), self.n_frames_total, self.n_frames_G, self.max_t_step, self.frames_per_load
            )
            indices = [clip.start + i * clip.t_step for i in range(clip.num_frames)]
        else:
            sequence, start = self.windows[index]
            paths = self.paths[sequence]
            indices = list(range(start, start + self.n_frames_G))
        first = load_image(paths["B"][indices[0]], "RGB")
        params = draw_frame_params(self.augment, first.size, train=self.train)
        item = {
            "A": torch.stack([self._input(paths["A"][i], params) for i in indices]),
            "B": torch.stack([self._real(paths["B"][i], params) for i in indices]),
            "sequence": self.names[sequence],
            "frame_indices": indices,
            "A_paths": [str(paths["A"][i]) for i in indices],
            "B_paths": [str(paths["B"][i]) for i in indices],
        }
        if self.use_instance:
            inst = [self._instance(paths["inst"][i], params) for i in indices]
            item["inst"] = torch.stack(inst)[:, None].float()
            item["A"] = torch.cat([item["A"], torch.stack([instance_edges(ids) for ids in inst])], dim=1)
        return item

    def _real(self, path, params: FrameParams) -> torch.Tensor:
        return image_to_tensor(apply_frame_params(load_image(path, "RGB"), params))

    def _input(self, path, params: FrameParams) -> torch.Tensor:
        if self.label_nc == 0:
            image = load_image(path, "RGB" if self.input_nc == 3 else "L")
            return image_to_tensor(apply_frame_params(image, params))
        ids = apply_frame_params_to_ids(load_ids(path, "label map"), params)
        return label_to_one_hot(ids, self.label_nc, path)

    def _instance(self, path, params: FrameParams) -> torch.Tensor:
        return torch.from_numpy(
            apply_frame_params_to_ids(load_ids(path, "instance map"), params).astype(np.int64)
        )
