"""Checking a video file before training reads it: it exists, opens, holds a video stream, and holds
every frame its header declares. DALI skips files it cannot open and decodes damaged data without a
word, so every loader probes its files first, and the errors name the file."""

import os
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

from .errors import VideoDataError


@dataclass(frozen=True)
class VideoInfo:
    path: Path
    codec: str  # FFmpeg's decoder name: "vp9", "mjpeg", "h264", ...
    width: int
    height: int
    fps: Fraction
    num_frames: int  # frames actually present (counted packets), not what the header claims


def probe_video(path) -> VideoInfo:
    """Read a video's header and count its frames (demuxing only, no decoding)."""
    import av

    path = Path(path)
    if not path.is_file():
        raise VideoDataError(f"video file {path} {'is a folder, not a file' if path.is_dir() else 'does not exist'}")
    if os.path.getsize(path) == 0:
        raise VideoDataError(f"video file {path} is empty (0 bytes)")
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise VideoDataError(f"{path} holds no video stream")
            stream = container.streams.video[0]
            fps = stream.average_rate or stream.guessed_rate
            if not fps:
                raise VideoDataError(f"{path} has no frame rate in its header; run prepare_video on it")
            declared = stream.frames
            if not declared and container.duration:
                declared = round(container.duration / 1_000_000 * fps)
            if not declared:
                # a raw elementary stream (or a container whose header is damaged and was skipped)
                raise VideoDataError(
                    f"{path} is not a readable video: no frame count or duration in its header "
                    f"(read as format {container.format.name!r}); re-create it with prepare_video"
                )
            num_frames = sum(1 for packet in container.demux(stream) if packet.size)
            info = VideoInfo(
                path, stream.codec_context.name, stream.width, stream.height, Fraction(fps), num_frames
            )
    except av.FFmpegError as error:
        raise VideoDataError(
            f"{path} is not a readable video (corrupt or not a video file): {error}"
        ) from error
    if num_frames == 0:
        raise VideoDataError(f"{path} holds no video frames")
    # one frame of slack: containers round their duration
    if declared and num_frames < declared - 1:
        raise VideoDataError(
            f"{path} is truncated or corrupt: its header declares {declared} frames but only "
            f"{num_frames} are present; re-create it (prepare_video) from the source video"
        )
    return info


def probe_all(videos) -> list[VideoInfo]:
    """``probe_video`` for each path; ``VideoInfo`` items (already probed) pass through."""
    if isinstance(videos, (str, Path)):
        raise TypeError(f"expected a list of video files, got the single path {videos!r}")
    infos = [v if isinstance(v, VideoInfo) else probe_video(v) for v in videos]
    if not infos:
        raise ValueError("no video files given")
    return infos
