"""The video data path: video loaders (NVIDIA DALI, with a PyAV fallback), vid2vid's image-sequence
datasets, edge-map labels made from video, and bundled real footage.

Heavy optional dependencies (``nvidia.dali``, ``av``, ``cv2``) are imported only when used.
"""

from .edges import build_edge_dataset, default_edge_dataset
from .errors import DecodeTimeoutError, SequenceTooShortError, UnsupportedCodecError, VideoDataError
from .footage import bundled_clip, bundled_clips, bundled_footage_dir
from .image_sequence import TemporalDataset
from .pose import PoseDataset
from .prepare import prepare_video
from .probe import VideoInfo, probe_video
from .sampling import ClipSampling
from .transforms import Vid2VidAugment, VideoAugment
from .video_dali import DALIVideoLoader, dali_available
from .video_loader import video_loader
from .video_pyav import PyAVVideoLoader, VideoClipDataset, read_frames

__all__ = [
    "ClipSampling",
    "DALIVideoLoader",
    "DecodeTimeoutError",
    "PoseDataset",
    "PyAVVideoLoader",
    "SequenceTooShortError",
    "TemporalDataset",
    "UnsupportedCodecError",
    "Vid2VidAugment",
    "VideoAugment",
    "VideoClipDataset",
    "VideoDataError",
    "VideoInfo",
    "build_edge_dataset",
    "bundled_clip",
    "bundled_clips",
    "bundled_footage_dir",
    "dali_available",
    "default_edge_dataset",
    "prepare_video",
    "probe_video",
    "read_frames",
    "video_loader",
]
