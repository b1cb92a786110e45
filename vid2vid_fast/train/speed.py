"""The speed switches of a run, resolved for the device it runs on.

Each switch can be set on its own (``--backend``, ``--amp``, ``--compile``, ``--channels_last``,
``--adam``); ``auto`` turns on what measurably helps on that kind of device. ``--reference`` gives the
reference configuration that speedups are measured against: fp32, eager, the plain-PyTorch warp,
contiguous (NCHW) tensors, torch's default Adam.

What ``auto`` chooses is a rule per device type, not a probe at start-up: a probe would cost each run
the compile it is trying to price (two minutes cold on a 2-core CPU) and, on a shared machine, would time
other processes' load as much as the switch. The CPU rules come from ``vid2vid-fast bench --preset demo``
(reference and fast iterations interleaved; speedup as the median ratio of neighbouring iterations) with
one switch at a time turned back, and a profile of the demo step, on a 2-core AMD EPYC (Zen 5, AVX-512) VM shared
with other work (load average 15-17, 2026-12-01; on the same machine quiet, the whole fast configuration
was 1.16-1.17x the reference, and 1.24x with torch.compile, before the two changes below to Adam and the
heads; 1.21-1.32x after them, five runs of 40 iterations; on 2026-12-02, four runs of 40 iterations
alternating with the commit before the head phases and shared discriminator forwards below: 1.28-1.36x
after them, 1.20-1.32x before; median ratio of neighbouring iterations 1.28-1.34x, 1.24-1.26x):

- channels_last: on. Convolutions are ~60% of the step and BatchNorm ~13%; oneDNN's NHWC kernels are
  faster. Without it the fast configuration is 1.02-1.04x the reference, with it 1.29-1.32x.
- Adam: fused. One kernel over all 134 parameter tensors: 7.4 ms a step against 15.9 ms for torch's
  default on the CPU (a loop over the tensors) and 16.4 ms for foreach; 1.27x with the default. On the
  CPU it runs on memory-order views of the channels_last weights (``adam.MemoryOrderAdam``): torch's
  fused CPU Adam copied each of their gradients first, 11.1 -> 6.6 ms a step for the demo's three
  networks (2 threads, load ~4; the same update, bit for bit).
- The generator's heads (``heads``, models/generator.py): oneDNN computes a 1-3 channel output as 16
  channels, so each 7x7 head cost about a full convolution (~5 ms of a 150 ms step on one core).
  "stacked" runs the flow and weight heads (the same features, 2 and 1 output channels) as one
  convolution of their stacked weights; the two changes together (this one and the Adam one above), one
  thread pinned to one core (``taskset``, 40 interleaved iterations, three runs, load average 2.6-6):
  1.14-1.20x -> 1.23-1.28x the reference (process CPU time of the fast step -9 to -10%). "phased"
  (the CPU's choice) also runs every head over its 2x2 output phases (models/phase_conv.py): forward +
  backward of a demo head 3.5 -> 2.1 ms; the demo step, stacked against phased interleaved in one
  process, three runs of 42 iterations (2026-12-02): median ratio of neighbouring iterations 1.004x,
  1.010x, 1.039x. Same parameters, outputs and gradients (to rounding); not switches, as nothing is
  traded. On GPUs "stacked", not measured there; the phases are measured on the CPU only.
- Discriminator forwards on generated frames (``shared_d_forwards``): the original runs each
  discriminator twice on them, on the detached frames for its own loss and with frozen parameters for
  the generator's; one forward gives both the same values, and each backward pass then takes only its
  owner's parameters (trainer.py). The demo step, apart against shared interleaved in one process, two
  runs of 42 iterations (2026-12-02): median ratio of neighbouring iterations 1.043x and 1.046x. On with
  every device, off with torch.compile: a compiled backward pass cannot keep its graph for the next one
  (donated buffers). The graph's saved tensors live until the last owner's backward pass, not until the
  generator's: more memory at the end of the step, not at its peak (the generator's backward pass). One
  difference shows in a checkpoint: with batch norm, the discriminators' running statistics (which
  training never reads: the discriminators always run in training mode) see fewer forwards per step.
- torch.compile: off. Compiling the networks as well gave 1.25-1.27x (no gain) under load, 1.24x against
  1.16x on the quiet machine; on one pinned core the compiled step was slower (156 against 147 ms). It
  costs ~2 minutes cold (112 s measured with a fresh inductor cache, load 4-6; 7-9 s from the cache):
  a loss for runs of minutes such as the demo's 5-minute budget. Again on 2026-12-02, quiet: 1.19x with it
  against 1.27-1.28x without (60 s of compilation).
- How OpenMP threads wait: not decided here, as libgomp reads ``OMP_WAIT_POLICY`` once, when torch is
  imported; ``scripts/omp_wait_policy.sh`` (which ``scripts/demo.sh`` asks) has the measurements and the rule.
- AMP: off. bf16 changes the numbers the run trains on, and most CPUs (no AMX / AVX512-BF16) have no
  fast bf16 convolutions.

On GPUs all of them are on, with bf16 (fp16 where bf16 is not supported), but for the head phases (not
measured there) and the shared discriminator forwards (torch.compile is on).

Every choice can be measured on another machine with ``vid2vid-fast bench`` and a flag
(``--compile on``, ``--channels_last off``, ...).
"""

from contextlib import nullcontext
from dataclasses import dataclass

import torch

from .config import ConfigError


@dataclass(frozen=True)
class Speed:
    backend: str  # flow-warp backend for the ops ("auto", "reference", "cpu", "cuda", "triton")
    amp: str  # "off", "bf16" or "fp16"
    compile: bool
    channels_last: bool
    loader: str = "auto"  # video decoding of --source videos: "auto", "dali" or "pyav"
    adam: str = "default"  # Adam's implementation: "fused", "foreach" or "default" (torch's own choice)
    heads: str = "apart"  # how the generator's output heads run: one of models.generator.HEAD_FORMS
    shared_d_forwards: bool = False  # one discriminator forward on generated frames for D's and G's losses

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
            f"channels_last {'on' if self.channels_last else 'off'}, Adam {self.adam}, loader {self.loader}, "
            f"generator heads {self.heads}, discriminator forwards on generated frames "
            f"{'shared' if self.shared_d_forwards else 'apart'}"
        )


REFERENCE = Speed(backend="reference", amp="off", compile=False, channels_last=False, loader="pyav", adam="default",
                  heads="apart", shared_d_forwards=False)


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

    def switch(value, auto: bool):
        return auto if value == "auto" else value == "on"

    adam = "fused" if speed_config.adam == "auto" else speed_config.adam
    compile_ = switch(speed_config.compile, auto=on_gpu)
    return Speed(
        speed_config.backend, amp, compile_,
        switch(speed_config.channels_last, auto=True), speed_config.loader, adam,
        heads="stacked" if on_gpu else "phased", shared_d_forwards=not compile_,
    )


def compiled_graphs() -> int:
    """How many graphs torch.compile has compiled in this process so far (it grows during an iteration
    that compiled or recompiled)."""
    from torch._dynamo.utils import counters

    return counters["stats"]["unique_graphs"]


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and not torch.cuda.is_available():
        raise ConfigError("--device cuda was asked for, but torch sees no CUDA GPU (use --device cpu or auto)")
    return torch.device(name)
