"""Frames where the label extractor found nothing: short gaps are filled from their neighbours, long
ones cut the video into separate segments.

A gap of at most ``max_gap`` frames between two found frames is filled by linear interpolation of
the points; one at the start or end of the video is filled with the nearest found frame. Longer gaps
are dropped, and so are the segments between them shorter than ``min_length`` frames.
"""

from dataclasses import dataclass, field

import numpy as np


@dataclass
class FilledTrack:
    points: list  # per frame: the found or filled points, or None for a dropped frame
    segments: list[range] = field(default_factory=list)  # the kept runs of frames
    found: int = 0
    filled: int = 0
    dropped: int = 0

    def summary(self) -> str:
        return (
            f"{self.found} of {len(self.points)} frames found, {self.filled} filled from their neighbours, "
            f"{self.dropped} dropped, {len(self.segments)} segment(s)"
        )


def fill_gaps(detections: list, max_gap: int, min_length: int = 1) -> FilledTrack:
    """``detections``: per frame an array of points or None. See the module docstring."""
    if max_gap < 0 or min_length < 1:
        raise ValueError(f"max_gap must be >= 0 and min_length >= 1, got {max_gap} and {min_length}")
    total = len(detections)
    found = [i for i, d in enumerate(detections) if d is not None]
    points = [None if d is None else np.asarray(d, np.float64) for d in detections]
    track = FilledTrack(points, found=len(found))
    if not found:
        track.dropped = total
        return track
    # gaps between found frames
    for left, right in zip(found, found[1:]):
        gap = right - left - 1
        if 0 < gap <= max_gap:
            for i in range(left + 1, right):
                weight = (i - left) / (right - left)
                points[i] = (1 - weight) * points[left] + weight * points[right]
    # the ends: held from the nearest found frame
    for ends, source in ((range(0, found[0]), found[0]), (range(found[-1] + 1, total), found[-1])):
        if 0 < len(ends) <= max_gap:
            for i in ends:
                points[i] = points[source].copy()
    # runs of frames that have points
    runs, start = [], None
    for i in range(total + 1):
        has = i < total and points[i] is not None
        if has and start is None:
            start = i
        elif not has and start is not None:
            runs.append(range(start, i))
            start = None
    for run in runs:
        if len(run) < min_length:
            for i in run:
                points[i] = None
        else:
            track.segments.append(run)
    track.filled = sum(1 for i in range(total) if points[i] is not None and detections[i] is None)
    track.dropped = sum(1 for p in points if p is None)
    return track
