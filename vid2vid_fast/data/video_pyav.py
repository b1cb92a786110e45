"""Video clips decoded with PyAV (FFmpeg): the loader to use where DALI is missing or cannot decode a
file. It yields exactly what ``DALIVideoLoader`` yields, for the same clips (see ``sampling``), and
runs its decoding in DataLoader worker processes."""

import ast
import logging
import math
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from .errors import DecodeTimeoutError, VideoDataError
from .probe import probe_all
from .sampling import ClipSampling, epoch_clips, shard_bounds
from .transforms import VideoAugment, apply_video_transform, draw_video_transform

logger = logging.getLogger(__name__)


def read_frames(path, frame_indices) -> np.ndarray:
    """Decode the frames at ``frame_indices`` (ascending) of a constant-rate video.

    Returns uint8 RGB frames (T, H, W, 3).
    """
    import av

    wanted = list(frame_indices)
    if wanted != sorted(wanted) or not wanted or wanted[0] < 0:
        raise ValueError(f"frame_indices must be non-empty, ascending and >= 0, got {wanted}")
    path = Path(path)
    frames = {}
    try:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            fps = Fraction(stream.average_rate or stream.guessed_rate)
            time_base = Fraction(stream.time_base)
            start_pts = stream.start_time or 0

            def index_of(frame):
                return round((frame.pts - start_pts) * time_base * fps)

            def decode_from(seek_pts):
                container.seek(seek_pts, stream=stream, backward=True, any_frame=False)
                first = None
                for frame in container.decode(stream):
                    index = index_of(frame)
                    if first is None:
                        first = index
                        if first > wanted[0]:
                            return False  # the seek landed past the clip: the caller rewinds
                    if index in wanted_set:
                        frames[index] = frame.to_ndarray(format="rgb24")
                    if index >= wanted[-1]:
                        break
                return True

            wanted_set = set(wanted)
            if not decode_from(start_pts + int(wanted[0] / fps / time_base)):
                frames.clear()
                decode_from(start_pts)
    except av.FFmpegError as error:
        raise VideoDataError(f"cannot decode {path} (frames {wanted[0]}..{wanted[-1]}): {error}") from error
    missing = [i for i in wanted if i not in frames]
    if missing:
        raise VideoDataError(
            f"{path} ended before frame {missing[0]} (wanted frames {wanted[0]}..{wanted[-1]}); "
            "the file is truncated or corrupt, or not constant-rate: re-create it with prepare_video"
        )
    return np.stack([frames[i] for i in wanted])


class VideoClipDataset(Dataset):
    """One item per clip of ``sampling`` over ``videos``, decoded with PyAV and augmented.

    Item: ``{"frames": float32 (T, C, H, W) in [-1, 1], "video_index": int64, "frame_index": int64 (T,)}``.
    Augmentation draws from torch's global generator, which DataLoader seeds per worker.
    """

    def __init__(self, videos, sampling: ClipSampling, augment: VideoAugment):
        self.videos = probe_all(videos)
        self.sampling = sampling
        self.augment = augment
        self.clips = epoch_clips({info.path: info.num_frames for info in self.videos}, sampling)

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        video_index, start = self.clips[index]
        frame_index = self.sampling.frame_indices(start)
        frames = torch.from_numpy(read_frames(self.videos[video_index].path, frame_index))
        transform = draw_video_transform(self.augment)
        return {
            "frames": apply_video_transform(frames, self.augment, transform),
            "video_index": torch.tensor(video_index),
            "frame_index": torch.tensor(frame_index),
        }


class PyAVVideoLoader:
    """Batches of clips: ``{"frames": (B, T, C, H, W) float32 in [-1, 1], "video_index": (B,),
    "frame_index": (B, T)}``; one pass of ``for batch in loader`` is one epoch of this shard.

    Shards are contiguous ranges of the epoch's clip list (as DALI splits them); with ``shuffle`` the
    clips of the shard come in a new random order each epoch.
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
        num_workers: int = 2,
        timeout_s: float = 120.0,
    ):
        dataset = VideoClipDataset(videos, sampling, augment)
        begin, end = shard_bounds(len(dataset), shard_id, num_shards)
        self.videos = dataset.videos
        self.num_clips = end - begin
        self.batch_size = batch_size
        self.timeout_s = timeout_s
        generator = torch.Generator().manual_seed(seed)
        self._loader = DataLoader(
            torch.utils.data.Subset(dataset, range(begin, end)),
            batch_size=batch_size,
            shuffle=shuffle,
            generator=generator,
            num_workers=num_workers,
            # a stuck worker surfaces as an error instead of a hang
            timeout=timeout_s if num_workers > 0 else 0,
            persistent_workers=num_workers > 0,
            multiprocessing_context=worker_start_method() if num_workers > 0 else None,
        )

    def __len__(self):
        return math.ceil(self.num_clips / self.batch_size)

    def __iter__(self):
        batches = iter(self._loader)
        while True:
            try:
                yield next(batches)
            except StopIteration:
                return
            except RuntimeError as error:
                if "timed out" not in str(error):
                    raise
                files = ", ".join(str(info.path) for info in self.videos[:5])
                raise DecodeTimeoutError(
                    f"the PyAV loader's workers produced no batch within {self.timeout_s:g} s while reading "
                    f"{files}{'' if len(self.videos) <= 5 else f' and {len(self.videos) - 5} more'}"
                ) from error


def worker_start_method() -> str:
    """How the loader's worker processes start: ``forkserver``, because FFmpeg's and torch's thread
    pools do not survive ``fork()`` (a forked worker can deadlock on a lock another thread held), except
    when a script creates the loader at its top level outside ``if __name__ == "__main__":``.
    forkserver re-runs such a script in every worker, which then fails (it would start processes while
    starting up), so there the workers fork."""
    if not _called_from_unguarded_main():
        return "forkserver"
    logger.info("video loader: the PyAV workers fork, because %s creates the loader outside "
                "`if __name__ == \"__main__\":` (forkserver workers would re-run it)", sys.modules["__main__"].__file__)
    return "fork"


def _called_from_unguarded_main() -> bool:
    """Whether this call comes from top-level code of the main module that multiprocessing re-runs in
    a forkserver (or spawn) child: a script, or a module run with ``-m`` other than a package's
    ``__main__``, outside an ``if __name__ == "__main__":`` block."""
    main = sys.modules.get("__main__")
    path = getattr(main, "__file__", None)
    spec_name = getattr(getattr(main, "__spec__", None), "name", None)
    if path is None or (spec_name is not None and spec_name.split(".")[-1] == "__main__"):
        return False  # an interactive session, -c, or a package's __main__: children do not re-run it
    line, frame = None, sys._getframe()
    while frame is not None:
        if frame.f_globals is vars(main) and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
        frame = frame.f_back
    if line is None:
        return False
    try:
        tree = ast.parse(Path(path).read_text())
    except (OSError, SyntaxError, ValueError):
        return False
    return not any(_is_main_guard(node) and node.lineno <= line <= node.end_lineno for node in tree.body)


def _is_main_guard(node) -> bool:
    """``if __name__ == "__main__":`` (either side of the ``==``)."""
    if not (isinstance(node, ast.If) and isinstance(node.test, ast.Compare) and len(node.test.ops) == 1):
        return False
    sides = [node.test.left, *node.test.comparators]
    names = {side.id for side in sides if isinstance(side, ast.Name)}
    constants = {side.value for side in sides if isinstance(side, ast.Constant)}
    return isinstance(node.test.ops[0], ast.Eq) and names == {"__name__"} and constants == {"__main__"}
