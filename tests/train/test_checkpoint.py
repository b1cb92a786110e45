import io
import os
import pickle
import random

import numpy as np
import pytest
import torch

from vid2vid_fast.train.checkpoint import (
    FORMAT,
    VERSION,
    CheckpointError,
    load_checkpoint,
    load_module_state,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from vid2vid_fast.train.config import Config, make_config, to_dict


def payload(config=None):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters())
    model(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {
        "config": to_dict(config or Config()),
        "models": {"G": model.state_dict()},
        "optimizers": {"G": opt.state_dict()},
        "progress": {"epoch": 1, "iteration": 5},
        "rng": [rng_state()],
    }


def test_round_trip_is_exact(tmp_path):
    p = payload()
    path = save_checkpoint(tmp_path / "c.pt", p)
    loaded = load_checkpoint(path, to_dict(Config()))
    assert torch.equal(loaded["models"]["G"]["weight"], p["models"]["G"]["weight"])
    assert loaded["optimizers"]["G"]["state"][0]["exp_avg"].equal(p["optimizers"]["G"]["state"][0]["exp_avg"])
    assert loaded["progress"] == {"epoch": 1, "iteration": 5}
    assert not list(tmp_path.glob(".*tmp*"))  # the temporary file is gone


def test_rng_state_restores_every_generator():
    state = rng_state()
    first = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn())
    set_rng_state(state)
    again = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)], np.random.randn())
    assert torch.equal(first[0], again[0]) and np.array_equal(first[1], again[1])
    assert first[2] == again[2] and first[3] == again[3]


def test_corrupt_and_truncated_files_are_errors(tmp_path):
    good = save_checkpoint(tmp_path / "good.pt", payload())
    data = good.read_bytes()
    (tmp_path / "trunc.pt").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="trunc.pt cannot be read"):
        load_checkpoint(tmp_path / "trunc.pt")
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="junk.pt cannot be read"):
        load_checkpoint(tmp_path / "junk.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weights": torch.ones(2)}, tmp_path / "foreign.pt")
    with pytest.raises(CheckpointError, match="not a vid2vid_fast training checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")


class RunsCode:
    """Unpickling this calls a function: what a malicious checkpoint does."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_pickled_objects_are_refused_as_code(tmp_path, legacy):
    marker = tmp_path / "code-ran"
    for name, obj in [("pickled.pt", Config()), ("malicious.pt", RunsCode(marker))]:
        torch.save({"format": "x", "obj": obj}, tmp_path / name, _use_new_zipfile_serialization=not legacy)
        with pytest.raises(CheckpointError) as error:
            load_checkpoint(tmp_path / name)
        message = str(error.value)
        assert f"checkpoint file {tmp_path / name} refused: loading it would execute code (pickle" in message
        assert "weights_only=False" not in message and "\n" not in message
    assert "os.mkdir" in message or "posix.mkdir" in message
    assert not marker.exists()


def test_disk_full_names_the_file_and_the_bytes_and_keeps_the_old_checkpoint(tmp_path):
    path = save_checkpoint(tmp_path / "latest.pt", payload())
    before = path.read_bytes()
    # this process's temporary file is /dev/full: every write fails with ENOSPC, as on a full disk
    os.symlink("/dev/full", tmp_path / f".latest.pt.tmp{os.getpid()}")
    bigger = payload()
    bigger["models"]["extra"] = torch.zeros(1 << 16)
    with pytest.raises(CheckpointError) as error:
        save_checkpoint(path, bigger)
    message = str(error.value)
    assert message.startswith(f"no space left to write checkpoint {path}: it needs ")
    written = io.BytesIO()
    torch.save({"format": FORMAT, "version": VERSION, **bigger}, written)
    assert f"it needs {len(written.getvalue())} bytes" in message
    assert "the previous checkpoint there is unchanged" in message
    assert path.read_bytes() == before
    assert load_checkpoint(path)["progress"]["iteration"] == 5
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest.pt"]  # the temporary file is gone
    save_checkpoint(path, bigger)  # and the next save, with space, works
    assert load_checkpoint(path)["models"]["extra"].numel() == 1 << 16


def test_architecture_mismatch_is_an_error(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", payload())
    with pytest.raises(CheckpointError, match=r"model.ngf: checkpoint 128, run 64"):
        load_checkpoint(path, to_dict(make_config(overrides={"model": {"ngf": 64}})))
    loaded = load_checkpoint(path, to_dict(make_config(overrides={"schedule": {"lr": 1.0}})))  # not architecture
    with pytest.raises(CheckpointError, match="the G weights do not fit"):
        load_module_state(torch.nn.Linear(4, 2), loaded["models"]["G"], "G", path)


def test_failed_save_keeps_the_old_file(tmp_path):
    path = save_checkpoint(tmp_path / "c.pt", payload())
    before = path.read_bytes()
    with pytest.raises((pickle.PicklingError, AttributeError)):  # which one depends on where the lambda lives
        save_checkpoint(path, {"config": {}, "bad": lambda: 0})  # not picklable: fails mid-save
    assert path.read_bytes() == before
    assert not list(tmp_path.glob(".*tmp*"))
