"""Shared inputs for the data tests: small training clips transcoded from the bundled footage (the
``carphone`` clip itself comes from tests/conftest.py)."""

from pathlib import Path

import pytest
from data_helpers import CLIP_FRAMES


@pytest.fixture(scope="session")
def prepared(carphone, tmp_path_factory):
    """The first 48 frames of the carphone clip as VP9, MJPEG and H.264 training files."""
    from vid2vid_fast.data import prepare_video
    from vid2vid_fast.data.prepare import default_suffix

    folder = tmp_path_factory.mktemp("prepared")
    return {
        codec: prepare_video(
            carphone,
            folder / f"carphone_{codec}{default_suffix(codec)}",
            codec=codec,
            max_frames=CLIP_FRAMES,
            progress=False,
        )
        for codec in ("vp9", "mjpeg", "h264")
    }


@pytest.fixture(scope="session")
def short_clip(carphone, tmp_path_factory):
    """A second, shorter VP9 clip (30 frames, half height) so that videos differ in length and size."""
    from vid2vid_fast.data import prepare_video

    path = tmp_path_factory.mktemp("short") / "carphone_short.webm"
    return prepare_video(carphone, path, codec="vp9", height=72, max_frames=30, progress=False)


@pytest.fixture(scope="session")
def static_clip(prepared, tmp_path_factory):
    """One real frame repeated 16 times (MJPEG: every frame decodes to the same pixels), so that any
    difference between the frames of an augmented clip comes from the augmentation."""
    import av

    from vid2vid_fast.data import read_frames

    frame = read_frames(prepared["vp9"], [10])[0]
    path = tmp_path_factory.mktemp("static") / "static.mkv"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mjpeg", rate=25, options={"qmin": "2", "qmax": "2"})
        stream.width, stream.height, stream.pix_fmt = frame.shape[1], frame.shape[0], "yuvj420p"
        for i in range(16):
            video_frame = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuvj420p")
            video_frame.pts = i
            for packet in stream.encode(video_frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path


@pytest.fixture(scope="session")
def edge_root(carphone, short_clip, tmp_path_factory):
    """The edge -> video layout built from two real clips (24 and 20 frames, 72 pixels high)."""
    pytest.importorskip("cv2")
    from vid2vid_fast.data.edges import build_edge_dataset

    root = tmp_path_factory.mktemp("edge2video")
    build_edge_dataset([carphone], root, height=72, max_frames=24, progress=False)
    return build_edge_dataset([short_clip], root, height=72, max_frames=20, progress=False)


@pytest.fixture(scope="session")
def label_root(edge_root, tmp_path_factory):
    """A Cityscapes-like layout made from the real frames of ``edge_root``: label maps with 4 classes
    (grey level quartiles), 16-bit instance maps (class id * 1000 + left or right half), and the frames."""
    import shutil

    import numpy as np
    from PIL import Image

    root = tmp_path_factory.mktemp("labels")
    shutil.copytree(edge_root / "train_B", root / "train_B")
    for sequence in sorted((root / "train_B").iterdir()):
        for key in ("train_A", "train_inst"):
            (root / key / sequence.name).mkdir(parents=True)
        for frame in sorted(sequence.glob("*.png")):
            grey = np.asarray(Image.open(frame).convert("L"))
            labels = np.digitize(grey, [64, 128, 192]).astype(np.uint8)
            halves = (np.arange(grey.shape[1]) >= grey.shape[1] // 2)[None, :].astype(np.uint16)
            Image.fromarray(labels).save(root / "train_A" / sequence.name / frame.name)
            Image.fromarray(labels.astype(np.uint16) * 1000 + halves).save(
                root / "train_inst" / sequence.name / frame.name
            )
    return root


@pytest.fixture(scope="session")
def mecavideo():
    """Debian's python3-mecavideo example clips g1.avi and g2.avi (400x300, 16 frames: one person riding a
    bicycle; CC-BY-SA 3.0, Benoît Markey 2007), fetched once with apt-get download into the cache
    (``$VID2VID_FAST_CACHE/mecavideo``) without installing the package; skipped where they cannot be had."""
    import shutil
    import subprocess
    import tempfile

    from vid2vid_fast.data.edges import default_cache_dir

    folder = default_cache_dir() / "mecavideo"
    clips = [folder / "g1.avi", folder / "g2.avi"]
    if all(c.is_file() for c in clips):
        return clips
    if not (shutil.which("apt-get") and shutil.which("dpkg-deb")):
        pytest.skip("the mecavideo clips need apt-get and dpkg-deb (Debian's python3-mecavideo package)")
    with tempfile.TemporaryDirectory() as tmp:
        fetched = subprocess.run(["apt-get", "download", "python3-mecavideo"], cwd=tmp, capture_output=True, text=True)
        debs = list(Path(tmp).glob("python3-mecavideo_*.deb"))
        if fetched.returncode or not debs:
            pytest.skip(f"apt-get download python3-mecavideo failed (run apt-get update?): {fetched.stderr.strip()[-200:]}")
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(Path(tmp) / "x")], check=True)
        folder.mkdir(parents=True, exist_ok=True)
        for clip in clips:
            source = Path(tmp) / "x" / "usr" / "share" / "pymecavideo" / "data" / "video" / clip.name
            shutil.copyfile(source, clip.with_suffix(".tmp"))
            clip.with_suffix(".tmp").replace(clip)
    return clips
