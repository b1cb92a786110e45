import json

import numpy as np
import pytest

from vid2vid_fast.data.openpose_keypoints import BODY_25_FROM_POSE, body25_from_pose, write_openpose_json
from vid2vid_fast.data.pose import BODY_COLORS, render_openpose


def synthetic_landmarks():
    """Pose landmark i at (10 i, 5 i) with visibility 0.5 + i / 100."""
    i = np.arange(33, dtype=np.float64)
    return np.stack([10 * i, 5 * i, 0.5 + i / 100], axis=1)


def test_pose_landmarks_map_to_body_25():
    body = body25_from_pose(synthetic_landmarks())
    assert body.shape == (25, 3) and len(BODY_25_FROM_POSE) == 25
    assert tuple(body[0]) == (0, 0, 0.5)  # nose
    assert tuple(body[1]) == pytest.approx((115, 57.5, 0.61))  # neck: between the shoulders 11 and 12
    assert tuple(body[2]) == pytest.approx((120, 60, 0.62))  # right shoulder is Pose's right shoulder (12)
    assert tuple(body[8]) == pytest.approx((235, 117.5, 0.73))  # mid-hip: between the hips 23 and 24
    assert body[4, 0] == 160 and body[7, 0] == 150  # right wrist 16, left wrist 15
    assert body[11, 0] == 280 and body[24, 0] == 300 and body[22, 0] == 320  # right ankle, heel, big toe
    assert body[20, 2] == 0 and body[23, 2] == 0  # no small toes
    with pytest.raises(ValueError, match="33, 3"):
        body25_from_pose(np.zeros((25, 3)))


def test_openpose_json_round_trip(tmp_path):
    pytest.importorskip("cv2")
    body = np.zeros((25, 3))
    body[1] = (40, 10, 0.9)
    body[8] = (40, 50, 0.8)
    path = write_openpose_json(tmp_path / "frame_00000_keypoints.json", body)
    person = json.loads(path.read_text())["people"][0]
    assert np.allclose(np.reshape(person["pose_keypoints_2d"], (25, 3)), body)
    assert len(person["hand_left_keypoints_2d"]) == 63 and not any(person["face_keypoints_2d"])
    image = render_openpose(path, (80, 64))
    assert tuple(image[30, 40]) == BODY_COLORS[1] and not image[:, :30].any()  # neck - mid-hip only
    empty = write_openpose_json(tmp_path / "frame_00001_keypoints.json", None)
    assert json.loads(empty.read_text())["people"] == [] and not render_openpose(empty, (80, 64)).any()
    assert not list(tmp_path.glob(".*"))  # written atomically, nothing left over
