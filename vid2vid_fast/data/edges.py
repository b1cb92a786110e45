"""Edge-map labels made from real video: the project's default task, "edge map -> video" (like
vid2vid's edge2face, without a face detector).

``build_edge_dataset`` decodes each video with PyAV, writes its frames to ``{phase}_B/<video>/`` and
their Canny edge maps to ``{phase}_A/<video>/`` (PNG), which is the layout ``TemporalDataset`` reads
(``label_nc=0, input_nc=1``). The result is deterministic, and cached: a sequence is rebuilt only
when its source file or the settings change. Each sequence is written into a temporary folder and
renamed into place when complete, so an interrupted build never leaves a partial sequence that looks
finished.
"""

import json
import os
import shutil
from pathlib import Path

import numpy as np

from .errors import VideoDataError
from .footage import bundled_clips
from .probe import probe_video
from .progress import Progress

MANIFEST = ".complete.json"


def canny_edges(frame: np.ndarray, low_threshold: int = 60, high_threshold: int = 150) -> np.ndarray:
    """uint8 RGB frame (H, W, 3) -> uint8 edge map (H, W), 255 on edges, 0 elsewhere."""
    import cv2

    gray = cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY)
    # a light blur keeps sensor noise and compression blocks from becoming edges
    gray = cv2.GaussianBlur(gray, (5, 5), 1.0)
    return cv2.Canny(gray, low_threshold, high_threshold)


def _settings(video: Path, height, max_frames, low_threshold, high_threshold) -> dict:
    stat = video.stat()
    return {
        "source": str(video.resolve()),
        "source_size": stat.st_size,
        "source_mtime_ns": stat.st_mtime_ns,
        "height": height,
        "max_frames": max_frames,
        "low_threshold": low_threshold,
        "high_threshold": high_threshold,
    }


def decode_frames(video: Path, height, max_frames, with_source: bool = False):
    """Decoded RGB frames, scaled (area filter) to ``height`` when the source is taller; with
    ``with_source``, pairs (frame at the source size, scaled frame)."""
    import av

    try:
        with av.open(str(video)) as container:
            stream = container.streams.video[0]
            out_h = stream.height if height is None or height >= stream.height else height
            out_w = max(2, round(stream.width * out_h / stream.height / 2) * 2)
            for count, frame in enumerate(container.decode(stream)):
                if max_frames is not None and count >= max_frames:
                    return
                scaled = frame.to_ndarray(format="rgb24", width=out_w, height=out_h, interpolation="AREA")
                yield (frame.to_ndarray(format="rgb24"), scaled) if with_source else scaled
    except av.FFmpegError as error:
        raise VideoDataError(f"cannot decode {video}: {error}") from error


def save_png(array: np.ndarray, path: Path) -> None:
    from PIL import Image

    Image.fromarray(array).save(path, format="PNG")


def build_edge_dataset(
    videos,
    root,
    phase: str = "train",
    *,
    height: int | None = 256,
    max_frames: int | None = None,
    low_threshold: int = 60,
    high_threshold: int = 150,
    progress: bool = True,
) -> Path:
    """Write (or reuse) ``{root}/{phase}_A`` (edges) and ``{root}/{phase}_B`` (frames) for ``videos``;
    each video becomes a sequence named after its file stem. Returns ``root``."""
    root = Path(root)
    folder_a, folder_b = root / f"{phase}_A", root / f"{phase}_B"
    folder_a.mkdir(parents=True, exist_ok=True)
    folder_b.mkdir(parents=True, exist_ok=True)
    names = [Path(v).stem for v in videos]
    if len(set(names)) != len(names):
        raise ValueError(f"videos must have distinct file names (they name the sequences): {names}")
    for video in map(Path, videos):
        probe_video(video)  # names a missing, empty or damaged file before any work
        settings = _settings(video, height, max_frames, low_threshold, high_threshold)
        manifest = folder_a / video.stem / MANIFEST
        if (
            manifest.is_file()
            and json.loads(manifest.read_text()) == settings
            and (folder_b / video.stem).is_dir()
        ):
            continue
        _build_sequence(video, folder_a, folder_b, settings, progress)
    return root


def _build_sequence(video: Path, folder_a: Path, folder_b: Path, settings: dict, progress: bool) -> None:
    suffix = f".tmp{os.getpid()}"
    tmp_a, tmp_b = folder_a / f".{video.stem}{suffix}", folder_b / f".{video.stem}{suffix}"
    for tmp in (tmp_a, tmp_b):
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
    try:
        count = 0
        with Progress(settings["max_frames"], f"edges {video.name}", progress) as bar:
            for count, frame in enumerate(
                decode_frames(video, settings["height"], settings["max_frames"]), start=1
            ):
                name = f"frame_{count - 1:05d}.png"
                save_png(frame, tmp_b / name)
                save_png(
                    canny_edges(frame, settings["low_threshold"], settings["high_threshold"]), tmp_a / name
                )
                bar.update(1)
        if count == 0:
            raise VideoDataError(f"{video} has no decodable frames")
        (tmp_a / MANIFEST).write_text(json.dumps(settings, indent=1))
        # B first, A (with the manifest) last: a sequence counts as built only once both are in place
        for tmp, final in ((tmp_b, folder_b / video.stem), (tmp_a, folder_a / video.stem)):
            shutil.rmtree(final, ignore_errors=True)
            os.replace(tmp, final)
    finally:
        shutil.rmtree(tmp_a, ignore_errors=True)
        shutil.rmtree(tmp_b, ignore_errors=True)


def default_cache_dir() -> Path:
    """``$VID2VID_FAST_CACHE``, else ``$XDG_CACHE_HOME/vid2vid_fast``, else ``~/.cache/vid2vid_fast``."""
    if os.environ.get("VID2VID_FAST_CACHE"):
        return Path(os.environ["VID2VID_FAST_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "vid2vid_fast"


def default_edge_dataset(
    root=None, *, height: int | None = 256, max_frames: int | None = None, progress: bool = True
) -> Path:
    """The bundled default data set: edge maps -> frames of the bundled footage (see ``footage``),
    built once into ``root`` (default ``default_cache_dir() / "edge2video"``) as phase ``train``."""
    root = Path(root) if root is not None else default_cache_dir() / "edge2video"
    return build_edge_dataset(
        bundled_clips(), root, "train", height=height, max_frames=max_frames, progress=progress
    )
