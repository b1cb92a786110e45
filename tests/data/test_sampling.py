import pytest

from vid2vid_fast.data import ClipSampling, SequenceTooShortError
from vid2vid_fast.data.sampling import epoch_clips, shard_bounds


def test_clips_start_every_step_and_reserve_sequence_length_times_stride():
    sampling = ClipSampling(sequence_length=5, stride=2, step=30)
    assert list(sampling.clip_starts(120)) == [0, 30, 60, 90]
    assert sampling.frame_indices(30) == [30, 32, 34, 36, 38]
    # DALI's rule: start + 5 * 2 <= 120, so a clip may start at 110 but not at 111
    assert list(ClipSampling(5, 2, step=110).clip_starts(120)) == [0, 110]
    assert list(ClipSampling(5, 2, step=111).clip_starts(120)) == [0]


def test_default_step_makes_clips_that_do_not_overlap():
    sampling = ClipSampling(sequence_length=4, stride=3)
    assert sampling.frame_step == 12
    assert list(sampling.clip_starts(48)) == [0, 12, 24, 36]


def test_epoch_clips_lists_every_video_in_order():
    clips = epoch_clips({"a.webm": 10, "b.webm": 6}, ClipSampling(3, step=3))
    assert clips == [(0, 0), (0, 3), (0, 6), (1, 0), (1, 3)]


def test_a_video_too_short_for_one_clip_is_named():
    with pytest.raises(SequenceTooShortError, match=r"needs 8 frames.*b\.webm \(7 frames\)"):
        epoch_clips({"a.webm": 100, "b.webm": 7}, ClipSampling(4, stride=2))


@pytest.mark.parametrize("num_samples, num_shards", [(10, 3), (7, 7), (100, 8), (5, 1)])
def test_shards_split_the_samples_exactly_once(num_samples, num_shards):
    covered = []
    for shard_id in range(num_shards):
        begin, end = shard_bounds(num_samples, shard_id, num_shards)
        covered += range(begin, end)
    assert covered == list(range(num_samples))


@pytest.mark.parametrize(
    "kwargs", [dict(sequence_length=0), dict(sequence_length=2, stride=0), dict(sequence_length=2, step=0)]
)
def test_invalid_sampling_is_refused(kwargs):
    with pytest.raises(ValueError):
        ClipSampling(**kwargs)


def test_invalid_shards_are_refused():
    with pytest.raises(ValueError, match="shard_id"):
        shard_bounds(10, 3, 3)
    with pytest.raises(ValueError, match="3 clips cannot be split into 4 shards"):
        shard_bounds(3, 0, 4)
