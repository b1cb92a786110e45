"""Video clips decoded and augmented by an NVIDIA DALI pipeline, returned as torch tensors through
DALI's PyTorch iterator.

Decoding runs on the GPU (NVDEC) when ``device="gpu"``, otherwise on the CPU, where DALI decodes
only VP8, VP9 and MJPEG: transcode other files with ``prepare_video`` or use the PyAV loader.
Resizing, cropping, flipping and normalisation happen inside the pipeline, with one random draw per
clip (DALI applies a sample's arguments to every frame of the sequence).

DALI silently skips files it cannot open and decodes damaged data without complaint, so every file
is probed first (``probe_video``); and because a DALI pipeline can block forever on some bad input,
each batch is awaited with a time limit.
"""

import math
import queue
import threading

from .errors import DecodeTimeoutError, UnsupportedCodecError
from .probe import probe_all
from .sampling import ClipSampling, epoch_clips, shard_bounds
from .transforms import VideoAugment

DALI_CPU_CODECS = frozenset({"vp8", "vp9", "mjpeg"})
DALI_GPU_CODECS = DALI_CPU_CODECS | {"h264", "hevc", "av1", "mpeg4"}
READER_NAME = "video_reader"
OUTPUT_MAP = ["frames", "video_index", "frame_index"]


def dali_available() -> bool:
    try:
        import nvidia.dali  # noqa: F401
        import nvidia.dali.plugin.pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def check_dali_codecs(videos, device: str) -> None:
    """Raise ``UnsupportedCodecError`` naming every file DALI cannot decode on ``device``."""
    supported = DALI_GPU_CODECS if device == "gpu" else DALI_CPU_CODECS
    bad = [info for info in videos if info.codec not in supported]
    if bad:
        listing = ", ".join(f"{info.path} ({info.codec})" for info in bad)
        raise UnsupportedCodecError(
            f"DALI cannot decode these videos on the {device.upper()} (it decodes "
            f"{', '.join(sorted(supported))} there): {listing}. Transcode them with "
            "vid2vid_fast.data.prepare_video(src, dst, codec='vp9') or use the PyAV backend (backend='pyav')."
        )


class DALIVideoLoader:
    """Batches of clips: ``{"frames": (B, T, C, H, W) float32 in [-1, 1], "video_index": (B,),
    "frame_index": (B, T)}``, on the GPU when ``device="gpu"``; one pass of ``for batch in loader``
    is one epoch of this shard. Clips and shards are those of ``sampling.epoch_clips`` and
    ``sampling.shard_bounds``; each shard keeps its clips across epochs (``stick_to_shard``), with
    ``shuffle`` in a new order each epoch.
    """

    def __init__(
        self,
        videos,
        *,
        sampling: ClipSampling,
        augment: VideoAugment,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        shard_id: int = 0,
        num_shards: int = 1,
        device: str = "cpu",
        device_id: int | None = None,
        num_threads: int = 2,
        timeout_s: float = 120.0,
    ):
        if device not in ("cpu", "gpu"):
            raise ValueError(f"device must be 'cpu' or 'gpu', got {device!r}")
        self.videos = probe_all(videos)
        check_dali_codecs(self.videos, device)
        clips = epoch_clips({info.path: info.num_frames for info in self.videos}, sampling)
        begin, end = shard_bounds(len(clips), shard_id, num_shards)
        self.num_clips = end - begin
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        if device == "gpu" and device_id is None:
            import torch

            device_id = torch.cuda.current_device()
        self._stalled = False
        self._thread = _PipelineThread()
        self._pipeline = _define_pipeline(
            [str(info.path) for info in self.videos],
            sampling,
            augment,
            batch_size=batch_size,
            shuffle=shuffle,
            seed=seed,
            shard_id=shard_id,
            num_shards=num_shards,
            device=device,
            device_id=device_id if device == "gpu" else None,
            num_threads=num_threads,
            initial_fill=max(1, min(1024, self.num_clips)),
        )
        self._await(self._pipeline.build)
        self._iterator = None

    def __len__(self):
        return math.ceil(self.num_clips / self.batch_size)

    def _await(self, function):
        if self._stalled:
            raise DecodeTimeoutError(
                "this DALI loader stalled earlier and cannot be used again; make a new one"
            )
        try:
            return self._thread.call(function, self.timeout_s)
        except TimeoutError:
            self._stalled = True
            files = ", ".join(str(info.path) for info in self.videos[:5])
            more = f" and {len(self.videos) - 5} more" if len(self.videos) > 5 else ""
            raise DecodeTimeoutError(
                f"the DALI video pipeline did not answer within {self.timeout_s:g} s while reading "
                f"{files}{more}; one of these files may be damaged in a way that stalls DALI. Check them "
                "with vid2vid_fast.data.probe_video, or use the PyAV backend (backend='pyav')."
            ) from None

    def _make_iterator(self):
        from nvidia.dali.plugin.pytorch import DALIGenericIterator, LastBatchPolicy

        return DALIGenericIterator(
            self._pipeline,
            OUTPUT_MAP,
            reader_name=READER_NAME,
            last_batch_policy=LastBatchPolicy.PARTIAL,
            auto_reset=True,
        )

    def __iter__(self):
        if self._iterator is None:
            self._iterator = self._await(self._make_iterator)
        while True:
            try:
                (batch,) = self._await(lambda: next(self._iterator))
            except StopIteration:
                return
            yield {
                "frames": batch["frames"],
                "video_index": batch["video_index"].reshape(-1).long(),
                "frame_index": batch["frame_index"].long(),
            }


class _PipelineThread:
    """Runs calls one at a time on a thread of its own, so that the caller can stop waiting.

    A daemon thread: one stuck inside DALI cannot keep the interpreter from exiting (the threads of
    a concurrent.futures executor are joined at exit, and would hang it).
    """

    def __init__(self):
        self._tasks = queue.Queue()
        threading.Thread(target=self._serve, args=(self._tasks,), name="dali-loader", daemon=True).start()

    @staticmethod
    def _serve(tasks):
        while (task := tasks.get()) is not None:
            function, results = task
            try:
                results.put((True, function()))
            except BaseException as error:  # handed to the caller, StopIteration included
                results.put((False, error))

    def call(self, function, timeout_s):
        results = queue.Queue(maxsize=1)
        self._tasks.put((function, results))
        try:
            ok, value = results.get(timeout=timeout_s)
        except queue.Empty:
            raise TimeoutError from None
        if ok:
            return value
        raise value

    def __del__(self):
        self._tasks.put(None)


def _define_pipeline(
    files,
    sampling,
    augment,
    *,
    batch_size,
    shuffle,
    seed,
    shard_id,
    num_shards,
    device,
    device_id,
    num_threads,
    initial_fill,
):
    from nvidia.dali import fn, pipeline_def, types

    @pipeline_def(
        batch_size=batch_size, num_threads=num_threads, device_id=device_id, seed=seed, prefetch_queue_depth=2
    )
    def video_pipeline():
        frames, video_index, frame_index = fn.experimental.readers.video(
            device=device,
            filenames=files,
            labels=list(range(len(files))),
            sequence_length=sampling.sequence_length,
            stride=sampling.stride,
            step=sampling.frame_step,
            enable_frame_num="sequence",
            random_shuffle=shuffle,
            initial_fill=initial_fill,
            shard_id=shard_id,
            num_shards=num_shards,
            stick_to_shard=True,
            # pads the last batch inside the reader (the iterator drops the padding) so that every
            # epoch starts at the shard's first clip instead of where the last batch overran
            pad_last_batch=True,
            name=READER_NAME,
        )
        out_h, out_w = augment.size
        scale = fn.random.uniform(range=[1.0, augment.max_scale]) if augment.max_scale > 1.0 else 1.0
        frames = fn.resize(
            frames,
            resize_x=out_w * scale,
            resize_y=out_h * scale,
            mode="not_smaller",
            interp_type=types.INTERP_LINEAR,
            antialias=True,
        )
        if augment.random_crop:
            crop_pos_x, crop_pos_y = fn.random.uniform(range=[0.0, 1.0]), fn.random.uniform(range=[0.0, 1.0])
        else:
            crop_pos_x = crop_pos_y = 0.5
        frames = fn.crop_mirror_normalize(
            frames,
            crop=(out_h, out_w),
            crop_pos_x=crop_pos_x,
            crop_pos_y=crop_pos_y,
            mirror=fn.random.coin_flip() if augment.flip else 0,
            mean=[127.5, 127.5, 127.5],
            std=[127.5, 127.5, 127.5],
            dtype=types.FLOAT,
            output_layout="FCHW",
        )
        return frames, video_index, frame_index

    return video_pipeline()
