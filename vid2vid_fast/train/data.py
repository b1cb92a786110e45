"""The data a run trains and generates on, and the order it reads it in.

- ``prepare_data``: the data set folder (labels of the run's task, ``data.task``, made from the
  bundled footage by default and built once into the cache; a pose data set's keypoints drawn once into
  label images), split into training frames and held-out frames when ``held_out_frames`` > 0;
- ``EpochOrder``: which clips an epoch holds, in which order, on which rank; every clip carries its own
  seed, so a clip's random draws (start, frame step, crop, flip) depend only on (seed, epoch,
  position) and not on worker processes or on where a run was resumed;
- ``load_sequence``: a whole sequence, deterministically transformed, for generation and metrics.
"""

import hashlib
import json
import os
import shutil
from pathlib import Path

import torch
from torch.utils.data import DataLoader, Dataset

from vid2vid_fast.data import TemporalDataset, Vid2VidAugment, bundled_clips
from vid2vid_fast.data.edges import default_cache_dir, save_png
from vid2vid_fast.data.errors import SequenceTooShortError, VideoDataError
from vid2vid_fast.data.image_sequence import list_sequences, load_image
from vid2vid_fast.data.labels import build_label_dataset
from vid2vid_fast.data.pose import render_openpose
from vid2vid_fast.data.progress import Progress
from vid2vid_fast.data.transforms import draw_frame_params
from vid2vid_fast.errors import MissingFileError

from .config import ConfigError


def label_channels(config) -> int:
    """Channels of one frame's generator input: one-hot labels (+ instance edges) or the input image."""
    data = config.data
    return data.label_nc + int(data.use_instance) if data.label_nc else data.input_nc


def prepare_data(config, progress: bool = True) -> tuple[Path, str, str | None]:
    """``(root, train_phase, test_phase)``: where the run's frames are, as ``{phase}_A`` / ``{phase}_B``
    folders. ``test_phase`` is None without held-out frames. Builds the bundled data set of the run's
    task on first use."""
    data = config.data
    if data.dataroot:
        root = Path(data.dataroot)
        if root.is_file():
            raise VideoDataError(f"dataroot {root} is a file; expected a folder holding {data.phase}_A/ and {data.phase}_B/")
        if not root.is_dir():
            raise MissingFileError(f"dataroot {root} does not exist")
    else:
        max_frames = data.max_source_frames or None
        # one folder per task, clip set and setting: the data set is every sequence in the folder, and
        # runs with other settings must not rebuild each other's frames
        clips = hashlib.sha256("|".join(sorted(data.clips)).encode()).hexdigest()[:8]
        kind = "edge" if data.task == "edges" else data.task
        root = default_cache_dir() / (
            f"{kind}2video-{data.edge_height}px" + (f"-{max_frames}f" if max_frames else "") + f"-{clips}"
        )
        build_label_dataset(
            bundled_clips(data.clips), root, data.task, data.phase, height=data.edge_height, max_frames=max_frames,
            min_length=min_sequence_frames(config), min_confidence=data.label_confidence, progress=progress,
        )
    return split_data(config, root, data.phase, progress)


def min_sequence_frames(config) -> int:
    """The shortest sequence a run can use: one training clip, plus the held-out frames."""
    n_frames_G = config.model.n_frames_G
    return max(8, config.data.held_out_frames + n_frames_G + 1 if config.data.held_out_frames else n_frames_G)


def split_data(config, root: Path, phase: str, progress: bool = True) -> tuple[Path, str, str | None]:
    """The ``prepare_data`` result for a data set of the run's task in ``root``: pose keypoints drawn,
    held-out frames split off."""
    data = config.data
    if data.task == "pose":
        root = drawn_pose_labels(root, phase, progress)
    if not data.held_out_frames:
        return root, phase, None
    return split_held_out(root, phase, data.held_out_frames, config.model.n_frames_G, data.use_instance)


def drawn_pose_labels(root: Path, phase: str, progress: bool = True) -> Path:
    """A pose data set (``{phase}_img``, ``{phase}_openpose``) as label images: ``{phase}_A`` holds each
    frame's keypoints drawn as ``PoseDataset`` draws them (vid2vid's limb colours, without random limb
    drops), ``{phase}_B`` links to the frames. Made once into the cache; returns its folder."""
    frames = list_sequences(root / f"{phase}_img")
    keypoints = {}
    for name, paths in frames.items():
        files = sorted((root / f"{phase}_openpose" / name).glob("*.json"))
        if len(files) != len(paths):
            raise VideoDataError(
                f"sequence {name!r} has {len(files)} keypoint files in {root / f'{phase}_openpose' / name} "
                f"but {len(paths)} frames in {root / f'{phase}_img' / name}"
            )
        keypoints[name] = files
    listing = json.dumps(
        {name: [[str(f), f.stat().st_mtime_ns] for f in files] for name, files in keypoints.items()}, sort_keys=True
    )
    key = hashlib.sha256(f"{root.resolve()}|{phase}|{listing}".encode()).hexdigest()[:12]
    drawn = default_cache_dir() / "pose-drawn" / key
    marker = drawn / ".complete.json"
    if marker.is_file() and marker.read_text() == listing:
        return drawn
    tmp = drawn.with_name(f".{key}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        with Progress(sum(map(len, frames.values())), f"drawing keypoints of {root}", progress) as bar:
            for name, paths in frames.items():
                (tmp / f"{phase}_A" / name).mkdir(parents=True)
                (tmp / f"{phase}_B" / name).mkdir(parents=True)
                for frame, json_path in zip(paths, keypoints[name]):
                    save_png(render_openpose(json_path, load_image(frame).size), tmp / f"{phase}_A" / name / f"{frame.stem}.png")
                    (tmp / f"{phase}_B" / name / frame.name).symlink_to(frame.resolve())
                    bar.update(1)
        (tmp / ".complete.json").write_text(listing)
        shutil.rmtree(drawn, ignore_errors=True)
        os.replace(tmp, drawn)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return drawn


def split_held_out(root: Path, phase: str, held_out: int, n_frames_G: int, use_instance: bool = False):
    """Link the frames of ``root/{phase}_*`` into a split folder: phase ``train`` without the last
    ``held_out`` frames of each sequence, phase ``test`` with those frames plus the ``n_frames_G - 1``
    before them (the real frames generation starts from). Returns ``(split_root, "train", "test")``."""
    kinds = ["A", "B"] + (["inst"] if use_instance else [])
    listed = {kind: list_sequences(root / f"{phase}_{kind}") for kind in kinds}
    key = hashlib.sha256(f"{root.resolve()}|{phase}|{held_out}|{n_frames_G}|{kinds}".encode()).hexdigest()[:12]
    split = default_cache_dir() / "splits" / key
    for name, frames in listed["B"].items():
        if len(frames) < held_out + n_frames_G + 1:
            raise SequenceTooShortError(
                f"sequence {name} has {len(frames)} frames: too few to hold out {held_out} "
                f"(training needs at least n_frames_G = {n_frames_G} more)"
            )
    # reuse a complete split of the same frames: another process (a DDP rank, generate) may be reading it
    listing = json.dumps({kind: {name: [str(f) for f in frames] for name, frames in sequences.items()}
                          for kind, sequences in listed.items()}, sort_keys=True)
    marker = split / ".complete.json"
    if marker.is_file() and marker.read_text() == listing:
        return split, "train", "test"
    tmp = split.with_name(f".{key}.tmp{os.getpid()}")
    shutil.rmtree(tmp, ignore_errors=True)
    for kind, sequences in listed.items():
        for name, frames in sequences.items():
            cut = len(frames) - held_out
            for part, chosen in (("train", frames[:cut]), ("test", frames[cut - (n_frames_G - 1) :])):
                folder = tmp / f"{part}_{kind}" / name
                folder.mkdir(parents=True)
                for frame in chosen:
                    (folder / frame.name).symlink_to(frame.resolve())
    (tmp / ".complete.json").write_text(listing)
    shutil.rmtree(split, ignore_errors=True)
    os.replace(tmp, split)
    return split, "train", "test"


def make_dataset(config, root, phase, n_frames_total: int | None = None) -> TemporalDataset:
    data = config.data
    return TemporalDataset(
        root,
        phase,
        label_nc=data.label_nc,
        input_nc=data.input_nc,
        use_instance=data.use_instance,
        n_frames_total=n_frames_total or config.schedule.n_frames_total,
        n_frames_G=config.model.n_frames_G,
        max_t_step=data.max_t_step,
        frames_per_load=config.schedule.max_frames_per_gpu,
        augment=Vid2VidAugment(data.resize_or_crop, data.load_size, data.fine_size, flip=not data.no_flip),
    )


def item_seed(seed: int, epoch: int, position: int) -> int:
    """A seed per (run seed, epoch, position in the epoch), spread so that nearby ones differ."""
    digest = hashlib.sha256(f"{seed}/{epoch}/{position}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & ((1 << 63) - 1)


class EpochOrder:
    """The clips of one epoch for one rank: ``[(sequence index, seed), ...]``.

    An epoch holds ``epoch_length`` clips (default: one per sequence), sequences repeated in turn,
    shuffled with a generator seeded by (seed, epoch); rank r takes positions r, r + world, ... and
    every rank gets the same count (the remainder is dropped) so that distributed ranks step together.
    """

    def __init__(self, num_sequences: int, epoch_length: int, seed: int, rank: int = 0, world_size: int = 1):
        self.num_sequences = num_sequences
        self.epoch_length = epoch_length or num_sequences
        if self.epoch_length < world_size:
            raise ConfigError(
                f"an epoch of {self.epoch_length} clips cannot feed {world_size} processes; raise epoch_length"
            )
        self.seed, self.rank, self.world_size = seed, rank, world_size

    def __len__(self):
        return self.epoch_length // self.world_size

    def clips(self, epoch: int) -> list[tuple[int, int]]:
        generator = torch.Generator().manual_seed(item_seed(self.seed, epoch, -1))
        order = torch.randperm(self.epoch_length, generator=generator).tolist()
        mine = order[self.rank :: self.world_size][: len(self)]
        return [(position % self.num_sequences, item_seed(self.seed, epoch, position)) for position in mine]


class SeededClips(Dataset):
    """Wraps a TemporalDataset: item ``(index, seed)`` is drawn with torch's generator seeded by ``seed``
    (the caller's generator state is restored afterwards)."""

    def __init__(self, dataset: TemporalDataset):
        self.dataset = dataset

    def __len__(self):
        return len(self.dataset)

    def __getitem__(self, index_and_seed):
        index, seed = index_and_seed
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            return self.dataset[index]


def load_sequence(dataset: TemporalDataset, index: int) -> dict:
    """Every frame of sequence ``index``: ``{"A": (T, C_A, H, W), "B": (T, 3, H, W), "name": str}``,
    resized and centre-cropped as in evaluation (no random draw, no flip)."""
    from vid2vid_fast.data.image_sequence import instance_edges, load_image

    paths = dataset.paths[index]
    first = load_image(paths["B"][0], "RGB")
    params = draw_frame_params(dataset.augment, first.size, train=False)
    # TemporalDataset's per-frame readers apply exactly the transform of its items
    a = torch.stack([dataset._input(p, params) for p in paths["A"]])
    b = torch.stack([dataset._real(p, params) for p in paths["B"]])
    if dataset.use_instance:
        edges = torch.stack([instance_edges(dataset._instance(p, params)) for p in paths["inst"]])
        a = torch.cat([a, edges], dim=1)
    return {"A": a, "B": b, "name": dataset.names[index]}


class FrameSource:
    """Training clips from image-sequence folders (``TemporalDataset``), in ``EpochOrder``; the data
    source of ``--source frames``. ``batches(epoch, start)`` yields ``{"A", "B"}`` batches from batch
    number ``start`` of the epoch (the position a resumed run continues from)."""

    def __init__(self, config, root, phase, rank: int = 0, world_size: int = 1):
        self.config = config
        self.dataset = make_dataset(config, root, phase)
        self.rank, self.world_size = rank, world_size
        self.set_epoch_length(config.schedule.epoch_length)

    def set_epoch_length(self, epoch_length: int):
        """Epochs of ``epoch_length`` clips (0: one per sequence) from now on; a wall-clock budget
        (train/schedule.py, IterationBudget) changes it once it has measured the speed."""
        self.order = EpochOrder(len(self.dataset), epoch_length, self.config.run.seed, self.rank, self.world_size)
        if len(self.order) < self.config.data.batch_size:
            raise ConfigError(
                f"an epoch holds {len(self.order)} clips per process, fewer than "
                f"batch_size={self.config.data.batch_size}"
            )

    def epoch_batches(self, epoch: int) -> list[list[tuple[int, int]]]:
        clips = self.order.clips(epoch)
        size = self.config.data.batch_size
        return [clips[i : i + size] for i in range(0, len(clips) - size + 1, size)]

    def iterations(self, epoch: int, n_frames_total: int) -> int:
        """Iterations (chunks) of the epoch on this rank, by the data set's clip-length rule."""
        tG, per_load = self.config.model.n_frames_G, self.config.schedule.max_frames_per_gpu

        def chunks(sequence):
            generated = min(n_frames_total, len(self.dataset.paths[sequence]["B"]) - tG + 1)
            return generated // min(generated, per_load)

        return sum(max(chunks(seq) for seq, _ in batch) for batch in self.epoch_batches(epoch))

    def batches(self, epoch: int, n_frames_total: int, start: int = 0, pin_memory: bool = False):
        self.dataset.n_frames_total = n_frames_total
        workers = self.config.data.num_workers
        loader = DataLoader(
            SeededClips(self.dataset),
            batch_sampler=self.epoch_batches(epoch)[start:],
            num_workers=workers,
            pin_memory=pin_memory,
            # a stuck worker is an error, not a hang; a private generator leaves the global RNG alone
            timeout=300 if workers else 0,
            generator=torch.Generator(),
        )
        for batch in loader:
            yield {"A": batch["A"], "B": batch["B"]}
