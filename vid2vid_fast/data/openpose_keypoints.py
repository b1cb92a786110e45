"""mediapipe Pose's 33 landmarks as OpenPose BODY_25 keypoints, written as OpenPose JSON (the files
``PoseDataset`` reads and ``render_openpose`` draws).

``BODY_25_FROM_POSE`` gives, for each BODY_25 keypoint, the Pose landmarks it is made of: one
landmark, the midpoint of two (the neck between the shoulders, the mid-hip between the hips; their
confidence is the lower of the two), or none (Pose has no small toes: confidence 0, the limb to it is
not drawn). OpenPose's "right" is the person's right, as is Pose's. Confidences are Pose's
visibilities. Face and hand keypoints are written as zeros (not detected).
"""

import json
import os
from pathlib import Path

import numpy as np

# BODY_25 order: nose, neck, right shoulder/elbow/wrist, left shoulder/elbow/wrist, mid-hip,
# right hip/knee/ankle, left hip/knee/ankle, right eye, left eye, right ear, left ear,
# left big toe, left small toe, left heel, right big toe, right small toe, right heel
BODY_25_FROM_POSE = (
    (0,), (11, 12), (12,), (14,), (16,), (11,), (13,), (15,), (23, 24), (24,), (26,), (28,), (23,),
    (25,), (27,), (5,), (2,), (8,), (7,), (31,), (), (29,), (32,), (), (30,),
)
OPENPOSE_PARTS = (("face_keypoints_2d", 70), ("hand_left_keypoints_2d", 21), ("hand_right_keypoints_2d", 21))


def body25_from_pose(landmarks: np.ndarray) -> np.ndarray:
    """(33, 3) Pose landmarks (x, y, visibility) -> (25, 3) BODY_25 keypoints (x, y, confidence)."""
    landmarks = np.asarray(landmarks, np.float64)
    if landmarks.shape != (33, 3):
        raise ValueError(f"expected (33, 3) Pose landmarks, got {landmarks.shape}")
    body = np.zeros((25, 3))
    for index, sources in enumerate(BODY_25_FROM_POSE):
        if sources:
            picked = landmarks[list(sources)]
            body[index, :2] = picked[:, :2].mean(axis=0)
            body[index, 2] = picked[:, 2].min()
    return body


def write_openpose_json(path, body25: np.ndarray | None) -> Path:
    """One frame's OpenPose JSON (version 1.3): one person with ``body25`` (25, 3), or no one."""
    path = Path(path)
    people = []
    if body25 is not None:
        person = {"person_id": [-1], "pose_keypoints_2d": np.asarray(body25, np.float64).ravel().round(3).tolist()}
        person.update({key: [0.0] * (3 * n) for key, n in OPENPOSE_PARTS})
        people.append(person)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(json.dumps({"version": 1.3, "people": people}))
    os.replace(tmp, path)
    return path
