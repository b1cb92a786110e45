"""Training clips decoded from video files every epoch (``--source videos``), through NVIDIA DALI or PyAV
(``--loader``), with edge-map labels computed on the fly on the training device.

This is the edge map -> video task without a frame cache: the video loaders give fixed-size clips
(``video_size``) of ``n_frames_total + n_frames_G - 1`` consecutive frames, and ``edge_map`` turns each
frame into its label. The bundled clips are transcoded to VP9 once (DALI decodes VP9 on the CPU too).
"""

from pathlib import Path

import torch
import torch.nn.functional as F

from vid2vid_fast.data import bundled_clips, prepare_video, probe_video, video_loader
from vid2vid_fast.data.edges import default_cache_dir
from vid2vid_fast.data.sampling import ClipSampling, epoch_clips, shard_bounds
from vid2vid_fast.data.transforms import VideoAugment

from .data import item_seed

_LUMA = (0.299, 0.587, 0.114)


def _gaussian_kernel(size: int = 5, sigma: float = 1.0) -> torch.Tensor:
    x = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return g / g.sum()


def edge_map(frames: torch.Tensor, low: float = 60.0, high: float = 150.0, hysteresis_steps: int = 8) -> torch.Tensor:
    """Canny edges of RGB frames (..., 3, H, W) in [-1, 1] -> (..., 1, H, W) in {-1, 1} (1 on edges), on
    the frames' device: grey level, 5x5 Gaussian (sigma 1), Sobel gradients with OpenCV's L1 magnitude
    and thresholds on the 0-255 scale, non-maximum suppression along the gradient direction, and
    hysteresis by ``hysteresis_steps`` rounds of growing strong edges into 8-connected weak ones
    (OpenCV grows without limit, so very long weak chains can differ)."""
    shape = frames.shape
    x = frames.reshape(-1, 3, *shape[-2:]).float()
    grey = torch.einsum("bchw,c->bhw", (x + 1) * 127.5, torch.tensor(_LUMA, device=x.device))[:, None]
    g = _gaussian_kernel().to(x.device)
    grey = F.conv2d(F.pad(grey, (2, 2, 2, 2), mode="replicate"), g.view(1, 1, 1, 5))
    grey = F.conv2d(grey, g.view(1, 1, 5, 1))
    sobel = torch.tensor([[-1.0, 0.0, 1.0], [-2.0, 0.0, 2.0], [-1.0, 0.0, 1.0]], device=x.device)
    padded = F.pad(grey, (1, 1, 1, 1), mode="replicate")
    gx = F.conv2d(padded, sobel.view(1, 1, 3, 3))
    gy = F.conv2d(padded, sobel.t().contiguous().view(1, 1, 3, 3))
    magnitude = gx.abs() + gy.abs()
    # the gradient direction rounded to 0, 45, 90 or 135 degrees; keep a pixel only where it is the
    # largest of itself and its two neighbours along that direction
    angle = torch.rad2deg(torch.atan2(gy, gx)) % 180
    sector = (((angle + 22.5) // 45) % 4).long()
    m = F.pad(magnitude, (1, 1, 1, 1))
    h, w = magnitude.shape[-2:]

    def shifted(dy, dx):
        return m[..., 1 + dy : 1 + dy + h, 1 + dx : 1 + dx + w]

    neighbours = {0: ((0, -1), (0, 1)), 1: ((-1, -1), (1, 1)), 2: ((-1, 0), (1, 0)), 3: ((-1, 1), (1, -1))}
    keep = torch.zeros_like(magnitude, dtype=torch.bool)
    for s, (a, b) in neighbours.items():
        keep |= (sector == s) & (magnitude >= shifted(*a)) & (magnitude > shifted(*b))
    thin = magnitude * keep
    strong, weak = thin > high, thin > low
    edges = strong
    for _ in range(hysteresis_steps):
        edges = weak & (F.max_pool2d(edges.float(), 3, stride=1, padding=1) > 0)
    out = edges.float() * 2 - 1
    return out.reshape(*shape[:-3], 1, *shape[-2:])


def prepare_videos(config, progress: bool = True) -> list[Path]:
    """The video files of a ``--source videos`` run: ``data.videos``, or the bundled clips transcoded
    once to VP9 at ``edge_height`` into the cache."""
    data = config.data
    if data.videos:
        return [Path(v) for v in data.videos]
    max_frames = data.max_source_frames or None
    folder = default_cache_dir() / (f"videos-{data.edge_height}px" + (f"-{max_frames}f" if max_frames else ""))
    out = []
    for clip in bundled_clips(data.clips):
        target = folder / f"{clip.stem}.webm"
        if not target.is_file():
            prepare_video(clip, target, codec="vp9", height=data.edge_height, max_frames=max_frames, progress=progress)
        out.append(target)
    return out


class VideoSource:
    """Training clips from video files through ``video_loader`` (DALI or PyAV), one loader per epoch
    (the clip length changes with the schedule), sharded over ranks, seeded by (seed, epoch)."""

    def __init__(self, config, videos, loader: str, device: torch.device, rank: int = 0, world_size: int = 1):
        data = config.data
        if data.label_nc or data.input_nc != 1:
            raise ValueError("--source videos makes edge-map labels: it needs label_nc 0 and input_nc 1")
        if len(data.video_size) != 2:
            raise ValueError(f"video_size must be (height, width), got {data.video_size}")
        self.config, self.videos, self.loader, self.device = config, list(videos), loader, device
        self.rank, self.world_size = rank, world_size
        self.frame_counts = {v: probe_video(v).num_frames for v in self.videos}

    def _sequence_length(self, n_frames_total: int) -> int:
        return n_frames_total + self.config.model.n_frames_G - 1

    def _sampling(self, n_frames_total: int) -> ClipSampling:
        length = self._sequence_length(n_frames_total)
        shortest = min(self.frame_counts.values())
        if length > shortest:
            # clips are capped by the shortest video, as the frame data set caps them by the sequence
            length = shortest
        return ClipSampling(length)

    def _batches_per_rank(self, n_frames_total: int) -> int:
        clips = len(epoch_clips(self.frame_counts, self._sampling(n_frames_total)))
        counts = [end - begin for begin, end in (shard_bounds(clips, r, self.world_size) for r in range(self.world_size))]
        return min(counts) // self.config.data.batch_size

    def iterations(self, epoch: int, n_frames_total: int) -> int:
        tG, per_load = self.config.model.n_frames_G, self.config.schedule.max_frames_per_gpu
        generated = self._sampling(n_frames_total).sequence_length - tG + 1
        return self._batches_per_rank(n_frames_total) * (generated // min(generated, per_load))

    def batches(self, epoch: int, n_frames_total: int, start: int = 0, pin_memory: bool = False):
        data = self.config.data
        size = tuple(data.video_size)
        loader = video_loader(
            self.videos,
            sequence_length=self._sampling(n_frames_total).sequence_length,
            batch_size=data.batch_size,
            size=size,
            augment=VideoAugment(size, max_scale=1.0, flip=not data.no_flip),
            shuffle=True,
            seed=item_seed(self.config.run.seed, epoch, -2) % (2**31),
            shard_id=self.rank,
            num_shards=self.world_size,
            backend=self.loader,
            device="gpu" if self.device.type == "cuda" else "cpu",
            num_workers=data.num_workers,
        )
        limit = self._batches_per_rank(n_frames_total)
        # the PyAV loader draws its augmentation from torch's global generator (in this process when it
        # has no workers): give it a private state per epoch, so that the draws do not depend on where
        # a run was resumed, and training's own generator state is untouched
        rng = torch.Generator().manual_seed(item_seed(self.config.run.seed, epoch, -3)).get_state()
        iterator = iter(loader)
        for index in range(limit):
            with torch.random.fork_rng(devices=[]):
                torch.set_rng_state(rng)
                batch = next(iterator)
                rng = torch.get_rng_state()
            if index < start:
                continue
            real = batch["frames"].to(self.device)
            yield {"A": edge_map(real), "B": real}

    def sequences(self, frames: int):
        """The first ``frames`` frames of each video, deterministically resized and centre-cropped, with
        their edge maps, for generation: ``[{"A", "B", "name"}]``."""
        from vid2vid_fast.data.transforms import apply_video_transform, draw_video_transform
        from vid2vid_fast.data.video_pyav import read_frames

        augment = VideoAugment.deterministic(tuple(self.config.data.video_size))
        out = []
        for video in self.videos:
            count = min(frames, self.frame_counts[video])
            pixels = torch.from_numpy(read_frames(video, range(count)))
            real = apply_video_transform(pixels, augment, draw_video_transform(augment))
            out.append({"A": edge_map(real), "B": real, "name": Path(video).stem})
        return out
