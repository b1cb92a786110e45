"""Each op described once: its tensor inputs, its output and the sampling options every op takes.

The public functions (frontend.py), the fake registrations (registration.py), the Triton op definitions, the
tests and the benchmarks read these descriptions; the C++ schemas (csrc/ops.cpp) are checked against them by
tests/ops/test_registration.py. Adding an op or an option starts here.
"""

import itertools
from dataclasses import dataclass

import torch

PADDING_MODES = ("border", "zeros", "reflection")
MODES = ("bilinear", "nearest")
FLOW_LAYOUTS = ("bchw", "bhwc")


@dataclass(frozen=True)
class Sampling:
    """How an op samples its image: grid_sample's mode, padding_mode and align_corners, applied to the
    position (x + dx, y + dy) normalised by (size - 1) (README, "What the ops compute")."""

    padding_mode: str = "border"
    mode: str = "bilinear"
    align_corners: bool = True

    def __post_init__(self):
        if self.padding_mode not in PADDING_MODES:
            raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {self.padding_mode!r}")
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, got {self.mode!r}")
        if not isinstance(self.align_corners, bool):
            raise TypeError(f"align_corners must be True or False, got {self.align_corners!r}")

    def op_args(self):
        """The options as the ops take them, after the tensors: (padding_mode, mode, align_corners)."""
        return (self.padding_mode, self.mode, self.align_corners)

    def keywords(self):
        return {"padding_mode": self.padding_mode, "mode": self.mode, "align_corners": self.align_corners}

    def __str__(self):
        return f"{self.padding_mode}-{self.mode}-{'corners' if self.align_corners else 'centers'}"


DEFAULT_SAMPLING = Sampling()
ALL_SAMPLINGS = tuple(Sampling(p, m, a) for p, m, a in itertools.product(PADDING_MODES, MODES, (True, False)))

# The schema text of the sampling options, shared by every op's schema.
SAMPLING_SCHEMA = "str padding_mode, str mode, bool align_corners"


@dataclass(frozen=True)
class TensorInput:
    """A tensor input of an op. channels: "image" (the sampled image's C), "flow" (2), or a tuple of the
    counts allowed, where "C" stands for the image's C (a 1-channel input broadcasts over the channels)."""

    name: str
    channels: object = "image"

    def allowed_channels(self, image_channels):
        if self.channels == "image":
            return (image_channels,)
        if self.channels == "flow":
            return (2,)
        return tuple(image_channels if c == "C" else c for c in self.channels)


@dataclass(frozen=True)
class OpSpec:
    """An op: op(tensor inputs..., padding_mode, mode, align_corners) -> output, with the companion
    op_backward(grad_out, tensor inputs..., padding_mode, mode, align_corners, bool[n] output_mask) -> one
    gradient per input (empty where the mask says it is not needed). inputs[0] is the sampled image,
    inputs[1] the flow. The output is shaped like inputs[output_like], or a 0-d loss when output_like is None."""

    name: str
    inputs: tuple
    output_like: object
    summary: str

    @property
    def input_names(self):
        return tuple(t.name for t in self.inputs)

    def schema(self):
        tensors = ", ".join(f"Tensor {name}" for name in self.input_names)
        return f"{self.name}({tensors}, {SAMPLING_SCHEMA}) -> Tensor"

    def backward_schema(self):
        n = len(self.inputs)
        tensors = ", ".join(f"Tensor {name}" for name in ("grad_out", *self.input_names))
        outputs = ", ".join(["Tensor"] * n)
        return f"{self.name}_backward({tensors}, {SAMPLING_SCHEMA}, bool[{n}] output_mask) -> ({outputs})"

    def fake_output(self, *tensors):
        """The output's shape, dtype and layout (empty_like's rules, as the kernels allocate it)."""
        if self.output_like is None:
            return tensors[0].new_empty(())
        return torch.empty_like(tensors[self.output_like])

    def fake_gradients(self, *tensors, output_mask):
        return tuple(torch.empty_like(t) if needed else t.new_empty((0,)) for t, needed in zip(tensors, output_mask))


FLOW_WARP = OpSpec(
    "flow_warp",
    (TensorInput("img"), TensorInput("flow", "flow")),
    output_like=0,
    summary="img sampled at (x + dx, y + dy)",
)
WARP_BLEND = OpSpec(
    "warp_blend",
    (TensorInput("prev"), TensorInput("flow", "flow"), TensorInput("raw"), TensorInput("weight", (1,))),
    output_like=2,
    summary="raw * weight + flow_warp(prev, flow) * (1 - weight)",
)
MASKED_WARP_L1 = OpSpec(
    "masked_warp_l1",
    (TensorInput("src"), TensorInput("flow", "flow"), TensorInput("target"), TensorInput("mask", (1, "C"))),
    output_like=None,
    summary="mean(|flow_warp(src, flow) * mask - target * mask|)",
)

OPS = {spec.name: spec for spec in (FLOW_WARP, WARP_BLEND, MASKED_WARP_L1)}
