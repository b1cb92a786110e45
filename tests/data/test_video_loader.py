"""Behaviour both video loaders share, run against each backend."""

import pytest
import torch
from data_helpers import corrupt_copy, truncated_copy

from vid2vid_fast.data import (
    ClipSampling,
    DALIVideoLoader,
    PyAVVideoLoader,
    SequenceTooShortError,
    VideoAugment,
    VideoDataError,
    dali_available,
    video_loader,
)
from vid2vid_fast.data.sampling import epoch_clips

BACKENDS = ["pyav", "dali"]


def make_loader(backend, videos, **kwargs):
    if backend == "dali":
        pytest.importorskip("nvidia.dali")
        return DALIVideoLoader(videos, device="cpu", num_threads=1, **kwargs)
    return PyAVVideoLoader(videos, num_workers=0, **kwargs)


def epoch(loader):
    """(video, first frame) of each clip of one epoch, and the frame-index rows."""
    starts, rows = [], []
    for batch in loader:
        assert batch["frames"].shape[0] == batch["video_index"].shape[0] == batch["frame_index"].shape[0]
        starts += list(zip(batch["video_index"].tolist(), batch["frame_index"][:, 0].tolist()))
        rows += batch["frame_index"].tolist()
    return starts, rows


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sequence_length, stride, step", [(4, 1, None), (3, 2, 5), (2, 5, 7)])
def test_clips_follow_sequence_length_stride_and_step(
    backend, prepared, short_clip, sequence_length, stride, step
):
    videos = [prepared["vp9"], short_clip]
    sampling = ClipSampling(sequence_length, stride, step)
    loader = make_loader(
        backend, videos, sampling=sampling, augment=VideoAugment.deterministic((64, 64)), batch_size=4
    )
    starts, rows = epoch(loader)
    assert starts == epoch_clips({v: n for v, n in zip(videos, (48, 30))}, sampling)
    assert rows == [sampling.frame_indices(start) for _, start in starts]
    assert len(loader) == -(-len(starts) // 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_batches_are_normalised_bcthw_float(backend, prepared):
    loader = make_loader(
        backend,
        [prepared["mjpeg"]],
        sampling=ClipSampling(3),
        batch_size=2,
        augment=VideoAugment((64, 96), max_scale=1.3),
    )
    batch = next(iter(loader))
    frames = batch["frames"]
    assert frames.shape == (2, 3, 3, 64, 96) and frames.dtype == torch.float32
    assert frames.min() >= -1.0 and frames.max() <= 1.0 and frames.std() > 0.1


@pytest.mark.parametrize("backend", BACKENDS)
def test_augmentation_is_identical_across_a_clips_frames(backend, static_clip):
    # every frame of the static clip has the same pixels, so within a clip all output frames must
    # match, while different clips get different crops, zooms and flips
    loader = make_loader(
        backend,
        [static_clip],
        sampling=ClipSampling(4, step=1),
        batch_size=13,
        augment=VideoAugment((64, 64), max_scale=1.5),
        shuffle=True,
        seed=3,
    )
    frames = next(iter(loader))["frames"]
    assert frames.shape[0] == 13
    assert (frames - frames[:, :1]).abs().max() < 1e-5
    distinct = {tuple(clip[0].flatten()[::97].tolist()) for clip in frames}
    assert len(distinct) >= 10


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shuffle", [False, True])
def test_shards_cover_every_clip_exactly_once_per_epoch(backend, prepared, short_clip, shuffle):
    videos = [prepared["vp9"], short_clip]
    sampling = ClipSampling(3, stride=2, step=4)
    expected = sorted(epoch_clips({prepared["vp9"]: 48, short_clip: 30}, sampling))
    loaders = [
        make_loader(
            backend,
            videos,
            sampling=sampling,
            augment=VideoAugment.deterministic((32, 32)),
            batch_size=3,
            shuffle=shuffle,
            seed=7,
            shard_id=shard_id,
            num_shards=3,
        )
        for shard_id in range(3)
    ]
    for _ in range(2):  # each epoch, not only the first
        seen = [clip for loader in loaders for clip in epoch(loader)[0]]
        assert sorted(seen) == expected


@pytest.mark.parametrize("backend", BACKENDS)
def test_truncated_and_corrupt_files_are_named(backend, prepared, tmp_path):
    kwargs = dict(sampling=ClipSampling(4), augment=VideoAugment.deterministic((32, 32)), batch_size=2)
    for bad in (truncated_copy(prepared["vp9"], tmp_path), corrupt_copy(prepared["mjpeg"], tmp_path)):
        with pytest.raises(VideoDataError, match=str(bad)):
            make_loader(backend, [prepared["vp9"], bad], **kwargs)


@pytest.mark.parametrize("backend", BACKENDS)
def test_a_video_shorter_than_a_clip_is_named(backend, prepared, short_clip):
    with pytest.raises(SequenceTooShortError, match=f"{short_clip} \\(30 frames\\)"):
        make_loader(
            backend,
            [prepared["vp9"], short_clip],
            sampling=ClipSampling(16, stride=2),
            augment=VideoAugment.deterministic((32, 32)),
            batch_size=2,
        )


def test_factory_picks_dali_for_cpu_codecs_and_pyav_for_h264(prepared):
    kwargs = dict(sequence_length=4, batch_size=2, size=(32, 32), device="cpu", num_workers=0)
    h264 = video_loader([prepared["h264"]], **kwargs)
    assert isinstance(h264, PyAVVideoLoader)
    vp9 = video_loader([prepared["vp9"]], **kwargs)
    assert isinstance(vp9, DALIVideoLoader if dali_available() else PyAVVideoLoader)
    assert next(iter(vp9))["frames"].shape == (2, 4, 3, 32, 32)


def test_pyav_loader_with_worker_processes(prepared):
    loader = video_loader(
        [prepared["h264"]],
        sequence_length=4,
        batch_size=4,
        size=(32, 64),
        backend="pyav",
        num_workers=2,
        seed=1,
    )
    starts, _ = epoch(loader)
    assert sorted(starts) == [(0, s) for s in range(0, 48, 4)]
