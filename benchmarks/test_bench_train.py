"""pytest-benchmark case: one full training iteration (generator frames, ground-truth flow, image and
temporal discriminators, every loss, the G / D / temporal-D backward passes and Adam steps) of the demo
model on the bundled footage, reference configuration against the fast one.

    .venv/bin/python -m pytest benchmarks/test_bench_train.py --benchmark-only

The two cases share a benchmark group, so the report puts them side by side. For the same comparison
as one command with the ratio and peak memory: ``vid2vid-fast bench --preset demo``. On a CPU shared
with other work, set ``OMP_WAIT_POLICY=PASSIVE``: spinning OpenMP threads make every op many times slower.
"""

import pytest
import torch

from vid2vid_fast.train.config import make_config
from vid2vid_fast.train.trainer import Trainer


@pytest.fixture(scope="module")
def clip():
    config = make_config("demo")
    trainer = Trainer(config, progress=False)
    batch = next(trainer.source.batches(1, config.schedule.n_frames_total))
    return batch["A"], batch["B"]


@pytest.mark.parametrize("configuration", ["reference", "fast"])
def test_train_iteration(benchmark, tmp_path, clip, configuration):
    benchmark.group = "training iteration, demo model"
    config = make_config("demo", overrides={
        "speed": {"reference": configuration == "reference"},
        "run": {"output_dir": str(tmp_path), "tensorboard": False},
    })
    trainer = Trainer(config, progress=False)
    trainer._set_epoch(1)
    A, B = (x.to(trainer.device) for x in clip)
    frames = [config.model.n_frames_G - 1]

    def step():
        trainer.train_chunk(A, B, frames, trainer.start_carry(B))
        if trainer.device.type == "cuda":
            torch.cuda.synchronize(trainer.device)

    for _ in range(2):  # warm-up (torch.compile compiles here on a GPU)
        step()
    benchmark(step)
