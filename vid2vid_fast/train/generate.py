"""Synthesize videos with a trained generator, write them for people to watch, and measure them.

For each sequence the generator starts from the real first ``n_frames_G - 1`` frames (or from nothing
with ``no_first_img``) and then runs on its own outputs, frame by frame, as vid2vid's test mode does.
With held-out frames (``held_out_frames`` > 0) it synthesizes exactly those, which training never saw.

Per sequence it writes ``synthesized.mp4``, ``side_by_side.mp4`` (label | synthesized | real),
``no_flow.mp4`` and ``grid.png`` (rows: label, synthesized, real, no flow), and it reports PSNR and
SSIM against the real frames and the warp error between consecutive frames (under the real video's
flow). "No flow" is the same trained generator with its flow-warp composite switched off: every frame
is the hallucinated image ``img_raw``, also fed back as the previous frames.

``transfer`` re-renders another video (motion transfer): it makes the run's kind of labels from that
video (``data.task``: edges, face landmarks or body keypoints) and synthesizes every frame from them,
starting, as vid2vid's test mode does, from that video's first ``n_frames_G - 1`` real frames.
"""

import hashlib
import json
import logging
import os
import time
from pathlib import Path

import torch

from vid2vid_fast.data.edges import default_cache_dir
from vid2vid_fast.data.labels import build_label_dataset
from vid2vid_fast.data.probe import probe_video
from vid2vid_fast.data.progress import Progress
from vid2vid_fast.models.flow_source import make_flow_source

from . import checkpoint as ckpt
from . import run_folder
from .config import Config, from_dict, to_dict
from .data import drawn_pose_labels, load_sequence, make_dataset, prepare_data
from .outputs import psnr, side_by_side, ssim, warp_error, write_png_grid, write_video
from .speed import resolve_device, resolve_speed
from .trainer import build_generator
from .video_source import VideoSource, prepare_videos

log = logging.getLogger("vid2vid_fast.train")

DEFAULT_FRAMES = 60


def load_generator(checkpoint_path, config: Config | None = None, device=None):
    """The generator of a training checkpoint, in eval mode, and the run's config (the checkpoint's own
    unless ``config`` is given, which must have the same architecture)."""
    payload = ckpt.load_checkpoint(checkpoint_path, None if config is None else to_dict(config))
    config = config or from_dict(payload["config"], f"config in {checkpoint_path}")
    device = device or resolve_device(config.run.device)
    speed = resolve_speed(config.speed, device)
    generator = build_generator(config, speed.backend, speed.heads)
    ckpt.load_module_state(generator, payload["models"]["G"], "generator", checkpoint_path)
    return generator.to(device).eval(), config


def _run_dir(checkpoint_path: Path) -> Path:
    """The folder a checkpoint's outputs go to by default: the run folder it lies in (wherever that is now:
    the folder named in its saved config is history), or the checkpoint's own folder outside a run."""
    return run_folder.run_dir_of(checkpoint_path) or checkpoint_path.parent


@torch.no_grad()
def synthesize(generator, labels: torch.Tensor, real: torch.Tensor, n_frames: int, *, use_flow: bool = True,
               no_first_img: bool = False, progress: Progress | None = None) -> torch.Tensor:
    """Frames ``n_frames_G - 1 .. n_frames_G - 2 + n_frames`` of a sequence, (n_frames, C, H, W).

    ``labels`` (T, C_A, H, W) and ``real`` (T, 3, H, W) hold the whole sequence; the real frames are used
    only as the starting previous frames. ``use_flow=False`` outputs (and feeds back) ``img_raw``.
    ``progress`` is advanced by one per frame.
    """
    tG = generator.n_frames_G
    device = next(generator.parameters()).device
    labels, real = labels.to(device), real.to(device)
    _, c, h, w = real.shape
    prev = None if no_first_img else generator.pyramid(real[: tG - 1].reshape(1, (tG - 1) * c, h, w))
    frames = []
    for t in range(tG - 1, tG - 1 + n_frames):
        out = generator(labels[t - tG + 1 : t + 1].reshape(1, -1, h, w), prev)
        if prev is None:
            prev = generator.pyramid(real.new_zeros(1, (tG - 1) * c, h, w))
        new = out.img_final_pyramid if use_flow else generator.pyramid(out.img_raw)
        frame = out.img_final if use_flow else out.img_raw
        prev = [torch.cat([p[:, c:], n], dim=1) for p, n in zip(prev, new)]
        frames.append(frame[0].float())
        if progress is not None:
            progress.update(1)
    return torch.stack(frames)


def _sequences(config: Config, frames: int | None, device):
    """The sequences to synthesize: the held-out frames of a frame data set (or its sequences from
    the start), or the start of each video of a --source videos run."""
    tG = config.model.n_frames_G
    if config.data.source == "videos":
        source = VideoSource(config, prepare_videos(config, progress=False), "pyav", device)
        wanted = (frames or config.run.generate_frames or DEFAULT_FRAMES) + tG - 1
        for sequence in source.sequences(wanted):
            yield {**sequence, "A": sequence["A"].cpu(), "held_out": False}
        return
    root, train_phase, test_phase = prepare_data(config, progress=False)
    dataset = make_dataset(config, root, test_phase or train_phase)
    for index in range(len(dataset.paths)):
        yield {**load_sequence(dataset, index), "held_out": test_phase is not None}


def generate(checkpoint_path, out_dir=None, *, config: Config | None = None, frames: int | None = None,
             device=None, fps: float = 25.0) -> dict:
    """Write the videos and metrics of every sequence to ``out_dir`` (default: ``generated/`` in the run
    folder the checkpoint lies in, or next to a checkpoint file outside one) and return
    ``{"sequences": {name: metrics}, "mean": metrics, "out_dir": ...}``."""
    checkpoint_path = Path(checkpoint_path)
    if frames is not None and frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if out_dir is None:
        out_dir = _run_dir(checkpoint_path) / "generated"
    generator, config = load_generator(checkpoint_path, config, device)
    out_dir = Path(out_dir)
    run_folder.check_writable(out_dir, "output folder")
    device = next(generator.parameters()).device
    tG = config.model.n_frames_G
    flow_source = make_flow_source(config.loss.flow_source, config.loss.flow_checkpoint or None).to(device)
    results = {}
    for sequence in _sequences(config, frames, device):
        held_out = sequence["held_out"]
        available = sequence["B"].shape[0] - (tG - 1)
        wanted = frames or config.run.generate_frames or (available if held_out else DEFAULT_FRAMES)
        n = min(wanted, available)
        fake = synthesize(generator, sequence["A"], sequence["B"], n, no_first_img=config.model.no_first_img).cpu()
        no_flow = synthesize(generator, sequence["A"], sequence["B"], n, use_flow=False,
                             no_first_img=config.model.no_first_img).cpu()
        real = sequence["B"][tG - 1 : tG - 1 + n]
        label = sequence["A"][tG - 1 : tG - 1 + n]
        label = label[:, :3] if label.shape[1] >= 3 else label[:, :1]
        with torch.no_grad():
            flows, conf = flow_source(real[1:].to(device), real[:-1].to(device)) if n > 1 else (None, None)
        metrics = {
            "frames": n,
            "held_out": held_out,
            "psnr_db": psnr(fake, real).mean().item(),
            "ssim": ssim(fake, real).mean().item(),
            "psnr_db_no_flow": psnr(no_flow, real).mean().item(),
            "ssim_no_flow": ssim(no_flow, real).mean().item(),
        }
        if flows is not None:
            flows, conf = flows.cpu(), conf.cpu()
            metrics["warp_error"] = warp_error(fake, flows, conf).mean().item()
            metrics["warp_error_no_flow"] = warp_error(no_flow, flows, conf).mean().item()
            metrics["warp_error_real"] = warp_error(real, flows, conf).mean().item()
        folder = out_dir / sequence["name"]
        write_video(folder / "synthesized.mp4", fake, fps)
        write_video(folder / "side_by_side.mp4", side_by_side(label, fake, real), fps)
        write_video(folder / "no_flow.mp4", no_flow, fps)
        write_png_grid(folder / "grid.png", [label, fake, real, no_flow])
        results[sequence["name"]] = metrics
    mean = {
        key: sum(m[key] for m in results.values()) / len(results)
        for key in next(iter(results.values()))
        if key not in ("frames", "held_out") and all(key in m for m in results.values())
    }
    summary = {"checkpoint": str(checkpoint_path), "out_dir": str(out_dir), "sequences": results, "mean": mean}
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = out_dir / f".metrics.json.tmp{os.getpid()}"
    tmp.write_text(json.dumps(summary, indent=1))
    os.replace(tmp, out_dir / "metrics.json")
    return summary


def transfer(checkpoint_path, video, out_dir=None, *, device=None, fps: float | None = None,
             label_confidence: float | None = None, progress: bool = True) -> dict:
    """Motion transfer: synthesize ``video`` re-rendered from its labels (of the run's task) and write, per
    sequence, ``synthesized.mp4`` and ``label_and_synthesized.mp4`` to ``out_dir`` (default
    ``<run>/transfer/<video stem>``). ``label_confidence``: mediapipe's detection confidence (default: the
    run's). Returns the paths and the frames/s of labelling and synthesis."""
    checkpoint_path, video = Path(checkpoint_path), Path(video)
    info = probe_video(video)  # names a missing, empty or damaged file before the model loads
    generator, config = load_generator(checkpoint_path, None, device)
    data, tG = config.data, config.model.n_frames_G
    out_dir = Path(out_dir) if out_dir is not None else _run_dir(checkpoint_path) / "transfer" / video.stem
    run_folder.check_writable(out_dir, "output folder")
    confidence = data.label_confidence if label_confidence is None else label_confidence
    key = f"{video.resolve()}|{data.task}|{data.edge_height}|{data.max_source_frames}|{confidence}"
    root = default_cache_dir() / "transfer" / hashlib.sha256(key.encode()).hexdigest()[:12]
    started = time.perf_counter()
    build_label_dataset([video], root, data.task, height=data.edge_height,
                        max_frames=data.max_source_frames or None, min_length=tG + 1, min_confidence=confidence,
                        progress=progress)
    label_seconds = time.perf_counter() - started
    if data.task == "pose":
        root = drawn_pose_labels(root, "train", progress)
    dataset = make_dataset(config, root, "train")
    sequences, synthesized, synthesis_seconds = {}, 0, 0.0
    for index in range(len(dataset.paths)):
        sequence = load_sequence(dataset, index)
        n = sequence["B"].shape[0] - (tG - 1)
        started = time.perf_counter()
        with Progress(n, f"synthesizing {sequence['name']}", progress) as bar:
            fake = synthesize(generator, sequence["A"], sequence["B"], n, no_first_img=config.model.no_first_img,
                              progress=bar).cpu()
        synthesis_seconds += time.perf_counter() - started
        synthesized += n
        label = sequence["A"][tG - 1 :]
        folder = out_dir / sequence["name"]
        rate = fps or float(info.fps)
        sequences[sequence["name"]] = {
            "frames": n,
            "synthesized": str(write_video(folder / "synthesized.mp4", fake, rate)),
            "label_and_synthesized": str(write_video(folder / "label_and_synthesized.mp4", side_by_side(label, fake), rate)),
        }
    return {
        "checkpoint": str(checkpoint_path),
        "video": str(video),
        "task": data.task,
        "out_dir": str(out_dir),
        "sequences": sequences,
        # of the whole labelling step (decoding, landmarks, drawing, writing); ~0 s when it was cached
        "labelling_frames_per_second": sum(len(p["B"]) for p in dataset.paths) / label_seconds,
        "synthesis_frames_per_second": synthesized / synthesis_seconds,
    }


def format_metrics(summary: dict) -> str:
    """A Markdown table of the metrics, one row per sequence and the mean."""
    lines = [
        "| sequence | frames | PSNR dB | SSIM | PSNR no flow | SSIM no flow | warp err | warp err no flow | warp err real |",
        "|---|---|---|---|---|---|---|---|---|",
    ]

    def row(name, m, frames):
        def f(key, digits):
            return f"{m[key]:.{digits}f}" if key in m else "-"

        return (
            f"| {name} | {frames} | {f('psnr_db', 2)} | {f('ssim', 3)} | {f('psnr_db_no_flow', 2)} | "
            f"{f('ssim_no_flow', 3)} | {f('warp_error', 4)} | {f('warp_error_no_flow', 4)} | {f('warp_error_real', 4)} |"
        )

    for name, m in summary["sequences"].items():
        lines.append(row(name, m, m["frames"]))
    lines.append(row("**mean**", summary["mean"], sum(m["frames"] for m in summary["sequences"].values())))
    return "\n".join(lines)
