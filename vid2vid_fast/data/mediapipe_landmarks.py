"""Face and body landmarks from mediapipe's legacy "solutions" models, which the mediapipe 0.10.14
wheel ships inside the package (Apache-2.0): FaceMesh (468 points) and Pose (33 landmarks, the
``model_complexity=1`` "full" model). Nothing is downloaded: ``model_complexity`` 0 and 2 are not in
the wheel (asking for them starts a download), and releases after 0.10.21 ship no models at all, so
the model files are checked before use.

Pose runs in static-image mode (each frame detected on its own): in tracking mode the Pose model kept
a phantom person on empty road frames of the bundled bikes clip.
"""

import os
from pathlib import Path

import numpy as np

from .errors import LabelToolError

MEDIAPIPE_VERSION = "0.10.14"
INSTALL_HINT = f'pip install "vid2vid-fast[labels]" (mediapipe=={MEDIAPIPE_VERSION})'
FACE_MODELS = (
    "face_detection/face_detection_short_range.tflite",
    "face_landmark/face_landmark.tflite",
)
POSE_MODELS = ("pose_detection/pose_detection.tflite", "pose_landmark/pose_landmark_full.tflite")


def import_mediapipe(models, what: str):
    """The mediapipe module, after checking that its wheel holds ``models`` (paths under
    ``mediapipe/modules``); ``what`` names the task that needs it in the error."""
    # mediapipe's C++ side logs every graph start to stderr; warnings and errors still show
    os.environ.setdefault("GLOG_minloglevel", "2")
    try:
        import mediapipe
        from mediapipe.python import solutions  # noqa: F401  (the legacy API used below)
    except ImportError as error:
        raise LabelToolError(f"{what} needs mediapipe, which is not installed ({error}); {INSTALL_HINT}") from error
    folder = Path(mediapipe.__file__).parent / "modules"
    missing = [model for model in models if not (folder / model).is_file()]
    if missing:
        version = getattr(mediapipe, "__version__", "unknown")
        raise LabelToolError(
            f"{what} needs the models {', '.join(missing)} in {folder}, which mediapipe {version} does not "
            f"ship (only releases up to 0.10.21 do); {INSTALL_HINT}"
        )
    return mediapipe


class FaceMeshRunner:
    """The 468 FaceMesh points of the most prominent face of each frame, in video (tracking) mode:
    ``runner(rgb)`` -> float (468, 2) pixel coordinates, or None when no face is found."""

    def __init__(self, min_confidence: float = 0.5):
        mediapipe = import_mediapipe(FACE_MODELS, "--task face")
        self.mesh = mediapipe.solutions.face_mesh.FaceMesh(
            static_image_mode=False,
            max_num_faces=1,
            refine_landmarks=False,
            min_detection_confidence=min_confidence,
            min_tracking_confidence=min_confidence,
        )

    def __call__(self, rgb: np.ndarray):
        result = self.mesh.process(np.ascontiguousarray(rgb))
        if not result.multi_face_landmarks:
            return None
        height, width = rgb.shape[:2]
        points = result.multi_face_landmarks[0].landmark
        return np.array([(p.x * width, p.y * height) for p in points], np.float64)

    def close(self):
        self.mesh.close()


class PoseRunner:
    """The 33 Pose landmarks of one person per frame, each frame detected on its own:
    ``runner(rgb)`` -> float (33, 3) rows (x pixels, y pixels, visibility), or None."""

    def __init__(self, min_confidence: float = 0.5):
        mediapipe = import_mediapipe(POSE_MODELS, "--task pose")
        self.pose = mediapipe.solutions.pose.Pose(
            static_image_mode=True,
            model_complexity=1,  # the only model in the wheel; 0 and 2 would be downloaded
            enable_segmentation=False,
            min_detection_confidence=min_confidence,
        )

    def __call__(self, rgb: np.ndarray):
        result = self.pose.process(np.ascontiguousarray(rgb))
        if result.pose_landmarks is None:
            return None
        height, width = rgb.shape[:2]
        points = result.pose_landmarks.landmark
        return np.array([(p.x * width, p.y * height, p.visibility) for p in points], np.float64)

    def close(self):
        self.pose.close()
