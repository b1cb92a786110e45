"""What a run produces for people to look at: videos, image grids, and quality numbers.

Frames everywhere here are float tensors (T, C, H, W) in [-1, 1] (the generator's range); C is 1 or
3. Files are written atomically (temporary file in the same folder, then rename).
"""

import os
from pathlib import Path

import torch
import torch.nn.functional as F

from vid2vid_fast.ops import flow_warp


def to_uint8(frames: torch.Tensor) -> torch.Tensor:
    """(T, C, H, W) in [-1, 1], C in {1, 3} -> uint8 (T, H, W, 3)."""
    if frames.dim() != 4 or frames.shape[1] not in (1, 3):
        raise ValueError(f"frames must be (T, C, H, W) with C = 1 or 3, got {tuple(frames.shape)}")
    frames = frames.detach().float().cpu()
    if frames.shape[1] == 1:
        frames = frames.expand(-1, 3, -1, -1)
    return ((frames.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(0, 2, 3, 1).contiguous()


def _tmp_path(path: Path) -> Path:
    return path.with_name(f".{path.stem}.tmp{os.getpid()}{path.suffix}")


def write_video(path, frames: torch.Tensor, fps: float = 25.0, crf: int = 18) -> Path:
    """Write frames (T, C, H, W) in [-1, 1] as an H.264 mp4 (yuv420p, which every player reads), or
    MPEG-4 Part 2 where FFmpeg has no libx264. Odd sizes are padded by one pixel (yuv420p needs even)."""
    import av

    path = Path(path)
    if frames.shape[0] == 0:
        raise ValueError(f"no frames to write to {path}")
    pixels = to_uint8(frames)
    height, width = pixels.shape[1:3]
    pad_h, pad_w = height % 2, width % 2
    if pad_h or pad_w:
        pixels = F.pad(pixels.permute(0, 3, 1, 2), (0, pad_w, 0, pad_h), mode="replicate").permute(0, 2, 3, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
    try:
        with av.open(str(tmp), mode="w", format="mp4") as container:
            stream = container.add_stream(codec, rate=round(fps))
            stream.width, stream.height = pixels.shape[2], pixels.shape[1]
            stream.pix_fmt = "yuv420p"
            if codec == "libx264":
                stream.options = {"crf": str(crf), "preset": "medium"}
            for frame in pixels.numpy():
                for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


def side_by_side(*videos: torch.Tensor, gap: int = 2) -> torch.Tensor:
    """Frames (T, C, H, W) of several videos next to each other (1-channel ones shown grey), separated by
    ``gap`` white columns; all must share T, H and W."""
    shapes = {(v.shape[0], v.shape[2], v.shape[3]) for v in videos}
    if len(shapes) != 1:
        raise ValueError(f"videos must share frame count, height and width, got {[tuple(v.shape) for v in videos]}")
    parts = []
    for i, video in enumerate(videos):
        video = video.detach().float().cpu()
        if video.shape[1] == 1:
            video = video.expand(-1, 3, -1, -1)
        if i:
            parts.append(torch.ones(video.shape[0], 3, video.shape[2], gap))
        parts.append(video)
    return torch.cat(parts, dim=3)


def write_png_grid(path, rows: list[torch.Tensor], max_columns: int = 8, gap: int = 2) -> Path:
    """A PNG with one row per video (frames (T, C, H, W) in [-1, 1]), at most ``max_columns`` frames per
    row, evenly spaced in time."""
    from PIL import Image

    path = Path(path)
    lines = []
    for video in rows:
        count = min(max_columns, video.shape[0])
        picks = torch.linspace(0, video.shape[0] - 1, count).round().long()
        frames = [video[int(i)].detach().float().cpu().expand(3, -1, -1) if video.shape[1] == 1 else video[int(i)].detach().float().cpu() for i in picks]
        spaced = []
        for j, frame in enumerate(frames):
            if j:
                spaced.append(torch.ones(3, frame.shape[1], gap))
            spaced.append(frame)
        lines.append(torch.cat(spaced, dim=2))
    width = max(line.shape[2] for line in lines)
    padded = []
    for i, line in enumerate(lines):
        if i:
            padded.append(torch.ones(3, gap, width))
        padded.append(F.pad(line, (0, width - line.shape[2]), value=1.0))
    image = to_uint8(torch.cat(padded, dim=1)[None])[0].numpy()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_path(path)
    try:
        Image.fromarray(image).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path


# ---------------------------------------------------------------- metrics


def psnr(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """PSNR in dB per frame, images in [-1, 1] mapped to [0, 1] (peak 1); (T, C, H, W) -> (T,)."""
    if fake.shape != real.shape:
        raise ValueError(f"fake and real must have the same shape, got {tuple(fake.shape)} and {tuple(real.shape)}")
    a, b = (fake.float().clamp(-1, 1) + 1) / 2, (real.float().clamp(-1, 1) + 1) / 2
    mse = ((a - b) ** 2).flatten(1).mean(1)
    return 10 * torch.log10(1.0 / mse.clamp_min(1e-12))


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def ssim(fake: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
    """SSIM per frame (Wang et al. 2004: 11x11 Gaussian window, sigma 1.5, K1 0.01, K2 0.03, data range
    1 after mapping [-1, 1] to [0, 1]), averaged over channels and valid window positions; (T,)."""
    if fake.shape != real.shape:
        raise ValueError(f"fake and real must have the same shape, got {tuple(fake.shape)} and {tuple(real.shape)}")
    a, b = (fake.float().clamp(-1, 1) + 1) / 2, (real.float().clamp(-1, 1) + 1) / 2
    channels = a.shape[1]
    g = _gaussian_window().to(a.device)
    size = g.numel()
    if min(a.shape[-2:]) < size:
        raise ValueError(f"SSIM needs frames of at least {size}x{size}, got {tuple(a.shape[-2:])}")

    def blur(x):  # separable Gaussian, valid positions only (no padding bias at the border)
        x = F.conv2d(x, g.view(1, 1, 1, -1).expand(channels, 1, 1, size), groups=channels)
        return F.conv2d(x, g.view(1, 1, -1, 1).expand(channels, 1, size, 1), groups=channels)

    c1, c2 = 0.01**2, 0.03**2
    mu_a, mu_b = blur(a), blur(b)
    var_a = blur(a * a) - mu_a**2
    var_b = blur(b * b) - mu_b**2
    cov = blur(a * b) - mu_a * mu_b
    ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return ssim_map.flatten(1).mean(1)


def warp_error(frames: torch.Tensor, flows: torch.Tensor, conf: torch.Tensor | None = None) -> torch.Tensor:
    """Temporal inconsistency of a video: for each t >= 1, the mean absolute difference (on the [0, 1]
    scale) between frame t and frame t-1 warped to it by ``flows[t-1]`` (flow from t to t-1, pixels,
    as ``flow_warp`` takes it), counted where ``conf[t-1]`` is 1. Use the real video's flows so that
    two generated videos are judged by the same motion. (T, C, H, W), (T-1, 2, H, W) -> (T-1,)."""
    if flows.shape[0] != frames.shape[0] - 1:
        raise ValueError(f"flows must hold T-1 = {frames.shape[0] - 1} flows, got {flows.shape[0]}")
    frames = frames.float()
    warped = flow_warp(frames[:-1], flows.float(), backend="reference")
    diff = (frames[1:] - warped).abs().mean(1, keepdim=True) / 2
    if conf is None:
        return diff.flatten(1).mean(1)
    conf = conf.float()
    return (diff * conf).flatten(1).sum(1) / conf.flatten(1).sum(1).clamp_min(1.0)
