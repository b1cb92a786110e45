"""vid2vid's pose data set (dancing videos): ``{root}/{phase}_img/<seq>/`` real frames,
``{phase}_openpose/<seq>/*.json`` OpenPose BODY_25 keypoints, ``{phase}_densepose/<seq>/`` DensePose
IUV images (optional: the data sets ``labels.build_label_dataset`` makes have none, and are read
without).

The input of a frame is its DensePose image (nearest resize, with the part index channel stretched
to the full range) and its OpenPose keypoints drawn as coloured limbs (vid2vid's colours), 6
channels; either can be left out. As in the original: sequences are picked in proportion to their
length, the clip starts at ``index % offset_max``, frames are never flipped, body parts and limbs are
dropped at random during training (``random_drop_prob``), and only the central half of the width is
kept.
"""

import json
import logging
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .errors import SequenceTooShortError, VideoDataError
from .image_sequence import draw_clip, image_to_tensor, list_sequences, load_image
from .transforms import (
    SIZE_MULTIPLE,
    Vid2VidAugment,
    apply_frame_params,
    apply_frame_params_to_ids,
    draw_frame_params,
)

# BODY_25 limbs and their colours (RGB); the head limbs come first and are skipped with basic_point_only
HEAD_EDGES = [(17, 15), (15, 0), (0, 16), (16, 18)]
HEAD_COLORS = [(153, 0, 153), (153, 0, 102), (102, 0, 153), (51, 0, 153)]
BODY_EDGES = [
    (0, 1),
    (1, 8),
    (1, 2),
    (2, 3),
    (3, 4),
    (1, 5),
    (5, 6),
    (6, 7),
    (8, 9),
    (9, 10),
    (10, 11),
    (11, 24),
    (11, 22),
    (22, 23),
    (8, 12),
    (12, 13),
    (13, 14),
    (14, 21),
    (14, 19),
    (19, 20),
]
BODY_COLORS = [
    (153, 0, 51),
    (153, 0, 0),
    (153, 51, 0),
    (153, 102, 0),
    (153, 153, 0),
    (102, 153, 0),
    (51, 153, 0),
    (0, 153, 0),
    (0, 153, 51),
    (0, 153, 102),
    (0, 153, 153),
    (0, 153, 153),
    (0, 153, 153),
    (0, 153, 153),
    (0, 102, 153),
    (0, 51, 153),
    (0, 0, 153),
    (0, 0, 153),
    (0, 0, 153),
    (0, 0, 153),
]
FINGERS = [(0, 1, 2, 3, 4), (0, 5, 6, 7, 8), (0, 9, 10, 11, 12), (0, 13, 14, 15, 16), (0, 17, 18, 19, 20)]
FINGER_COLORS = [(204, 0, 0), (163, 204, 0), (0, 204, 82), (0, 82, 204), (163, 0, 204)]
# eyebrows, nose, eyes, mouth (the jaw line, points 0-16, is not drawn)
FACE_CURVES = [
    tuple(range(17, 22)),
    tuple(range(22, 27)),
    tuple(range(27, 31)),
    tuple(range(31, 36)),
    (36, 37, 38, 39),
    (39, 40, 41, 36),
    (42, 43, 44, 45),
    (45, 46, 47, 42),
    tuple(range(48, 55)),
    (54, 55, 56, 57, 58, 59, 48),
]
FACE_PARTS = (23, 24)  # DensePose head parts

log = logging.getLogger("vid2vid_fast.data")


def _draw_segment(canvas, p, q, half_width, color):
    """A segment with a square brush of side 2*half_width and round end caps of radius 2*half_width;
    where it crosses something drawn before, the colours are averaged (as vid2vid does)."""
    import cv2

    mask = np.zeros(canvas.shape[:2], np.uint8)
    p, q = tuple(int(v) for v in p), tuple(int(v) for v in q)
    cv2.line(mask, p, q, 1, thickness=2 * half_width)
    cv2.circle(mask, p, 2 * half_width - 1, 1, thickness=-1)
    cv2.circle(mask, q, 2 * half_width - 1, 1, thickness=-1)
    hit = mask.astype(bool)
    empty = hit & (canvas == 0).all(axis=2)
    overlap = hit & ~empty
    canvas[empty] = color
    canvas[overlap] = ((canvas[overlap].astype(np.float32) + np.asarray(color, np.float32)) / 2).astype(
        np.uint8
    )


def render_openpose(
    path, size, *, drop_prob=0.0, remove_face_labels=False, basic_point_only=False, generator=None
) -> np.ndarray:
    """Draw the people of an OpenPose JSON file (BODY_25, face, hands) on a black (H, W, 3) uint8 image
    of ``size`` = (width, height)."""
    try:
        people = json.loads(Path(path).read_text(encoding="utf-8"))["people"]
        parts = [
            [
                np.asarray(person[key], np.float64).reshape(n, 3)
                for key, n in (
                    ("pose_keypoints_2d", 25),
                    ("face_keypoints_2d", 70),
                    ("hand_left_keypoints_2d", 21),
                    ("hand_right_keypoints_2d", 21),
                )
            ]
            for person in people
        ]
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise VideoDataError(f"cannot read OpenPose keypoints {path}: {error}") from error

    def keep():
        return torch.rand((), generator=generator).item() >= drop_prob

    width, height = size
    image = np.zeros((height, width, 3), np.uint8)
    for pose, face, left_hand, right_hand in parts:
        person = np.zeros_like(image)
        pose_ok = pose[:, 2] > 0.01
        if drop_prob > 0 and remove_face_labels:
            # jitter the head so the network cannot copy a face from the keypoints
            pose[[0, 15, 16, 17, 18], :2] += 5 * torch.randn(5, 2, generator=generator).double().numpy()
            face[:, :2] += 2 * torch.randn(2, generator=generator).double().numpy()
        edges = ([] if basic_point_only else list(zip(HEAD_EDGES, HEAD_COLORS))) + list(
            zip(BODY_EDGES, BODY_COLORS)
        )
        for (a, b), color in edges:
            if pose_ok[a] and pose_ok[b] and keep():
                _draw_segment(person, pose[a, :2], pose[b, :2], 3, color)
        if not basic_point_only:
            for hand in (left_hand, right_hand):
                if not keep():
                    continue
                for finger, color in zip(FINGERS, FINGER_COLORS):
                    if (hand[list(finger), 2] > 0.01).all():
                        for a, b in zip(finger, finger[1:]):
                            _draw_segment(person, hand[a, :2], hand[b, :2], 1, color)
            if keep():
                for curve in FACE_CURVES:
                    if (face[list(curve), 2] > 0.1).all():
                        for a, b in zip(curve, curve[1:]):
                            _draw_segment(person, face[a, :2], face[b, :2], 1, (255, 255, 255))
        image = np.clip(image.astype(np.int32) + person, 0, 255).astype(np.uint8)
    return image


def central_half(frames: torch.Tensor) -> torch.Tensor:
    """Keep the central half of the width, rounded to a multiple of 32 (vid2vid crops pose frames so)."""
    width = frames.shape[-1]
    half = int(width * 0.25) // SIZE_MULTIPLE * SIZE_MULTIPLE
    if half == 0:
        return frames
    return frames[..., width // 2 - half : width // 2 + half]


class PoseDataset(Dataset):
    """Pose-to-video clips; see the module docstring.

    Item: ``{"A": (T, 6 or 3, H, W) DensePose then OpenPose in [-1, 1], "B": (T, 3, H, W),
    "sequence", "frame_indices", "B_paths"}``.
    """

    def __init__(
        self,
        root,
        phase: str = "train",
        *,
        use_densepose: bool | None = None,
        use_openpose: bool = True,
        n_frames_total: int = 30,
        n_frames_G: int = 3,
        max_t_step: int = 1,
        frames_per_load: int | None = None,
        augment: Vid2VidAugment | None = None,
        random_drop_prob: float = 0.05,
        remove_face_labels: bool = False,
        basic_point_only: bool = False,
        train: bool = True,
    ):
        self.root = Path(root)
        if use_densepose is None:  # DensePose when the data set has it
            use_densepose = (self.root / f"{phase}_densepose").is_dir()
            if not use_densepose:
                log.info("%s has no %s_densepose folder: OpenPose keypoints only", self.root, phase)
        if not (use_densepose or use_openpose):
            raise ValueError("use_densepose and use_openpose cannot both be False")
        self.n_frames_total, self.n_frames_G, self.max_t_step = n_frames_total, n_frames_G, max_t_step
        self.frames_per_load, self.train = frames_per_load, train
        self.augment = augment if augment is not None else Vid2VidAugment()
        self.drop_prob = random_drop_prob if train else 0.0
        self.remove_face_labels, self.basic_point_only = remove_face_labels, basic_point_only
        images = list_sequences(self.root / f"{phase}_img")
        self.names = list(images)
        self.paths = [{"img": images[name]} for name in self.names]
        inputs = ([("densepose", {".png", ".jpg", ".jpeg"})] if use_densepose else []) + (
            [("openpose", {".json"})] if use_openpose else []
        )
        for key, extensions in inputs:
            folder = self.root / f"{phase}_{key}"
            if not folder.is_dir():
                raise VideoDataError(f"data set folder {folder} does not exist")
            for name, paths in zip(self.names, self.paths):
                files = sorted(p for p in (folder / name).glob("*") if p.suffix.lower() in extensions)
                if len(files) != len(paths["img"]):
                    raise VideoDataError(
                        f"sequence {name!r} has {len(files)} files in {folder / name} but "
                        f"{len(paths['img'])} frames in {self.root / f'{phase}_img' / name}"
                    )
                paths[key] = files
        self.inputs = [key for key, _ in inputs]
        lengths = [len(p["img"]) for p in self.paths]
        too_short = [f"{name} ({n} frames)" for name, n in zip(self.names, lengths) if n < n_frames_G]
        if too_short:
            raise SequenceTooShortError(
                f"a clip needs at least n_frames_G={n_frames_G} frames, but these sequences in "
                f"{self.root / f'{phase}_img'} are shorter: " + ", ".join(too_short)
            )
        counts = torch.tensor([n - n_frames_G + 1 for n in lengths], dtype=torch.float64)
        self.sequence_weights = counts / counts.sum()
        self.windows = [(s, start) for s, n in enumerate(lengths) for start in range(n - n_frames_G + 1)]

    def __len__(self):
        return len(self.windows)

    def __getitem__(self, index):
        if self.train:
            sequence = int(torch.multinomial(self.sequence_weights, 1))
            paths = self.paths[sequence]
            clip = draw_clip(
                len(paths["img"]),
                self.n_frames_total,
                self.n_frames_G,
                self.max_t_step,
                self.frames_per_load,
                start_hint=index,
            )
            indices = [clip.start + i * clip.t_step for i in range(clip.num_frames)]
        else:
            sequence, start = self.windows[index]
            paths = self.paths[sequence]
            indices = list(range(start, start + self.n_frames_G))
        size = load_image(paths["img"][indices[0]], "RGB").size
        params = draw_frame_params(self.augment, size, train=self.train)
        params = type(params)(params.new_size, params.crop_box, False)  # pose frames are never flipped
        inputs, reals = [], []
        for i in indices:
            channels = []
            if "densepose" in self.inputs:
                channels.append(self._densepose(paths["densepose"][i], params))
            if "openpose" in self.inputs:
                drawn = render_openpose(
                    paths["openpose"][i],
                    size,
                    drop_prob=self.drop_prob,
                    remove_face_labels=self.remove_face_labels,
                    basic_point_only=self.basic_point_only,
                )
                channels.append(self._nearest(drawn, params))
            inputs.append(torch.cat(channels))
            reals.append(image_to_tensor(apply_frame_params(load_image(paths["img"][i], "RGB"), params)))
        return {
            "A": central_half(torch.stack(inputs)),
            "B": central_half(torch.stack(reals)),
            "sequence": self.names[sequence],
            "frame_indices": indices,
            "B_paths": [str(paths["img"][i]) for i in indices],
        }

    @staticmethod
    def _nearest(rgb: np.ndarray, params) -> torch.Tensor:
        channels = [apply_frame_params_to_ids(rgb[:, :, c], params) for c in range(3)]
        return image_to_tensor(np.stack(channels, axis=2))

    def _densepose(self, path, params) -> torch.Tensor:
        iuv = np.array(load_image(path, "RGB"))
        if self.drop_prob > 0:
            parts = iuv[:, :, 2].copy()
            for part in range(1, 25):
                if torch.rand(()).item() < self.drop_prob:
                    iuv[parts == part] = 0
        if self.remove_face_labels:
            iuv[np.isin(iuv[:, :, 2], FACE_PARTS)] = 0
        out = self._nearest(iuv, params)
        # the part index (0..24) is stretched to the full range like the other channels
        out[2] = ((out[2] + 1) * 127.5 / 24) * 2 - 1
        return out
