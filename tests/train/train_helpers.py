"""A tiny image-sequence data set in vid2vid's layout, and tiny run configs, for the trainer tests."""

from pathlib import Path

import numpy as np

from vid2vid_fast.train.config import make_config

TINY_MODEL = {"ngf": 4, "n_downsample_G": 2, "n_blocks": 2, "ndf": 4, "n_layers_D": 1, "num_D": 1,
              "n_frames_D": 2, "n_scales_temporal": 2}


def make_sequences(root, sequences=2, frames=9, size=(32, 32), seed=0) -> Path:
    """{root}/train_A/<seq>/*.png (edge maps, one channel) and train_B (RGB): a square moving over a
    gradient, so that consecutive frames differ by motion that a flow explains."""
    from PIL import Image

    root = Path(root)
    rng = np.random.default_rng(seed)
    h, w = size
    for s in range(sequences):
        (root / "train_A" / f"seq{s}").mkdir(parents=True)
        (root / "train_B" / f"seq{s}").mkdir(parents=True)
        base = np.zeros((h, w, 3), np.float64)
        base[..., 0] = np.linspace(40, 200, w)[None, :]
        base[..., 1] = np.linspace(200, 60, h)[:, None]
        base[..., 2] = rng.uniform(50, 150)
        y, x = rng.integers(2, h // 2), rng.integers(2, w // 2)
        for t in range(frames):
            image = base.copy()
            top, left = y + t % 4, x + t
            image[top : top + 10, left : left + 10] = rng.uniform(0, 255, 3) if t == 0 else image[top : top + 10, left : left + 10] * 0 + 230
            edges = np.zeros((h, w), np.uint8)
            edges[top, left : left + 10] = edges[top + 9, left : left + 10] = 255
            edges[top : top + 10, left] = edges[top : top + 10, left + 9] = 255
            Image.fromarray(image.clip(0, 255).astype(np.uint8)).save(root / "train_B" / f"seq{s}" / f"{t:04d}.png")
            Image.fromarray(edges).save(root / "train_A" / f"seq{s}" / f"{t:04d}.png")
    return root


def tiny_config(dataroot, output_dir, **sections):
    """A config that trains in well under a second per iteration on 2 CPU cores."""
    overrides = {
        "data": {"dataroot": str(dataroot) if dataroot else "", "load_size": 32, "fine_size": 32, "num_workers": 0},
        "model": dict(TINY_MODEL),
        "schedule": {"niter": 1, "niter_decay": 1, "n_frames_total": 4, "niter_step": 1, "epoch_length": 2},
        "run": {"output_dir": str(output_dir), "name": "tiny", "progress": False, "save_latest_freq": 1000,
                "num_threads": 1},
    }
    for section, values in sections.items():
        overrides.setdefault(section, {}).update(values)
    return make_config(overrides=overrides)


def make_video(path, frames=14, size=(32, 48)) -> Path:
    """A VP9 clip (DALI decodes VP9 on the CPU) of a square moving over a gradient."""
    import torch

    from vid2vid_fast.data import prepare_video
    from vid2vid_fast.train.outputs import write_video

    h, w = size
    video = torch.zeros(frames, 3, h, w)
    video[:, 0] = torch.linspace(-0.8, 0.6, w)
    video[:, 1] = torch.linspace(0.5, -0.5, h)[:, None]
    for t in range(frames):
        video[t, :, 6 + t % 5 : 18 + t % 5, 4 + 2 * t : 16 + 2 * t] = 0.9
    path = Path(path)
    source = write_video(path.with_suffix(".mp4"), video, fps=25)
    return prepare_video(source, path.with_suffix(".webm"), codec="vp9", progress=False)
