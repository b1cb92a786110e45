"""Label data sets made from any video, in the original vid2vid layouts, for the three tasks:

=======  ==================================================  ==========================================
task     label                                               layout
=======  ==================================================  ==========================================
edges    Canny edges of the frame (``edges``)                ``{phase}_A/<seq>/``, ``{phase}_B/<seq>/``
face     vid2vid's edge2face label: the face's 68 points     ``{phase}_A/<seq>/``, ``{phase}_B/<seq>/``
         drawn as polylines, Canny edges outside the face
         (``face_labels``; FaceMesh landmarks)
pose     the body's BODY_25 keypoints as OpenPose JSON       ``{phase}_img/<seq>/``,
         (``openpose_keypoints``; Pose landmarks), drawn     ``{phase}_openpose/<seq>/*_keypoints.json``
         with vid2vid's limb colours by ``PoseDataset``
=======  ==================================================  ==========================================

Face and pose landmarks come from mediapipe (an optional extra, see ``mediapipe_landmarks``), found on
the frame at its source size and drawn at the data set's size. Frames where nothing is found are
filled from their neighbours when the gap is short, dropped when it is long (``gaps``): a video then
becomes several sequences, ``<stem>_from<first frame>``; a video in which nothing is found at all is
an error naming it. There is no DensePose here: ``PoseDataset`` reads these data sets without it.

Like the edge data set, the result is cached (a video is processed again only when its file or the
settings change; ``{root}/.labels/<stem>.json`` records what was made, with the counts) and written
atomically (every sequence of a video is built in a temporary folder and moved into place when
complete; on an error nothing of that video is left behind).
"""

import json
import logging
import os
import shutil
import time
from pathlib import Path

import numpy as np

from .edges import build_edge_dataset, canny_edges, decode_frames, save_png
from .errors import NoSubjectFoundError, VideoDataError
from .gaps import fill_gaps
from .probe import probe_video
from .progress import Progress

log = logging.getLogger("vid2vid_fast.data")

TASKS = ("edges", "face", "pose")
SUBJECT = {"face": "face", "pose": "person"}
FOLDERS = {"edges": ("A", "B"), "face": ("A", "B"), "pose": ("openpose", "img")}  # (label, frame) kinds
MANIFESTS = ".labels"


def check_task(task: str) -> str:
    if task not in TASKS:
        raise ValueError(f"unknown label task {task!r} (--task); expected one of {', '.join(TASKS)}")
    return task


def build_label_dataset(
    videos,
    root,
    task: str,
    phase: str = "train",
    *,
    height: int | None = 256,
    max_frames: int | None = None,
    max_gap: int = 5,
    min_length: int = 8,
    min_confidence: float = 0.5,
    progress: bool = True,
) -> Path:
    """Write (or reuse) the ``task`` data set of ``videos`` in ``root`` (see the module docstring) and
    return ``root``. ``height``: frames are scaled down to it; ``max_frames``: read at most this many
    frames of each video; ``max_gap``: the longest run of frames without a face / person that is filled;
    ``min_length``: shorter segments are dropped; ``min_confidence``: mediapipe's detection confidence
    (lower finds small or blurred people more often, and more false ones)."""
    check_task(task)
    videos = [Path(v) for v in videos]
    if not videos:
        raise ValueError("no videos given (--videos)")
    names = [v.stem for v in videos]
    if len(set(names)) != len(names):
        raise ValueError(f"videos must have distinct file names (they name the sequences): {names}")
    root = Path(root)
    created = not root.exists()
    try:
        if task == "edges":
            return build_edge_dataset(videos, root, phase, height=height, max_frames=max_frames, progress=progress)
        for video in videos:
            info = probe_video(video)  # names a missing, empty or damaged file before any work
            settings = {
                "task": task, "phase": phase, "source": str(video.resolve()), "source_size": video.stat().st_size,
                "source_mtime_ns": video.stat().st_mtime_ns, "height": height, "max_frames": max_frames,
                "max_gap": max_gap, "min_length": min_length, "min_confidence": min_confidence,
            }
            manifest = root / MANIFESTS / f"{video.stem}.json"
            if manifest.is_file():
                previous = json.loads(manifest.read_text())
                if previous["settings"] == settings and _sequences_present(root, previous):
                    log.info("%s: %s labels cached in %s (%s)", video.name, task, root, previous["summary"])
                    continue
            frames = info.num_frames if max_frames is None else min(info.num_frames, max_frames)
            _build_video(video, root, settings, frames, progress)
    except BaseException:
        if created and root.is_dir() and not any(p for p in root.rglob("*") if p.is_file()):
            shutil.rmtree(root, ignore_errors=True)
        raise
    return root


def _sequences_present(root: Path, manifest: dict) -> bool:
    settings = manifest["settings"]
    return all(
        (root / f"{settings['phase']}_{kind}" / name).is_dir()
        for name in manifest["sequences"]
        for kind in FOLDERS[settings["task"]]
    )


def _extractor(task: str, min_confidence: float):
    from .mediapipe_landmarks import FaceMeshRunner, PoseRunner

    if task == "face":
        from .face_labels import face_68_from_mesh

        runner = FaceMeshRunner(min_confidence)
        return runner, lambda rgb: None if (mesh := runner(rgb)) is None else face_68_from_mesh(mesh)
    from .openpose_keypoints import body25_from_pose

    runner = PoseRunner(min_confidence)
    return runner, lambda rgb: None if (landmarks := runner(rgb)) is None else body25_from_pose(landmarks)


def _build_video(video: Path, root: Path, settings: dict, frames: int, progress: bool) -> None:
    task, phase = settings["task"], settings["phase"]
    label_kind, frame_kind = FOLDERS[task]
    tmp = root / f".{video.stem}.tmp{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    (tmp / "frames").mkdir(parents=True)
    try:
        runner, find = _extractor(task, settings["min_confidence"])
        detections, sizes = [], []
        started = time.perf_counter()
        try:
            with Progress(frames, f"{task} labels {video.name}", progress) as bar:
                for index, (source, frame) in enumerate(
                    decode_frames(video, settings["height"], settings["max_frames"], with_source=True)
                ):
                    points = find(source)
                    if points is not None:  # to the size the frame is written at
                        points = points.copy()
                        points[:, 0] *= frame.shape[1] / source.shape[1]
                        points[:, 1] *= frame.shape[0] / source.shape[0]
                    detections.append(points)
                    sizes.append(frame.shape[:2])
                    save_png(frame, tmp / "frames" / f"frame_{index:05d}.png")
                    bar.update(1)
        finally:
            runner.close()
        seconds = time.perf_counter() - started
        if not detections:
            raise VideoDataError(f"{video} has no decodable frames")
        track = fill_gaps(detections, settings["max_gap"], settings["min_length"])
        subject = SUBJECT[task]
        if track.found == 0:
            raise NoSubjectFoundError(f"no {subject} found in any of the {len(detections)} frames of {video}")
        if not track.segments:
            raise NoSubjectFoundError(
                f"{video}: a {subject} was found in {track.found} of {len(detections)} frames, but in no run of "
                f"at least {settings['min_length']} frames (gaps of more than {settings['max_gap']} frames "
                "are not filled)"
            )
        sequences = {}
        for segment in track.segments:
            name = video.stem if len(segment) == len(detections) else f"{video.stem}_from{segment.start:05d}"
            sequences[name] = [segment.start, segment.stop]
            labels = tmp / f"{phase}_{label_kind}" / name
            frames = tmp / f"{phase}_{frame_kind}" / name
            labels.mkdir(parents=True)
            frames.mkdir(parents=True)
            for index in segment:
                frame_name = f"frame_{index:05d}.png"
                os.replace(tmp / "frames" / frame_name, frames / frame_name)
                _write_label(task, labels, frames / frame_name, index, track.points[index])
        summary = f"{track.summary()}; {len(detections) / seconds:.1f} frames/s of {task} landmarks"
        log.info("%s: %s", video.name, summary)
        _commit(tmp, root, video.stem, settings, sequences, summary)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def _write_label(task: str, folder: Path, frame_path: Path, index: int, points: np.ndarray) -> None:
    if task == "face":
        from PIL import Image

        from .face_labels import face_label

        frame = np.asarray(Image.open(frame_path).convert("RGB"))
        save_png(face_label(frame, points, canny_edges(frame)), folder / f"frame_{index:05d}.png")
    else:
        from .openpose_keypoints import write_openpose_json

        write_openpose_json(folder / f"frame_{index:05d}_keypoints.json", points)


def _commit(tmp: Path, root: Path, stem: str, settings: dict, sequences: dict, summary: str) -> None:
    """Move the video's sequences into place (replacing those of an earlier build), manifest last."""
    manifest = root / MANIFESTS / f"{stem}.json"
    old = json.loads(manifest.read_text())["sequences"] if manifest.is_file() else {}
    if manifest.is_file():
        manifest.unlink()  # from here until the end the video counts as not built
    phase, task = settings["phase"], settings["task"]
    for kind in FOLDERS[task][::-1]:  # frames first, labels last
        folder = root / f"{phase}_{kind}"
        folder.mkdir(parents=True, exist_ok=True)
        for name in set(old) | set(sequences):
            shutil.rmtree(folder / name, ignore_errors=True)
        for name in sequences:
            os.replace(tmp / f"{phase}_{kind}" / name, folder / name)
    manifest.parent.mkdir(exist_ok=True)
    record = {"settings": settings, "sequences": sequences, "summary": summary}
    (tmp / "manifest.json").write_text(json.dumps(record, indent=1))
    os.replace(tmp / "manifest.json", manifest)
