import pytest
import torch

from vid2vid_fast.train.config import make_config
from vid2vid_fast.train.speed import REFERENCE, resolve_speed


def test_auto_on_the_cpu_follows_the_cpu_rules():
    speed = resolve_speed(make_config().speed, torch.device("cpu"))
    assert (speed.backend, speed.amp, speed.compile, speed.channels_last, speed.adam, speed.heads,
            speed.shared_d_forwards) == ("auto", "off", False, True, "fused", "phased", True)
    assert REFERENCE.adam == "default"  # torch's own choice


def test_reference_overrides_every_switch():
    config = make_config(overrides={"speed": {"reference": True, "backend": "cpu", "amp": "bf16"}})
    assert resolve_speed(config.speed, torch.device("cpu")) == REFERENCE


@pytest.mark.parametrize("backend", ["cuda", "triton"])
def test_gpu_backends_need_a_gpu_run(backend):
    config = make_config(overrides={"speed": {"backend": backend}})
    with pytest.raises(ValueError, match=f"backend '{backend}' needs the run on a GPU"):
        resolve_speed(config.speed, torch.device("cpu"))
