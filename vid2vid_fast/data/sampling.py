"""Which clips an epoch of a video loader holds, and how they are split into shards.

A clip is ``sequence_length`` frames, ``stride`` frames apart. Clips start every ``step`` frames
from frame 0. A clip is kept when ``start + sequence_length * stride <= num_frames``: this is the rule
DALI's video reader applies (it reserves the stride after the last frame too), and the PyAV loader
applies the same rule so both backends yield the same clips.
"""

from dataclasses import dataclass

from .errors import SequenceTooShortError


@dataclass(frozen=True)
class ClipSampling:
    sequence_length: int
    stride: int = 1
    step: int | None = None  # frames between clip starts; None: sequence_length * stride (no overlap)

    def __post_init__(self):
        for name in ("sequence_length", "stride"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.step is not None and self.step < 1:
            raise ValueError(f"step must be >= 1 or None, got {self.step}")

    @property
    def frame_step(self) -> int:
        return self.step if self.step is not None else self.sequence_length * self.stride

    @property
    def frames_needed(self) -> int:
        return self.sequence_length * self.stride

    def clip_starts(self, num_frames: int) -> range:
        return range(0, num_frames - self.frames_needed + 1, self.frame_step)

    def frame_indices(self, start: int) -> list[int]:
        return [start + i * self.stride for i in range(self.sequence_length)]


def epoch_clips(frame_counts: dict, sampling: ClipSampling) -> list[tuple[int, int]]:
    """All clips of an epoch as (video index, first frame), in file order.

    ``frame_counts`` maps each video (in loader order) to its frame count. A video too short for one
    clip is an error naming it, since DALI would silently drop it.
    """
    too_short = [
        f"{video} ({count} frames)" for video, count in frame_counts.items() if count < sampling.frames_needed
    ]
    if too_short:
        raise SequenceTooShortError(
            f"a clip of sequence_length={sampling.sequence_length} and stride={sampling.stride} needs "
            f"{sampling.frames_needed} frames, but these videos are shorter: " + ", ".join(too_short)
        )
    return [
        (index, start)
        for index, count in enumerate(frame_counts.values())
        for start in sampling.clip_starts(count)
    ]


def shard_bounds(num_samples: int, shard_id: int, num_shards: int) -> tuple[int, int]:
    """The contiguous range [begin, end) of samples that shard ``shard_id`` reads (DALI's split)."""
    if num_shards < 1 or not 0 <= shard_id < num_shards:
        raise ValueError(
            f"shard_id must be in [0, num_shards), got shard_id={shard_id}, num_shards={num_shards}"
        )
    if num_samples < num_shards:
        raise ValueError(f"{num_samples} clips cannot be split into {num_shards} shards")
    return num_samples * shard_id // num_shards, num_samples * (shard_id + 1) // num_shards
