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

from typing import List, Tuple

import torch
from torch import Tensor

NAMESPACE = "vid2vid_fast_triton"


def _launch():
    from . import launch  # imports triton: only once a Triton op actually runs

    return launch


def _deterministic():
    return torch.are_deterministic_algorithms_enabled()


@torch.library.custom_op(f"{NAMESPACE}::flow_warp", mutates_args=())
def flow_warp(img: Tensor, flow: Tensor, padding_mode: str, mode: str, align_corners: bool) -> Tensor:
    return _launch().flow_warp(img, flow, padding_mode, mode, align_corners)


@torch.library.custom_op(f"{NAMESPACE}::flow_warp_backward", mutates_args=())
def flow_warp_backward(
    grad_out: Tensor, img: Tensor, flow: Tensor, padding_mode: str, mode: str, align_corners: bool,
    output_mask: List[bool],
) -> Tuple[Tensor, Tensor]:
    return _launch().flow_warp_backward(grad_out, img, flow, padding_mode, mode, align_corners, output_mask,
                                        _deterministic())


@torch.library.custom_op(f"{NAMESPACE}::warp_blend", mutates_args=())
def warp_blend(
    prev: Tensor, flow: Tensor, raw: Tensor, weight: Tensor, padding_mode: str, mode: str, align_corners: bool
) -> Tensor:
    return _launch().warp_blend(prev, flow, raw, weight, padding_mode, mode, align_corners)


@torch.library.custom_op(f"{NAMESPACE}::warp_blend_backward", mutates_args=())
def warp_blend_backward(
    grad_out: Tensor, prev: Tensor, flow: Tensor, raw: Tensor, weight: Tensor, padding_mode: str, mode: str,
    align_corners: bool, output_mask: List[bool],
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    return _launch().warp_blend_backward(grad_out, prev, flow, raw, weight, padding_mode, mode, align_corners,
                                         output_mask, _deterministic())


@torch.library.custom_op(f"{NAMESPACE}::masked_warp_l1", mutates_args=())
def masked_warp_l1(
    src: Tensor, flow: Tensor, target: Tensor, mask: Tensor, padding_mode: str, mode: str, align_corners: bool
) -> Tensor:
    return _launch().masked_warp_l1(src, flow, target, mask, padding_mode, mode, align_corners)


@torch.library.custom_op(f"{NAMESPACE}::masked_warp_l1_backward", mutates_args=())
def masked_warp_l1_backward(
    grad_out: Tensor, src: Tensor, flow: Tensor, target: Tensor, mask: Tensor, padding_mode: str, mode: str,
    align_corners: bool, output_mask: List[bool],
) -> Tuple[Tensor, Tensor, Tensor, Tensor]:
    return _launch().masked_warp_l1_backward(grad_out, src, flow, target, mask, padding_mode, mode, align_corners,
                                             output_mask, _deterministic())


# The sampling arguments that follow an op's tensors: padding_mode, mode, align_corners.
N_SAMPLING_ARGS = 3


def _register(name, forward, backward_op, n_inputs, forward_fake):
    forward.register_fake(forward_fake)

    @backward_op.register_fake
    def _(grad_out, *args):
        inputs, mask = args[:n_inputs], args[-1]
        return tuple(torch.empty_like(t) if needed else t.new_empty((0,)) for t, needed in zip(inputs, mask))

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n_inputs])
        ctx.sampling = inputs[n_inputs:]

    def backward(ctx, grad_out):
        mask = list(ctx.needs_input_grad[:n_inputs])
        grads = backward_op(grad_out, *ctx.saved_tensors, *ctx.sampling, mask)
        return (*(g if needed else None for g, needed in zip(grads, mask)), *(None,) * N_SAMPLING_ARGS)

    forward.register_autograd(backward, setup_context=setup_context)

    def double_backward(ctx, *grads):
        raise RuntimeError(
            f"double backward of {NAMESPACE}::{name}_backward is not supported: the ops have first "
            f'derivatives only (use the reference backend, backend="reference", for higher-order gradients)'
        )

    backward_op.register_autograd(double_backward)


_register("flow_warp", flow_warp, flow_warp_backward, 2, lambda img, flow, *sampling: torch.empty_like(img))
_register("warp_blend", warp_blend, warp_blend_backward, 4,
          lambda prev, flow, raw, weight, *sampling: torch.empty_like(raw))
_register("masked_warp_l1", masked_warp_l1, masked_warp_l1_backward, 4,
          lambda src, flow, target, mask, *sampling: src.new_empty(()))
