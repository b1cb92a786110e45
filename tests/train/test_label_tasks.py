"""The run's label task (``data.task``): the presets, how a pose data set becomes training labels, and
the three commands of "Train on your own video" (prepare, train, generate --video), with their errors."""

import shutil

import numpy as np
import pytest
from train_helpers import tiny_config

from vid2vid_fast.cli import main
from vid2vid_fast.data.openpose_keypoints import write_openpose_json
from vid2vid_fast.data.pose import render_openpose
from vid2vid_fast.train.config import ConfigError, make_config, save_yaml
from vid2vid_fast.train.data import make_dataset, prepare_data

Image = pytest.importorskip("PIL.Image")
pytest.importorskip("cv2")


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("VID2VID_FAST_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_presets_and_task_checks():
    assert make_config("demo").data.task == "face"
    pose = make_config("pose")
    assert (pose.data.task, pose.data.input_nc, pose.data.no_flip) == ("pose", 3, True)
    with pytest.raises(ConfigError, match="data.task 'pose' .* needs data.input_nc 3"):
        make_config(overrides={"data": {"task": "pose"}})
    with pytest.raises(ConfigError, match="data.task 'face' .* needs data.input_nc 1"):
        make_config(overrides={"data": {"task": "face", "input_nc": 3}})
    with pytest.raises(ConfigError, match="needs data.task 'edges'"):
        make_config(overrides={"data": {"task": "face", "source": "videos"}})
    with pytest.raises(ConfigError, match="data.task must be one of"):
        make_config(overrides={"data": {"task": "depth"}})


def pose_layout(root, frames=10, size=(64, 48)):
    """{root}/train_img/walk/*.png and train_openpose/walk/*_keypoints.json: a stick figure moving right."""
    (root / "train_img" / "walk").mkdir(parents=True)
    (root / "train_openpose" / "walk").mkdir(parents=True)
    for t in range(frames):
        Image.new("RGB", size, (40 + 10 * t, 90, 120)).save(root / "train_img" / "walk" / f"frame_{t:05d}.png")
        body = np.zeros((25, 3))
        body[1] = (20 + t, 10, 0.9)  # neck
        body[8] = (20 + t, 35, 0.9)  # mid-hip
        write_openpose_json(root / "train_openpose" / "walk" / f"frame_{t:05d}_keypoints.json", body)
    return root


def test_a_pose_data_set_trains_on_its_keypoints_drawn(tmp_path, cache):
    root = pose_layout(tmp_path / "pose")
    config = tiny_config(root, tmp_path, data={"task": "pose", "input_nc": 3, "resize_or_crop": "none",
                                               "held_out_frames": 3})
    split, train, test = prepare_data(config, progress=False)
    dataset = make_dataset(config, split, test)
    assert len(dataset.paths[0]["A"]) == 3 + 2  # the held-out frames and the two before them
    drawn = np.asarray(Image.open(dataset.paths[0]["A"][0]))
    expected = render_openpose(root / "train_openpose" / "walk" / "frame_00005_keypoints.json", (64, 48))
    assert dataset.paths[0]["A"][0].name == "frame_00005.png" and (drawn == expected).all() and drawn.any()
    assert Image.open(dataset.paths[0]["B"][0]).getpixel((0, 0)) == (90, 90, 120)
    assert prepare_data(config, progress=False)[0] == split  # drawn once, then reused


def test_prepare_train_and_transfer_with_face_labels(carphone, tmp_path, cache, capsys):
    pytest.importorskip("mediapipe", reason="face labels need the 'labels' extra (mediapipe)")
    data = tmp_path / "face"
    assert main(["prepare", "--task", "face", "--videos", str(carphone), "--output", str(data),
                 "--max_source_frames", "12", "--edge_height", "64"]) == 0
    assert f"--task face --dataroot {data}" in capsys.readouterr().out
    assert len(list((data / "train_A" / "carphone_pristine").glob("*.png"))) == 12
    config = tiny_config(data, tmp_path, data={"task": "face", "edge_height": 64, "max_source_frames": 12})
    yaml = save_yaml(config, tmp_path / "face.yaml")
    assert main(["train", "--config", str(yaml), "--max_iters", "2", "--no-generate"]) == 0
    capsys.readouterr()
    assert main(["generate", "--run", str(tmp_path / "tiny"), "--video", str(carphone)]) == 0
    printed = capsys.readouterr().out
    assert "face labels:" in printed and "synthesis:" in printed and "frames/s" in printed
    folder = tmp_path / "tiny" / "transfer" / "carphone_pristine" / "carphone_pristine"
    import av

    with av.open(str(folder / "label_and_synthesized.mp4")) as video:
        frames = [f.to_ndarray(format="rgb24") for f in video.decode(video=0)]
    assert len(frames) == 12 - 2  # every frame after the two real ones the generator starts from
    with av.open(str(folder / "synthesized.mp4")) as video:
        width = video.streams.video[0].width
    assert frames[0].shape[1] >= 2 * width  # label | synthesized

    # a copy of the run transfers into the copy: the folder in its saved config is history
    shutil.copytree(tmp_path / "tiny", tmp_path / "copy")
    shutil.rmtree(tmp_path / "tiny" / "transfer")
    assert main(["generate", "--run", str(tmp_path / "copy"), "--video", str(carphone)]) == 0
    assert (tmp_path / "copy" / "transfer" / "carphone_pristine" / "carphone_pristine" / "synthesized.mp4").is_file()
    assert not (tmp_path / "tiny" / "transfer").exists()


def test_bad_input_is_one_clear_line(tmp_path, cache, capsys):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    out = tmp_path / "out"
    assert main(["prepare", "--task", "face", "--videos", str(empty), "--output", str(out)]) == 2
    assert f"{empty} is empty" in capsys.readouterr().err and not out.exists()
    with pytest.raises(SystemExit) as exit_info:
        main(["prepare", "--task", "depth", "--output", str(out)])
    assert exit_info.value.code == 2 and "--task" in capsys.readouterr().err
    assert main(["generate", "--run", str(tmp_path / "run"), "--video", str(tmp_path / "gone.mp4")]) == 2
    assert f"{tmp_path / 'gone.mp4'} does not exist" in capsys.readouterr().err
