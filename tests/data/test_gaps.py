import numpy as np
import pytest

from vid2vid_fast.data.gaps import fill_gaps


def points(value):
    return np.full((2, 2), float(value))


def test_short_gaps_are_interpolated_and_ends_held():
    detections = [None, points(0), None, None, points(6), points(8), None]
    track = fill_gaps(detections, max_gap=2)
    assert [p[0, 0] for p in track.points] == [0, 0, 2, 4, 6, 8, 8]
    assert track.segments == [range(0, 7)]
    assert (track.found, track.filled, track.dropped) == (3, 4, 0)


def test_long_gaps_split_the_video_and_short_segments_are_dropped():
    d = [points(i) for i in range(12)]
    for i in (3, 4, 5, 6, 9, 10, 11):  # a gap of 4 and, at the end, one of 3
        d[i] = None
    track = fill_gaps(d, max_gap=2, min_length=3)
    assert track.segments == [range(0, 3)]  # frames 7-8 make a segment shorter than 3
    assert [p is None for p in track.points] == [False] * 3 + [True] * 9
    assert (track.found, track.filled, track.dropped) == (5, 0, 9)
    assert "5 of 12 frames found, 0 filled" in track.summary()
    assert fill_gaps(d, max_gap=2, min_length=2).segments == [range(0, 3), range(7, 9)]


def test_nothing_found_and_bad_settings():
    track = fill_gaps([None] * 4, max_gap=10)
    assert track.segments == [] and track.dropped == 4 and track.found == 0
    with pytest.raises(ValueError, match="max_gap"):
        fill_gaps([], max_gap=-1)
