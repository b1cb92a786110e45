import json

import numpy as np
import pytest
import torch

from vid2vid_fast.data import Vid2VidAugment, VideoDataError
from vid2vid_fast.data.pose import BODY_COLORS, PoseDataset, central_half, render_openpose

Image = pytest.importorskip("PIL.Image")

pytest.importorskip("cv2")


def person(points: dict, face_ok=False):
    """OpenPose JSON for one person with the given BODY_25 points {index: (x, y)} at confidence 0.9."""
    pose = np.zeros((25, 3))
    for index, (x, y) in points.items():
        pose[index] = (x, y, 0.9)
    face = np.zeros((70, 3))
    if face_ok:
        face[17:22] = [(20 + 4 * i, 10, 0.9) for i in range(5)]
    return {
        "pose_keypoints_2d": pose.ravel().tolist(),
        "face_keypoints_2d": face.ravel().tolist(),
        "hand_left_keypoints_2d": [0.0] * 63,
        "hand_right_keypoints_2d": [0.0] * 63,
    }


def write_json(path, people):
    path.write_text(json.dumps({"version": 1.3, "people": people}))
    return path


def test_a_limb_is_drawn_in_its_colour_between_its_points(tmp_path):
    # neck (1) to mid-hip (8) is BODY_EDGES[1]
    path = write_json(tmp_path / "k.json", [person({1: (40, 10), 8: (40, 50)})])
    image = render_openpose(path, (80, 64))
    assert tuple(image[30, 40]) == BODY_COLORS[1]
    assert (image[30, 37:43] == BODY_COLORS[1]).all() and not image[30, 50].any() and not image[:, :30].any()
    assert not render_openpose(path, (80, 64), drop_prob=1.0).any()


def test_crossing_limbs_average_their_colours(tmp_path):
    # left upper arm 5-6 (horizontal) crosses neck-hip 1-8 (vertical) at (40, 30)
    path = write_json(tmp_path / "k.json", [person({1: (40, 10), 8: (40, 50), 5: (20, 30), 6: (60, 30)})])
    image = render_openpose(path, (80, 64)).astype(int)
    assert tuple(image[30, 40]) == tuple((np.array(BODY_COLORS[1]) + BODY_COLORS[6]) // 2)


def test_face_curves_need_confident_points(tmp_path):
    drawn = render_openpose(write_json(tmp_path / "a.json", [person({}, face_ok=True)]), (80, 64))
    assert (drawn[10, 24:36] == 255).all()
    assert not render_openpose(write_json(tmp_path / "b.json", [person({})]), (80, 64)).any()


def test_unreadable_keypoints_are_named(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text("{not json")
    with pytest.raises(VideoDataError, match=f"cannot read OpenPose keypoints {path}"):
        render_openpose(path, (8, 8))


@pytest.fixture(scope="module")
def pose_root(edge_root, tmp_path_factory):
    """Real frames (carphone, 24 frames, 72x88) with a stick figure and a DensePose-like IUV map."""
    import shutil

    root = tmp_path_factory.mktemp("pose")
    shutil.copytree(edge_root / "train_B" / "carphone_pristine", root / "train_img" / "carphone")
    for key in ("train_openpose", "train_densepose"):
        (root / key / "carphone").mkdir(parents=True)
    for i, frame in enumerate(sorted((root / "train_img" / "carphone").glob("*.png"))):
        write_json(
            root / "train_openpose" / "carphone" / f"{frame.stem}.json",
            [person({1: (44, 5 + i), 8: (44, 60)})],
        )
        iuv = np.zeros((72, 88, 3), np.uint8)
        iuv[20:50, 30:60] = (128, 64, 12)  # part 12
        Image.fromarray(iuv).save(root / "train_densepose" / "carphone" / frame.name)
    return root


def test_pose_items_stack_densepose_and_openpose_and_keep_the_central_half(pose_root):
    dataset = PoseDataset(
        pose_root,
        n_frames_total=2,
        random_drop_prob=0.0,
        augment=Vid2VidAugment("scale_width", load_size=256),
    )
    assert len(dataset) == 22
    item = dataset[3]
    assert item["A"].shape == (4, 6, 224, 128) and item["B"].shape == (4, 3, 224, 128)
    assert item["frame_indices"] == [3, 4, 5, 6]  # start = index % offset_max, t_step 1
    densepose, openpose = item["A"][:, :3], item["A"][:, 3:]
    # part 12 of 24 stretched to the full range: 12 * 255 / 24 = 127.5 -> 0 in [-1, 1]
    assert torch.allclose(densepose[0, 2].max(), torch.tensor(0.0), atol=1e-6)
    assert (openpose > -1).any()


def test_pose_frames_are_never_flipped(pose_root):
    torch.manual_seed(0)
    dataset = PoseDataset(
        pose_root, n_frames_total=1, random_drop_prob=0.0, augment=Vid2VidAugment("none", flip=True)
    )
    for index in range(8):
        item = dataset[index]
        path = item["B_paths"][0]
        expected = (
            np.asarray(Image.open(path).resize((96, 64), Image.Resampling.BICUBIC), np.float32) / 127.5 - 1
        )
        assert torch.allclose(
            item["B"][0], central_half(torch.from_numpy(expected).permute(2, 0, 1)), atol=1e-6
        )


def test_openpose_only_and_missing_folders(pose_root, tmp_path):
    dataset = PoseDataset(pose_root, use_densepose=False, n_frames_total=1, augment=Vid2VidAugment("none"))
    assert dataset[0]["A"].shape[1] == 3
    (tmp_path / "train_img" / "s").mkdir(parents=True)
    Image.new("RGB", (8, 8)).save(tmp_path / "train_img" / "s" / "0.png")
    with pytest.raises(VideoDataError, match=f"{tmp_path / 'train_densepose'} does not exist"):
        PoseDataset(tmp_path, use_densepose=True, n_frames_G=1)
