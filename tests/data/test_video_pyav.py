import pytest
from data_helpers import CLIP_FRAMES, decode_all, truncated_copy

from vid2vid_fast.data import VideoDataError, read_frames


@pytest.mark.parametrize("codec", ["vp9", "mjpeg", "h264"])
@pytest.mark.parametrize("indices", [[0, 1, 2], [13, 15, 17], [40, 47], [8], [5, 30, 46]])
def test_read_frames_equals_decoding_from_the_start(prepared, codec, indices):
    # read_frames seeks to the keyframe before the clip; the pixels must be those of a full decode
    everything = decode_all(prepared[codec])
    assert len(everything) == CLIP_FRAMES
    assert (read_frames(prepared[codec], indices) == everything[indices]).all()


def test_reading_past_the_end_names_the_file(prepared):
    with pytest.raises(VideoDataError, match=f"{prepared['vp9']} ended before frame 48"):
        read_frames(prepared["vp9"], [46, 48])


def test_reading_a_truncated_file_names_it(prepared, tmp_path):
    path = truncated_copy(prepared["mjpeg"], tmp_path)
    with pytest.raises(VideoDataError, match=str(path)):
        read_frames(path, [40, 45])


def test_frame_indices_must_ascend(prepared):
    with pytest.raises(ValueError, match="ascending"):
        read_frames(prepared["vp9"], [3, 1])
