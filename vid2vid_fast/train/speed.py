"""The speed switches of a run, resolved for the device it runs on.

Each switch can be set on its own (``--backend``, ``--amp``, ``--compile``, ``--channels_last``);
``auto`` turns on what helps on that device. ``--reference`` gives the reference configuration that
speedups are measured against: fp32, eager, the plain-PyTorch warp, contiguous (NCHW) tensors.
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Speed:
    backend: str  # flow-warp backend for the ops ("auto", "reference", "cpu", "cuda", "triton")
    amp: str  # "off", "bf16" or "fp16"
    compile: bool
    channels_last: bool
    loader: str = "auto"  # video decoding of --source videos: "auto", "dali" or "pyav"

    @property
    def amp_dtype(self):
        return {"off": None, "bf16": torch.bfloat16, "fp16": torch.float16}[self.amp]

    @property
    def memory_format(self):
        return torch.channels_last if self.channels_last else torch.contiguous_format

    def autocast(self, device: torch.device):
        if self.amp == "off":
            return nullcontext()
        return torch.autocast(device.type, dtype=self.amp_dtype)

    def describe(self) -> str:
        return (
            f"warp backend {self.backend}, AMP {self.amp}, torch.compile {'on' if self.compile else 'off'}, "
            f"channels_last {'on' if self.channels_last else 'off'}, loader {self.loader}"
        )


REFERENCE = Speed(backend="reference", amp="off", compile=False, channels_last=False, loader="pyav")


def resolve_speed(speed_config, device: torch.device) -> Speed:
    """The switches of ``speed_config`` (a SpeedConfig) with every ``auto`` decided for ``device``."""
    if speed_config.reference:
        return REFERENCE
    on_gpu = device.type == "cuda"
    amp = speed_config.amp
    if amp == "auto":
        amp = ("bf16" if torch.cuda.is_bf16_supported() else "fp16") if on_gpu else "off"
    if speed_config.backend in ("cuda", "triton") and not on_gpu:
        raise ValueError(f"backend {speed_config.backend!r} needs the run on a GPU (device cuda)")

    def switch(value):
        return on_gpu if value == "auto" else value == "on"

    return Speed(
        speed_config.backend, amp, switch(speed_config.compile), switch(speed_config.channels_last), speed_config.loader
    )


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("device 'cuda' was asked for, but torch sees no CUDA GPU")
    return torch.device(name)
