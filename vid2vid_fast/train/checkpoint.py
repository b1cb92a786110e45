"""Training checkpoints: everything a run needs to continue exactly where it stopped.

A checkpoint is one ``torch.save`` file holding plain containers and tensors only (so it loads with
``weights_only=True``): the run's config, the models' and optimizers' state dicts, the GradScaler, the
training position (epoch, clip, chunk), the tensors carried from one chunk to the next, and the random
number generators of every rank. It is written to a temporary file in the same folder and renamed into
place, so a crash while saving never leaves a truncated file under the final name.
"""

import errno
import os
import random
import shutil
from pathlib import Path

import numpy as np
import torch

from vid2vid_fast.errors import MissingFileError, UserError
from vid2vid_fast.models.weights_file import WeightsFileError, read_weights_only

from .config import architecture

FORMAT = "vid2vid_fast.train.checkpoint"
VERSION = 1


class CheckpointError(UserError, RuntimeError):
    """A checkpoint file is missing, unreadable, or does not fit the run that wants to resume from it."""


# ---------------------------------------------------------------- random number generators


def rng_state(device: torch.device | None = None) -> dict:
    """The state of every generator a training step draws from (torch CPU and CUDA, numpy, Python),
    as tensors and plain values so that it survives ``weights_only`` loading."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "python": {"version": version, "state": torch.tensor(py_state, dtype=torch.int64), "gauss_next": gauss_next},
        "cuda": None,
    }
    if device is not None and device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device | None = None) -> None:
    torch.set_rng_state(state["torch"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    python_state = state["python"]
    random.setstate((python_state["version"], tuple(python_state["state"].tolist()), python_state["gauss_next"]))
    if device is not None and device.type == "cuda":
        if state["cuda"] is None:
            raise CheckpointError("the checkpoint was written on the CPU and holds no CUDA generator state")
        torch.cuda.set_rng_state(state["cuda"], device)


# ---------------------------------------------------------------- files


def temporary_prefix(path: Path) -> str:
    """The name of every temporary file of ``path``, up to the writer's process id."""
    return f".{path.name}.tmp"


def temporary_path(path: Path) -> Path:
    """Where this process writes ``path`` before renaming it into place."""
    return path.with_name(f"{temporary_prefix(path)}{os.getpid()}")


def save_checkpoint(path, payload: dict) -> Path:
    """Write ``payload`` (plus the format tag) to ``path`` atomically: temporary file, fsync, rename.

    A file system error (disk full, quota, read-only) raises ``CheckpointError`` naming the checkpoint
    and, when space ran out, the bytes it needs; the file already at ``path`` is left as it was.
    """
    path = Path(path)
    payload = {"format": FORMAT, "version": VERSION, **payload}
    tmp = temporary_path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as handle:
            torch.save(payload, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException as error:
        if tmp.exists() or tmp.is_symlink():
            tmp.unlink()  # first, so that the free space reported below counts its bytes as free
        cause = _os_error_in(error) if isinstance(error, (OSError, RuntimeError)) else None
        if cause is None:
            raise
        raise CheckpointError(_write_failure(path, payload, cause)) from error
    return path


def _os_error_in(error: BaseException) -> OSError | None:
    """The OSError behind ``error``: torch's zip writer reports a failed write as a RuntimeError raised
    while the OSError is being handled."""
    while error is not None:
        if isinstance(error, OSError):
            return error
        error = error.__cause__ or error.__context__
    return None


class _ByteCounter:
    """A file that only counts what is written to it."""

    def __init__(self):
        self.size = 0

    def write(self, data) -> int:
        self.size += len(data)
        return len(data)

    def flush(self):
        pass


def _write_failure(path: Path, payload: dict, error: OSError) -> str:
    kept = "the previous checkpoint there is unchanged" if path.is_file() else "no checkpoint was written"
    if error.errno in (errno.ENOSPC, errno.EDQUOT):
        counter = _ByteCounter()
        torch.save(payload, counter)
        free = shutil.disk_usage(path.parent).free
        return (
            f"no space left to write checkpoint {path}: it needs {counter.size} bytes "
            f"({counter.size / 2**20:.1f} MiB), {free} bytes are free on that file system; {kept}"
        )
    return f"cannot write checkpoint {path}: {error.strerror or error}; {kept}"


def load_checkpoint(path, config_dict: dict | None = None, map_location="cpu") -> dict:
    """Read a checkpoint written by ``save_checkpoint``.

    With ``config_dict`` (the run's config as a dict), the checkpoint's architecture options must
    equal it, or the error lists every difference. Never returns something partial: a missing,
    truncated, corrupt or foreign file raises ``CheckpointError`` naming it.
    """
    path = Path(path)
    try:
        payload = read_weights_only(path, "checkpoint", map_location)
    except (MissingFileError, WeightsFileError) as error:
        raise CheckpointError(str(error)) from error
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a vid2vid_fast training checkpoint (no '{FORMAT}' tag)")
    if payload.get("version") != VERSION:
        raise CheckpointError(
            f"checkpoint {path} has format version {payload.get('version')}; this vid2vid_fast reads version {VERSION}"
        )
    missing = [key for key in ("config", "models", "optimizers", "progress", "rng") if key not in payload]
    if missing:
        raise CheckpointError(f"checkpoint {path} lacks {', '.join(missing)}")
    if config_dict is not None:
        check_architecture(payload["config"], config_dict, path)
    return payload


def check_architecture(saved_config: dict, config_dict: dict, path) -> None:
    saved, wanted = architecture(saved_config), architecture(config_dict)
    differences = [f"{key}: checkpoint {saved[key]!r}, run {wanted[key]!r}" for key in wanted if saved[key] != wanted[key]]
    if differences:
        raise CheckpointError(
            f"checkpoint {path} was trained with a different architecture; resume with the same options "
            "(or start a new run): " + "; ".join(differences)
        )


def load_module_state(module: torch.nn.Module, state: dict, name: str, path) -> None:
    """``module.load_state_dict(state)`` with an error that names the checkpoint and the model."""
    try:
        module.load_state_dict(state)
    except RuntimeError as error:
        raise CheckpointError(f"checkpoint {path}: the {name} weights do not fit the model: {error}") from error


def load_optimizer_state(optimizer: torch.optim.Optimizer, state: dict, name: str, path) -> None:
    try:
        optimizer.load_state_dict(state)
    except (ValueError, KeyError, RuntimeError) as error:
        raise CheckpointError(f"checkpoint {path}: the {name} optimizer state does not fit: {error}") from error
