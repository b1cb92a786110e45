"""torch.library ops for the Triton backend, namespace vid2vid_fast_triton, with the schemas of the
extension's ops (vid2vid_fast::*): op(tensors..., str padding_mode, str mode, bool align_corners) and
op_backward(grad_out, tensors..., padding_mode, mode, align_corners, bool[] output_mask) -> one gradient per
input, empty where the mask says it is not needed.

They are torch.library.custom_op functions with fake implementations and autograd, so
torch.compile(fullgraph=True) treats them as opaque calls (no graph break, on CPU under the interpreter
and on CUDA). Autocast is handled before the op by the public functions (checks.autocast_inputs), which
cast float32 inputs down to the autocast dtype and never up.

A double backward (a gradient of a gradient) raises, as with the extension's ops.

The backward is deterministic (bit-identical across runs) under torch.use_deterministic_algorithms(True):
the image gradient is then written as per-corner contributions and summed in a fixed order instead of
scattered with atomics. The flag is read when the backward runs, not when it is traced.
"""

import torch

from ..registration import register_fakes
from ..spec import OPS

NAMESPACE = "vid2vid_fast_triton"


def _launch():
    from . import launch  # imports triton: only once a Triton op actually runs

    return launch


def _deterministic():
    return torch.are_deterministic_algorithms_enabled()


def _arguments(schema):
    """The schema without the op's name, as custom_op takes it: "(Tensor img, ...) -> Tensor"."""
    return schema[schema.index("("):]


def _define(spec):
    """The op and its _backward companion, with the schemas, fakes and autograd ops/spec.py describes; the
    kernels are launch.py's function of the same name."""
    n = len(spec.inputs)

    def forward_impl(*args):
        return getattr(_launch(), spec.name)(*args)

    def backward_impl(*args):
        return getattr(_launch(), f"{spec.name}_backward")(*args, _deterministic())

    forward = torch.library.custom_op(f"{NAMESPACE}::{spec.name}", forward_impl, mutates_args=(),
                                      schema=_arguments(spec.schema()))
    backward_op = torch.library.custom_op(f"{NAMESPACE}::{spec.name}_backward", backward_impl, mutates_args=(),
                                          schema=_arguments(spec.backward_schema()))
    register_fakes(NAMESPACE, spec)

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n])
        ctx.sampling = inputs[n:]

    def backward(ctx, grad_out):
        mask = list(ctx.needs_input_grad[:n])
        grads = backward_op(grad_out, *ctx.saved_tensors, *ctx.sampling, mask)
        return (*(g if needed else None for g, needed in zip(grads, mask)), *(None,) * len(ctx.sampling))

    forward.register_autograd(backward, setup_context=setup_context)

    def double_backward(ctx, *grads):
        raise RuntimeError(
            f"double backward of {NAMESPACE}::{spec.name}_backward is not supported: the ops have first "
            f'derivatives only (use the reference backend, backend="reference", for higher-order gradients)'
        )

    backward_op.register_autograd(double_backward)


for _spec in OPS.values():
    _define(_spec)
