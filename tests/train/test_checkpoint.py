import pickle
import random

import numpy as np
import pytest
import torch

from vid2vid_fast.train.checkpoint import (
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


def test_pickled_objects_are_refused(tmp_path):
    torch.save({"format": "x", "obj": Config()}, tmp_path / "pickled.pt")
    with pytest.raises(CheckpointError, match="arbitrary unpickling"):
        load_checkpoint(tmp_path / "pickled.pt")


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
