"""Label data sets from video (``labels.build_label_dataset``): real face and pose extraction on the
bundled and mecavideo footage, the OpenPose round trip through ``PoseDataset``, caching, and every bad
input: each names the file or option, and leaves nothing behind."""

import json
import sys
import time

import numpy as np
import pytest
import torch

from vid2vid_fast.data import PoseDataset, Vid2VidAugment, VideoDataError
from vid2vid_fast.data.errors import LabelToolError, NoSubjectFoundError
from vid2vid_fast.data.labels import build_label_dataset

pytest.importorskip("cv2")
pytest.importorskip("av")


def needs_mediapipe():
    pytest.importorskip("mediapipe", reason="face and pose labels need the 'labels' extra (mediapipe)")


def plain_video(path, frames=10):
    """A clip of a smooth gradient: nothing in it is a face or a person."""
    from vid2vid_fast.train.outputs import write_video

    video = torch.zeros(frames, 3, 96, 128)
    video[:, 0] = torch.linspace(-0.8, 0.6, 128)
    video[:, 1] = torch.linspace(0.5, -0.5, 96)[:, None] + torch.arange(frames)[:, None, None] * 0.02
    return write_video(path, video, fps=25)


def test_unknown_task_names_the_option(carphone, tmp_path):
    with pytest.raises(ValueError, match=r"unknown label task 'depth' \(--task\)"):
        build_label_dataset([carphone], tmp_path / "out", "depth")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("task", ["face", "pose", "edges"])
def test_empty_and_unreadable_videos_are_named(tmp_path, task):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    text = tmp_path / "notes.mp4"
    text.write_text("not a video")
    for video, message in ((empty, "is empty"), (text, "not a readable video"), (tmp_path / "gone.mp4", "does not exist")):
        with pytest.raises(VideoDataError, match=f"{video}.*{message}"):
            build_label_dataset([video], tmp_path / "out", task)
        assert not (tmp_path / "out").exists()


def test_missing_mediapipe_says_how_to_install_it(carphone, tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mediapipe", None)  # import mediapipe raises ImportError
    with pytest.raises(LabelToolError, match=r"--task face needs mediapipe.*vid2vid-fast\[labels\]"):
        build_label_dataset([carphone], tmp_path / "out", "face", max_frames=4)
    assert not (tmp_path / "out").exists()


def test_a_mediapipe_without_models_is_named(carphone, tmp_path, monkeypatch):
    # what mediapipe 0.10.30 and later look like: the solutions API, no model files in mediapipe/modules
    package = tmp_path / "site" / "mediapipe"
    (package / "python" / "solutions").mkdir(parents=True)
    (package / "__init__.py").write_text('__version__ = "0.10.30"\n')
    (package / "python" / "__init__.py").write_text("")
    (package / "python" / "solutions" / "__init__.py").write_text("")
    def mediapipe_modules():
        return [m for m in sys.modules if m == "mediapipe" or m.startswith("mediapipe.")]

    for name in mediapipe_modules():
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    try:
        with pytest.raises(LabelToolError, match=r"pose_landmark/pose_landmark_full.tflite.*mediapipe 0.10.30 does not ship"):
            build_label_dataset([carphone], tmp_path / "out", "pose", max_frames=4)
    finally:
        for name in mediapipe_modules():  # the fake package must not stay imported
            del sys.modules[name]
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("task, subject", [("face", "face"), ("pose", "person")])
def test_a_video_without_a_face_or_person_is_an_error_naming_it(tmp_path, task, subject):
    needs_mediapipe()
    video = plain_video(tmp_path / "plain.mp4")
    with pytest.raises(NoSubjectFoundError, match=f"no {subject} found in any of the 10 frames of {video}"):
        build_label_dataset([video], tmp_path / "out", task)
    assert not (tmp_path / "out").exists()


def test_face_labels_of_the_carphone_clip(carphone, tmp_path, caplog):
    needs_mediapipe()
    root = tmp_path / "face"
    with caplog.at_level("INFO", logger="vid2vid_fast.data"):
        build_label_dataset([carphone], root, "face", height=72, max_frames=12, progress=False)
    assert "12 of 12 frames found, 0 filled" in caplog.text
    labels = sorted((root / "train_A" / "carphone_pristine").glob("*.png"))
    frames = sorted((root / "train_B" / "carphone_pristine").glob("*.png"))
    assert [p.name for p in labels] == [p.name for p in frames] and len(labels) == 12
    from PIL import Image

    label = np.asarray(Image.open(labels[5]))
    assert label.shape == (72, 88) and set(np.unique(label)) == {0, 255}
    # the face's polylines are in the middle of this clip's frame (the man's face), Canny edges elsewhere
    assert label[20:60, 25:65].mean() > 5
    manifest = json.loads((root / ".labels" / "carphone_pristine.json").read_text())
    assert manifest["sequences"] == {"carphone_pristine": [0, 12]}
    # cached: a second call with the same settings rewrites nothing
    stamp = labels[0].stat().st_mtime_ns
    build_label_dataset([carphone], root, "face", height=72, max_frames=12, progress=False)
    assert labels[0].stat().st_mtime_ns == stamp and not list(root.glob(".*.tmp*"))


@pytest.mark.slow
def test_pose_keypoints_of_a_mecavideo_clip_round_trip_through_pose_dataset(mecavideo, tmp_path):
    needs_mediapipe()
    root = tmp_path / "pose"
    # a lower detection confidence finds the small cyclist of this 400x300 clip on 10 of 16 frames; the
    # gaps (at most 4 frames) are filled
    build_label_dataset([mecavideo[1]], root, "pose", height=None, min_confidence=0.3, progress=False)
    keypoints = sorted((root / "train_openpose" / "g2").glob("*_keypoints.json"))
    assert len(keypoints) == 16 and len(list((root / "train_img" / "g2").glob("*.png"))) == 16
    person = json.loads(keypoints[0].read_text())["people"][0]
    assert len(person["pose_keypoints_2d"]) == 75 and len(person["face_keypoints_2d"]) == 210
    body = np.asarray(person["pose_keypoints_2d"]).reshape(25, 3)
    assert 0 < body[1, 0] < 400 and 0 < body[1, 1] < 300 and body[20, 2] == 0  # a neck; no small toe
    dataset = PoseDataset(root, n_frames_G=3, train=False, augment=Vid2VidAugment("none"))
    item = dataset[0]
    assert item["A"].shape[1] == 3  # OpenPose only: there is no DensePose
    assert (item["A"] > -1).any()  # limbs drawn


@pytest.mark.slow
def test_pose_keeps_the_person_segments_of_the_bikes_clip(tmp_path, caplog):
    needs_mediapipe()
    from vid2vid_fast.data import bundled_clip

    try:
        bikes = bundled_clip("bikes.mp4")
    except FileNotFoundError as error:
        pytest.skip(str(error))
    started = time.perf_counter()
    with caplog.at_level("INFO", logger="vid2vid_fast.data"):
        build_label_dataset([bikes], tmp_path / "pose", "pose", height=96, max_frames=60, progress=False)
    print(f"pose labels of 60 bikes frames (640x272): {60 / (time.perf_counter() - started):.1f} frames/s")
    # a man rides past in frames ~30-45; the empty road before him is dropped, not labelled
    names = sorted(p.name for p in (tmp_path / "pose" / "train_img").iterdir())
    assert len(names) == 1 and names[0].startswith("bikes_from000")
    start = int(names[0][len("bikes_from") :])
    assert 25 <= start <= 35
    assert "dropped" in caplog.text
