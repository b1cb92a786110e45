import pytest
from data_helpers import corrupt_copy, truncated_copy

from vid2vid_fast.data import VideoDataError, probe_video


def test_probe_reads_codec_size_rate_and_frame_count(prepared):
    info = probe_video(prepared["vp9"])
    assert (info.codec, info.width, info.height, info.num_frames) == ("vp9", 176, 144, 48)
    assert abs(float(info.fps) - 30000 / 1001) < 1e-3


def test_missing_file_is_named(tmp_path):
    pytest.importorskip("av")
    path = tmp_path / "nope.webm"
    with pytest.raises(VideoDataError, match=f"{path} does not exist"):
        probe_video(path)


def test_empty_file_is_named(tmp_path):
    pytest.importorskip("av")
    path = tmp_path / "empty.webm"
    path.write_bytes(b"")
    with pytest.raises(VideoDataError, match=f"{path} is empty"):
        probe_video(path)


@pytest.mark.parametrize("codec", ["vp9", "mjpeg", "h264"])
def test_truncated_file_is_named(prepared, tmp_path, codec):
    path = truncated_copy(prepared[codec], tmp_path)
    with pytest.raises(VideoDataError, match=str(path)) as caught:
        probe_video(path)
    assert "truncated" in str(caught.value) or "corrupt" in str(caught.value)


@pytest.mark.parametrize("codec", ["vp9", "mjpeg"])
def test_corrupt_file_is_named(prepared, tmp_path, codec):
    path = corrupt_copy(prepared[codec], tmp_path)
    with pytest.raises(VideoDataError, match=f"{path} is not a readable video"):
        probe_video(path)


def test_a_text_file_is_not_a_video(tmp_path):
    pytest.importorskip("av")
    path = tmp_path / "notes.mp4"
    path.write_text("not a video\n" * 100)
    with pytest.raises(VideoDataError, match=str(path)):
        probe_video(path)
