"""The fast configuration trains the same model as the reference one: same seed, same data, the losses
of the first iterations agree to floating-point tolerance."""

import json

import pytest
import torch
from train_helpers import make_sequences, tiny_config

from vid2vid_fast.train.trainer import Trainer

ITERATIONS = 3


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_sequences(tmp_path_factory.mktemp("seqs"))


def losses_of(trainer: Trainer) -> list[dict]:
    trainer.train()
    return [json.loads(line) for line in (trainer.run_dir / "losses.jsonl").read_text().splitlines()]


def run(data, out, **speed):
    # on the CPU, where auto keeps fp32: on a GPU it turns on bf16, which trains close to, not the same as, fp32
    config = tiny_config(data, out, speed=speed, schedule={"max_iters": ITERATIONS}, run={"print_freq": 1, "device": "cpu"})
    return Trainer(config)


@pytest.mark.parametrize("compile_", ["off", pytest.param("on", marks=pytest.mark.slow)])
def test_fast_configuration_trains_like_the_reference(data, tmp_path, compile_):
    reference = run(data, tmp_path / "reference", reference=True)
    # auto: the fused warp, channels_last, fused Adam (on memory-order views), the stacked and phased heads,
    # one discriminator forward on generated frames for both losses
    fast = run(data, tmp_path / "fast", compile=compile_)
    assert fast.speed.channels_last and fast.speed.adam == "fused" and fast.speed.backend == "auto"
    assert fast.speed.heads == "phased" and type(fast.opt_G).__name__ == "MemoryOrderAdam"
    # a compiled backward cannot keep its graph for a second backward pass (donated buffers)
    assert fast.speed.shared_d_forwards == (compile_ == "off") and not reference.speed.shared_d_forwards
    assert not reference.speed.channels_last and reference.speed.adam == "default"
    assert reference.speed.heads == "apart" and type(reference.opt_G) is torch.optim.Adam
    expected, got = losses_of(reference), losses_of(fast)
    assert [r["iteration"] for r in got] == list(range(1, ITERATIONS + 1))
    for ref, new in zip(expected, got):
        assert ref.keys() == new.keys()
        for name in ref:
            # the first iteration differs only by rounding; later ones also by the rounding of the
            # previous steps' weights, which the losses amplify a little
            assert new[name] == pytest.approx(ref[name], rel=2e-4, abs=1e-6), f"iteration {ref['iteration']}: {name}"
