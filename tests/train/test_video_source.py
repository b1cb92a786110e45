import numpy as np
import pytest
import torch
from test_trainer import states_equal
from train_helpers import make_video, tiny_config

from vid2vid_fast.data.edges import canny_edges
from vid2vid_fast.data.video_dali import dali_available
from vid2vid_fast.train.generate import generate
from vid2vid_fast.train.trainer import Trainer
from vid2vid_fast.train.video_source import edge_map


def test_edge_map_agrees_with_opencv_canny():
    rng = np.random.default_rng(0)
    image = np.zeros((64, 80, 3), np.float64)
    image[...] = np.linspace(30, 220, 80)[None, :, None]
    yy, xx = np.mgrid[:64, :80]
    for _ in range(6):
        cy, cx, r = rng.integers(8, 56), rng.integers(8, 72), rng.integers(4, 12)
        image[(yy - cy) ** 2 + (xx - cx) ** 2 < r**2] = rng.uniform(0, 255, 3)
    image = image.astype(np.uint8)
    reference = canny_edges(image) > 0
    ours = edge_map(torch.from_numpy(image).permute(2, 0, 1).float() / 127.5 - 1)[0].numpy() > 0
    near = np.zeros_like(reference)
    for dy in (-1, 0, 1):
        for dx in (-1, 0, 1):
            near |= np.roll(reference, (dy, dx), axis=(0, 1))
    assert ours.sum() > 0.8 * reference.sum()
    assert (ours & near).sum() / ours.sum() > 0.97  # every edge we find is within a pixel of OpenCV's


def video_config(video, out, loader="pyav", **schedule):
    return tiny_config(None, out, data={"source": "videos", "videos": [str(video)], "video_size": [32, 32],
                                        "dataroot": ""},
                       speed={"loader": loader}, schedule={"epoch_length": 0, **schedule})


@pytest.fixture(scope="module")
def video(tmp_path_factory):
    pytest.importorskip("av")
    return make_video(tmp_path_factory.mktemp("video") / "clip")


def test_video_source_resume_is_bit_exact(video, tmp_path):
    # 14 frames: epoch 1 has 2 clips of 4 + 2 frames (4 iterations each), epoch 2 one clip of 8 + 2
    full = Trainer(video_config(video, tmp_path / "a", max_iters=11))
    assert full.source.iterations(1, 4) == 8 and full.source.iterations(2, 8) == 8
    full.train()
    part = Trainer(video_config(video, tmp_path / "b", max_iters=5))
    part.train()
    resumed = Trainer(video_config(video, tmp_path / "b", max_iters=11), resume=part.checkpoint_path)
    resumed.train()
    states_equal(full, resumed)
    result = generate(resumed.checkpoint_path, tmp_path / "gen", frames=4)
    assert result["sequences"]["clip"]["frames"] == 4 and not result["sequences"]["clip"]["held_out"]


@pytest.mark.skipif(not dali_available(), reason="NVIDIA DALI is not installed")
def test_dali_loader_trains(video, tmp_path):
    trainer = Trainer(video_config(video, tmp_path, loader="dali", max_iters=2))
    trainer.train()
    assert trainer.iteration == 2
