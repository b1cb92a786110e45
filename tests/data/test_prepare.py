import pytest
from data_helpers import CLIP_FRAMES, corrupt_copy, decode_all, psnr

from vid2vid_fast.data import VideoDataError, prepare_video, probe_video


@pytest.mark.parametrize("codec, expected", [("vp9", "vp9"), ("mjpeg", "mjpeg"), ("h264", "h264")])
def test_prepared_file_has_codec_all_frames_and_source_rate(prepared, carphone, codec, expected):
    info = probe_video(prepared[codec])
    source = probe_video(carphone)
    assert (info.codec, info.num_frames, info.fps) == (expected, CLIP_FRAMES, source.fps)
    assert (info.width, info.height) == (source.width, source.height)


@pytest.mark.parametrize("codec", ["vp9", "h264"])
def test_prepared_file_has_a_keyframe_every_gop_frames(prepared, codec):
    import av

    with av.open(str(prepared[codec])) as container:
        keyframes = [packet.is_keyframe for packet in container.demux(video=0) if packet.size]
    assert len(keyframes) == CLIP_FRAMES
    positions = [i for i, key in enumerate(keyframes) if key]
    assert positions[0] == 0
    assert max(b - a for a, b in zip(positions, positions[1:] + [CLIP_FRAMES])) <= 8


def test_prepared_frames_look_like_the_source(prepared, carphone):
    source = decode_all(carphone)[:CLIP_FRAMES]
    for codec in ("vp9", "mjpeg", "h264"):
        assert psnr(decode_all(prepared[codec]), source) > 30, codec


def test_resampling_to_a_lower_rate_keeps_timing(carphone, tmp_path):
    # 120 frames at 29.97 fps last 4.004 s: at 15 fps that is 60 frames, frame k near source 2k
    out = prepare_video(carphone, tmp_path / "half.mkv", codec="mjpeg", fps=15, progress=False)
    assert probe_video(out).num_frames == 60
    source, half = decode_all(carphone), decode_all(out)
    for k in (0, 10, 29, 59):
        scores = [psnr(half[k], source[j]) for j in range(len(source))]
        assert abs(scores.index(max(scores)) - 2 * k) <= 1, k


def test_height_keeps_aspect_and_even_sizes(carphone, tmp_path):
    out = prepare_video(carphone, tmp_path / "small.webm", height=63, max_frames=4, progress=False)
    info = probe_video(out)
    assert (info.width, info.height) == (78, 64)  # 63 -> 64 (even), 176 * 64 / 144 = 78.2 -> 78


def test_bad_source_is_named_and_leaves_nothing(prepared, tmp_path):
    source = corrupt_copy(prepared["vp9"], tmp_path)
    dst = tmp_path / "out" / "clip.webm"
    with pytest.raises(VideoDataError, match=str(source)):
        prepare_video(source, dst, progress=False)
    assert not dst.exists() and list(dst.parent.iterdir()) == []


def test_missing_source_is_named(tmp_path):
    pytest.importorskip("av")
    with pytest.raises(VideoDataError, match=f"{tmp_path / 'nope.mp4'} does not exist"):
        prepare_video(tmp_path / "nope.mp4", tmp_path / "out.webm", progress=False)


def test_unknown_codec_is_refused(carphone, tmp_path):
    with pytest.raises(ValueError, match="codec must be one of vp9, mjpeg, h264"):
        prepare_video(carphone, tmp_path / "out.mkv", codec="prores")
