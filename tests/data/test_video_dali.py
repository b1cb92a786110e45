import time

import numpy as np
import pytest
from data_helpers import CLIP_FRAMES, decode_all, psnr

from vid2vid_fast.data import (
    ClipSampling,
    DALIVideoLoader,
    DecodeTimeoutError,
    PyAVVideoLoader,
    UnsupportedCodecError,
    VideoAugment,
)

pytest.importorskip("nvidia.dali")


def dali_frames_uint8(batch_frames):
    """(B, T, C, H, W) in [-1, 1] back to uint8 (B*T, H, W, C)."""
    frames = ((batch_frames + 1) * 127.5).round().clamp(0, 255).to(dtype=__import__("torch").uint8)
    return frames.flatten(0, 1).permute(0, 2, 3, 1).numpy()


@pytest.mark.parametrize("codec", ["vp9", "mjpeg"])
def test_dali_cpu_decode_matches_pyav(prepared, codec):
    # native size, centre "crop" of the whole frame: the pipeline passes decoded pixels through
    loader = DALIVideoLoader(
        [prepared[codec]],
        sampling=ClipSampling(8),
        batch_size=2,
        device="cpu",
        num_threads=1,
        augment=VideoAugment.deterministic((144, 176)),
    )
    frames, order = [], []
    for batch in loader:
        frames.append(dali_frames_uint8(batch["frames"]))
        order += batch["frame_index"].flatten().tolist()
    frames = np.concatenate(frames)
    reference = decode_all(prepared[codec])
    assert order == list(range(CLIP_FRAMES)) and len(frames) == len(reference) == CLIP_FRAMES
    per_frame = [psnr(a, b) for a, b in zip(frames, reference)]
    assert min(per_frame) >= 40, per_frame
    # and the order is right: each frame is closer to its own reference than to its neighbours
    assert all(
        psnr(frames[i], reference[i]) > psnr(frames[i], reference[i + 1]) for i in range(CLIP_FRAMES - 1)
    )


@pytest.mark.parametrize("codec", ["vp9", "mjpeg"])
def test_dali_and_pyav_loaders_give_the_same_resized_batches(prepared, short_clip, codec):
    kwargs = dict(
        sampling=ClipSampling(4, stride=2), batch_size=3, augment=VideoAugment.deterministic((64, 96))
    )
    dali = DALIVideoLoader([prepared[codec], short_clip], device="cpu", num_threads=1, **kwargs)
    pyav = PyAVVideoLoader([prepared[codec], short_clip], num_workers=0, **kwargs)
    assert len(dali) == len(pyav)
    for a, b in zip(dali, pyav):
        assert a["video_index"].tolist() == b["video_index"].tolist()
        assert a["frame_index"].tolist() == b["frame_index"].tolist()
        assert psnr(a["frames"].numpy(), b["frames"].numpy(), peak=2.0) >= 38


def test_h264_on_cpu_is_refused_naming_the_file_and_the_fix(prepared):
    with pytest.raises(UnsupportedCodecError) as caught:
        DALIVideoLoader(
            [prepared["vp9"], prepared["h264"]],
            sampling=ClipSampling(4),
            batch_size=2,
            augment=VideoAugment.deterministic((32, 32)),
            device="cpu",
        )
    message = str(caught.value)
    assert f"{prepared['h264']} (h264)" in message and str(prepared["vp9"]) not in message
    assert "prepare_video" in message and "backend='pyav'" in message


def test_a_stalled_pipeline_raises_instead_of_hanging(prepared):
    # a limit far below the time one batch takes stands in for a stall
    started = time.monotonic()
    with pytest.raises(
        DecodeTimeoutError, match=f"did not answer within 0.0001 s while reading {prepared['vp9']}"
    ):
        loader = DALIVideoLoader(
            [prepared["vp9"]],
            sampling=ClipSampling(16),
            batch_size=3,
            device="cpu",
            num_threads=1,
            augment=VideoAugment((128, 128), max_scale=2.0),
            timeout_s=1e-4,
        )
        next(iter(loader))
    assert time.monotonic() - started < 10
