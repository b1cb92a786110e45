"""Transcoding any video into a training-friendly file: constant frame rate, a keyframe every few
frames (so a loader seeking to a clip decodes little), even dimensions, and a codec DALI decodes on
the device that will train:

=======  ======================  ==================================================
codec    DALI decodes it on      notes
=======  ======================  ==================================================
vp9      CPU and GPU             the default: small files, decodes anywhere
mjpeg    CPU and GPU             every frame a keyframe: fastest CPU seeking, big files
h264     GPU only                NVDEC's fastest path; the PyAV backend reads it on CPU
=======  ======================  ==================================================

The output is written to a temporary file beside ``dst`` and renamed into place when complete, so an
interrupted run never leaves a partial video that looks finished.
"""

import os
from fractions import Fraction
from pathlib import Path

from .errors import VideoDataError
from .progress import Progress

CODEC_SETTINGS = {
    # name: (PyAV encoder, pixel format, encoder options, container suffix)
    "vp9": (
        "libvpx-vp9",
        "yuv420p",
        {"crf": "18", "b": "0", "deadline": "good", "cpu-used": "5", "row-mt": "1"},
        ".webm",
    ),
    "mjpeg": ("mjpeg", "yuvj420p", {"qmin": "2", "qmax": "2"}, ".mkv"),
    "h264": ("libx264", "yuv420p", {"crf": "16", "preset": "fast", "bf": "0"}, ".mp4"),
}


def default_suffix(codec: str) -> str:
    return CODEC_SETTINGS[codec][3]


def _even(n: float) -> int:
    return max(2, int(round(n / 2)) * 2)


def prepare_video(
    src,
    dst,
    *,
    codec: str = "vp9",
    fps=None,
    height: int | None = None,
    max_frames: int | None = None,
    gop: int = 8,
    progress: bool = True,
) -> Path:
    """Transcode ``src`` to ``dst`` and return ``dst``.

    ``fps``: output frame rate (default: the source's average rate); frames are resampled to it by
    nearest timestamp, which also turns a variable-rate source into a constant-rate one.
    ``height``: scale to this height keeping the aspect ratio (default: the source's, made even).
    ``max_frames``: stop after this many output frames. ``gop``: frames between keyframes.
    """
    import av

    if codec not in CODEC_SETTINGS:
        raise ValueError(f"codec must be one of {', '.join(CODEC_SETTINGS)}, got {codec!r}")
    if gop < 1:
        raise ValueError(f"gop must be >= 1, got {gop}")
    src, dst = Path(src), Path(dst)
    if not src.is_file():
        raise VideoDataError(f"source video {src} does not exist")
    if os.path.getsize(src) == 0:
        raise VideoDataError(f"source video {src} is empty (0 bytes)")
    encoder, pix_fmt, options, _ = CODEC_SETTINGS[codec]
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(f".{dst.stem}.tmp{os.getpid()}{dst.suffix}")
    try:
        with av.open(str(src)) as source:
            if not source.streams.video:
                raise VideoDataError(f"source video {src} holds no video stream")
            in_stream = source.streams.video[0]
            in_stream.thread_type = "AUTO"
            source_rate = Fraction(in_stream.average_rate or in_stream.guessed_rate or 25)
            rate = Fraction(fps) if fps is not None else source_rate
            out_h = _even(height if height is not None else in_stream.height)
            out_w = _even(in_stream.width * out_h / in_stream.height)
            expected = _expected_frames(source, in_stream, rate, max_frames)
            with av.open(str(tmp), "w") as sink:
                out_stream = sink.add_stream(encoder, rate=rate, options=dict(options))
                out_stream.width, out_stream.height, out_stream.pix_fmt = out_w, out_h, pix_fmt
                out_stream.codec_context.gop_size = gop
                written = 0
                with Progress(expected, f"prepare {src.name} -> {dst.name}", progress) as bar:
                    for frame in _constant_rate_frames(
                        source.decode(in_stream), rate, source_rate, max_frames
                    ):
                        out = frame.reformat(width=out_w, height=out_h, format=pix_fmt, interpolation="AREA")
                        out.pts = written
                        out.time_base = 1 / rate
                        for packet in out_stream.encode(out):
                            sink.mux(packet)
                        written += 1
                        bar.update(1)
                for packet in out_stream.encode():
                    sink.mux(packet)
            if written == 0:
                raise VideoDataError(f"source video {src} has no decodable frames")
        os.replace(tmp, dst)
    except av.FFmpegError as error:
        raise VideoDataError(f"cannot transcode {src}: it is corrupt or truncated ({error})") from error
    finally:
        if tmp.exists():
            tmp.unlink()
    return dst


def _expected_frames(container, stream, rate, max_frames):
    seconds = (
        float(stream.duration * stream.time_base)
        if stream.duration
        else (container.duration or 0) / 1_000_000
    )
    expected = round(seconds * rate) if seconds else None
    if max_frames is not None:
        expected = min(expected, max_frames) if expected else max_frames
    return expected


def _constant_rate_frames(frames, rate, source_rate, max_frames):
    """Yield frames at exact ``rate``: output frame k shows the source frame whose timestamp is
    nearest to k / rate (timestamps counted from the first frame). The source ends one source frame
    after its last timestamp; an output frame is kept when its midpoint falls before that end."""
    period = 1 / float(rate)
    k = 0
    first_time = None
    previous = None
    for frame in frames:
        time = frame.time if frame.time is not None else (0.0 if previous is None else previous[1] + period)
        if first_time is None:
            first_time = time
        time -= first_time
        if previous is not None:
            midpoint = (previous[1] + time) / 2
            while k * period < midpoint - 1e-9:
                if max_frames is not None and k >= max_frames:
                    return
                yield previous[0]
                k += 1
        previous = (frame, time)
    if previous is not None:
        end = previous[1] + 1 / float(source_rate)
        while (k + 0.5) * period <= end + 1e-9:
            if max_frames is not None and k >= max_frames:
                return
            yield previous[0]
            k += 1
