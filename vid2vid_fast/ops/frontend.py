"""What every public op function does before its kernel runs, written once for all ops: autocast, the flow
layout, the checks, the batch broadcast and the choice of backend (ops/spec.py describes the ops)."""

import torch
from torch import nn

from . import reference
from .backends import BACKENDS, resolve_backend
from .checks import autocast_inputs, check_op_inputs
from .spec import FLOW_LAYOUTS, Sampling


def check_flow_layout(flow_layout):
    if flow_layout not in FLOW_LAYOUTS:
        raise ValueError(f"flow_layout must be one of {FLOW_LAYOUTS}, got {flow_layout!r}")


def flow_as_bchw(flow, flow_layout):
    """The flow as (B, 2, H, W): a "bhwc" flow (B, H, W, 2) becomes a permuted view of itself, read in place."""
    check_flow_layout(flow_layout)
    if flow_layout == "bchw" or not isinstance(flow, torch.Tensor):
        return flow
    if flow.dim() != 4 or flow.shape[3] != 2:
        raise ValueError(f"flow with flow_layout='bhwc' must be (B, H, W, 2), got shape {tuple(flow.shape)}")
    return flow.permute(0, 3, 1, 2)


def run_op(spec, tensors, sampling, flow_layout, backend):
    """Runs the op `spec` on `tensors` (in the order of spec.inputs) with the Sampling `sampling`."""
    tensors = list(tensors)
    tensors[1] = flow_as_bchw(tensors[1], flow_layout)
    tensors = autocast_inputs(*tensors)
    batch = check_op_inputs(spec, tensors)
    # A batch of 1 broadcasts as an expanded view (batch stride 0); autograd sums its gradient over the batch.
    tensors = [t.expand(batch, -1, -1, -1) if t.shape[0] != batch else t for t in tensors]
    backend = resolve_backend(backend, spec.name, tensors[0])
    if backend == "reference":
        return getattr(reference, spec.name)(*tensors, **sampling.keywords())
    ops = torch.ops.vid2vid_fast_triton if backend == "triton" else torch.ops.vid2vid_fast
    return getattr(ops, spec.name)(*tensors, *sampling.op_args())


class OpModule(nn.Module):
    """The nn.Module form of an op: the options are fixed at construction (and checked there), the tensors are
    the arguments of forward."""

    def __init__(self, padding_mode="border", *, mode="bilinear", align_corners=True, flow_layout="bchw",
                 backend="auto"):
        super().__init__()
        self.sampling = Sampling(padding_mode, mode, align_corners)
        check_flow_layout(flow_layout)
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.flow_layout = flow_layout
        self.backend = backend

    def options(self):
        """The keyword arguments of the op function."""
        return {**self.sampling.keywords(), "flow_layout": self.flow_layout, "backend": self.backend}

    def extra_repr(self):
        return ", ".join(f"{k}={v!r}" for k, v in self.options().items())
