"""One entry point for the video loaders: DALI where it is installed and can decode every file on the
chosen device, PyAV otherwise."""

import logging

from .probe import probe_all
from .sampling import ClipSampling
from .transforms import VideoAugment
from .video_dali import DALI_CPU_CODECS, DALI_GPU_CODECS, DALIVideoLoader, dali_available
from .video_pyav import PyAVVideoLoader

logger = logging.getLogger(__name__)

BACKENDS = ("auto", "dali", "pyav")


def _cuda_available() -> bool:
    import torch

    return torch.cuda.is_available()


def video_loader(
    videos,
    *,
    sequence_length: int,
    batch_size: int,
    size=(256, 512),
    stride: int = 1,
    step: int | None = None,
    augment: VideoAugment | None = None,
    shuffle: bool = True,
    seed: int = 0,
    shard_id: int = 0,
    num_shards: int = 1,
    backend: str = "auto",
    device: str = "auto",
    num_workers: int = 2,
    timeout_s: float = 120.0,
):
    """A loader of clips from ``videos`` (paths): batches ``{"frames": (B, T, C, H, W) in [-1, 1],
    "video_index": (B,), "frame_index": (B, T)}``.

    ``augment`` defaults to a random crop of ``size`` with zoom up to 1.25 and flips. ``device``
    ("auto", "cpu", "gpu") is where DALI decodes; ``num_workers`` is DALI's thread count or PyAV's
    worker processes. For distributed training pass ``shard_id=rank, num_shards=world_size``.
    """
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    if device == "auto":
        device = "gpu" if _cuda_available() else "cpu"
    if device not in ("cpu", "gpu"):
        raise ValueError(f"device must be 'auto', 'cpu' or 'gpu', got {device!r}")
    infos = probe_all(videos)
    sampling = ClipSampling(sequence_length, stride, step)
    if augment is None:
        augment = VideoAugment(tuple(size), max_scale=1.25)
    if backend == "auto":
        backend = _choose_backend(infos, device)
    common = dict(
        sampling=sampling,
        augment=augment,
        batch_size=batch_size,
        shuffle=shuffle,
        seed=seed,
        shard_id=shard_id,
        num_shards=num_shards,
        timeout_s=timeout_s,
    )
    if backend == "dali":
        if not dali_available():
            raise ImportError("backend='dali' needs NVIDIA DALI: pip install nvidia-dali-cuda130")
        return DALIVideoLoader(infos, device=device, num_threads=max(1, num_workers), **common)
    return PyAVVideoLoader(infos, num_workers=num_workers, **common)


def _choose_backend(infos, device) -> str:
    if not dali_available():
        logger.info("video loader: using PyAV (NVIDIA DALI is not installed)")
        return "pyav"
    supported = DALI_GPU_CODECS if device == "gpu" else DALI_CPU_CODECS
    undecodable = [f"{info.path} ({info.codec})" for info in infos if info.codec not in supported]
    if undecodable:
        logger.warning(
            "video loader: using PyAV, because DALI cannot decode on the %s: %s; transcode with "
            "prepare_video(codec='vp9') to use DALI",
            device.upper(),
            ", ".join(undecodable),
        )
        return "pyav"
    return "dali"
