import json

import numpy as np
import pytest
from data_helpers import decode_all, truncated_copy

from vid2vid_fast.data import TemporalDataset, Vid2VidAugment, VideoDataError
from vid2vid_fast.data.edges import MANIFEST, build_edge_dataset, canny_edges, default_edge_dataset

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("cv2")


def test_layout_frames_and_edges(edge_root, carphone):
    frames_b = sorted((edge_root / "train_B" / "carphone_pristine").glob("*.png"))
    frames_a = sorted((edge_root / "train_A" / "carphone_pristine").glob("*.png"))
    assert (
        [p.name for p in frames_a] == [p.name for p in frames_b] == [f"frame_{i:05d}.png" for i in range(24)]
    )
    assert len(list((edge_root / "train_B" / "carphone_short").glob("*.png"))) == 20
    frame = np.asarray(Image.open(frames_b[5]))
    edges = np.asarray(Image.open(frames_a[5]))
    assert frame.shape == (72, 88, 3) and edges.shape == (72, 88)
    assert set(np.unique(edges)) == {0, 255} and 0.01 < (edges > 0).mean() < 0.5
    assert (edges == canny_edges(frame)).all()


def test_edges_are_deterministic(edge_root, carphone, tmp_path):
    again = build_edge_dataset([carphone], tmp_path, height=72, max_frames=24, progress=False)
    for key in ("train_A", "train_B"):
        for first in sorted((edge_root / key / "carphone_pristine").glob("*.png")):
            assert (again / key / "carphone_pristine" / first.name).read_bytes() == first.read_bytes()


def test_cached_sequences_are_reused_and_rebuilt_when_settings_change(carphone, tmp_path):
    build_edge_dataset([carphone], tmp_path, height=36, max_frames=3, progress=False)
    frame = tmp_path / "train_A" / "carphone_pristine" / "frame_00000.png"
    first_write = frame.stat().st_mtime_ns
    build_edge_dataset([carphone], tmp_path, height=36, max_frames=3, progress=False)
    assert frame.stat().st_mtime_ns == first_write
    build_edge_dataset([carphone], tmp_path, height=36, max_frames=3, low_threshold=20, progress=False)
    assert frame.stat().st_mtime_ns != first_write
    manifest = json.loads((tmp_path / "train_A" / "carphone_pristine" / MANIFEST).read_text())
    assert manifest["low_threshold"] == 20
    assert not [p for p in (tmp_path / "train_A").iterdir() if p.name.startswith(".")]


def test_a_damaged_video_is_named_and_leaves_no_sequence(prepared, tmp_path):
    bad = truncated_copy(prepared["vp9"], tmp_path)
    with pytest.raises(VideoDataError, match=str(bad)):
        build_edge_dataset([bad], tmp_path / "out", progress=False)
    assert list((tmp_path / "out" / "train_A").iterdir()) == []


def test_frames_match_the_video(edge_root, carphone):
    # 144 -> 72 rows with an area filter: close to a 2x2 mean of the decoded frames
    source = decode_all(carphone)[3].astype(np.float64)
    halved = source.reshape(72, 2, 88, 2, 3).mean(axis=(1, 3))
    stored = np.asarray(
        Image.open(edge_root / "train_B" / "carphone_pristine" / "frame_00003.png"), np.float64
    )
    assert np.abs(stored - halved).mean() < 2.0


def test_default_data_set_is_the_bundled_footage(carphone, tmp_path):
    root = default_edge_dataset(tmp_path, height=64, max_frames=4, progress=False)
    dataset = TemporalDataset(
        root,
        label_nc=0,
        input_nc=1,
        n_frames_total=2,
        augment=Vid2VidAugment("scale_width_and_crop", 160, 64),
    )
    assert dataset.names == ["bigbuckbunny", "bikes", "carphone_pristine"]
    item = dataset[1]
    assert item["A"].shape == (4, 1, 64, 64) and item["B"].shape == (4, 3, 64, 64)
