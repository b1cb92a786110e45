"""The folder of one training run, ``<output_dir>/<name>/``: ``checkpoints/latest.pt``, ``config.yaml``,
``losses.jsonl``, ``tensorboard/`` and ``generated/``.

A run folder belongs to one run. A fresh run never writes where another run's checkpoint is: it takes
the first free name, ``NAME-2``, ``NAME-3``, ... A resumed run continues in the folder that holds its
checkpoint, wherever the run was first made (the output folder in the checkpoint's config is history),
so resuming a copy of a run folder writes into the copy only.
"""

import dataclasses
import json
import logging
import math
import os
from pathlib import Path

from vid2vid_fast.errors import UserError

from .checkpoint import temporary_path, temporary_prefix

log = logging.getLogger("vid2vid_fast.train")

CHECKPOINT = Path("checkpoints") / "latest.pt"
CONFIG = "config.yaml"
LOSSES = "losses.jsonl"


class RunFolderError(UserError):
    """A run's folder (or another output folder) cannot be created or written."""


def checkpoint_in(run_dir) -> Path:
    return Path(run_dir) / CHECKPOINT


def checkpoint_file(path) -> Path:
    """The checkpoint that ``path`` names: a checkpoint file, or a run folder (its latest checkpoint)."""
    path = Path(path)
    return checkpoint_in(path) if path.is_dir() else path


def run_dir_of(checkpoint) -> Path | None:
    """The run folder a checkpoint file lies in (``<run>/checkpoints/<file>``); None for a file elsewhere."""
    checkpoint = Path(checkpoint)
    return checkpoint.parent.parent if checkpoint.parent.name == CHECKPOINT.parent.name else None


def fresh_run_dir(output_dir, name) -> Path:
    """``<output_dir>/<name>``, or the first of ``<name>-2``, ``<name>-3``, ... when that folder holds a
    checkpoint (another run's: a fresh run never overwrites it)."""
    candidate, number = Path(output_dir) / name, 1
    while checkpoint_in(candidate).exists():
        number += 1
        candidate = Path(output_dir) / f"{name}-{number}"
    return candidate


def open_run_dir(output_dir, name, resume=None) -> Path:
    """The folder a run writes to, checked writable: the run folder of the checkpoint ``resume`` names,
    else a fresh one (``fresh_run_dir``; a changed name is logged)."""
    run_dir = run_dir_of(checkpoint_file(resume)) if resume is not None else None
    if run_dir is None:
        wanted = Path(output_dir) / name
        run_dir = fresh_run_dir(output_dir, name)
        if run_dir != wanted:
            log.warning("%s holds another run's checkpoint; this run writes to %s instead (to continue that one: "
                        "vid2vid-fast train --resume %s)", wanted, run_dir, wanted)
    check_writable(run_dir, "run folder")
    return run_dir


def with_run_dir(config, run_dir: Path):
    """``config`` with ``run.output_dir`` and ``run.name`` naming ``run_dir``."""
    run_dir = Path(run_dir)
    return dataclasses.replace(config, run=dataclasses.replace(config.run, output_dir=str(run_dir.parent), name=run_dir.name))


def check_writable(folder, what: str) -> None:
    """Create ``folder`` if needed and write a file in it, or raise ``RunFolderError`` saying why not
    (``what`` names the folder's role in the message)."""
    folder = Path(folder)
    blocker = next((p for p in (folder, *folder.parents) if p.exists()), None)
    if blocker is not None and not blocker.is_dir():
        raise RunFolderError(f"{what} {folder} cannot be created: {blocker} is a file, not a folder")
    probe = folder / f".write-test.tmp{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as error:
        raise RunFolderError(f"{what} {folder} is not writable: {error.strerror or error}") from error


def tidy(run_dir, iteration: int) -> None:
    """Make a run folder fit a run that continues from ``iteration`` (0 for a fresh run): remove the
    temporary files that processes killed mid-write left, and drop the loss records after ``iteration``
    (logged after the last checkpoint, they would be logged again)."""
    run_dir = Path(run_dir)
    for name in (CHECKPOINT, Path(CONFIG), Path(LOSSES)):
        path = run_dir / name
        mine = temporary_path(path)
        for stale in path.parent.glob(f"{temporary_prefix(path)}*"):
            if stale != mine:
                stale.unlink()
    truncate_losses(run_dir / LOSSES, iteration)


def truncate_losses(path: Path, iteration: int) -> None:
    """Keep the records of ``path`` (JSON lines) up to ``iteration``; a line cut short by a kill goes
    too. Atomic: the kept lines are written aside and renamed over the file."""
    if not path.is_file():
        return
    text = path.read_text()
    lines = text.splitlines()
    kept = [line for line in lines if _iteration_of(line) <= iteration]
    if len(kept) == len(lines) and text.endswith("\n"):
        return
    tmp = temporary_path(path)
    tmp.write_text("".join(line + "\n" for line in kept))
    os.replace(tmp, path)


def _iteration_of(line: str) -> float:
    """The record's iteration; infinity for a line that is not a whole record."""
    try:
        iteration = json.loads(line)["iteration"]
    except (ValueError, KeyError, TypeError):
        return math.inf
    return iteration if isinstance(iteration, int) else math.inf
