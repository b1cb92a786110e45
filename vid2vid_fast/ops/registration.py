"""torch.library registrations for the extension's ops (schemas and kernels live in C++): fake
implementations, so torch.compile and meta tensors know output shapes, and autograd formulas.

Every op has the form op(tensor inputs..., str padding_mode) with a companion
op_backward(grad_out, tensor inputs..., padding_mode, bool[] output_mask) -> one gradient per input,
empty where the mask says it is not needed. Outputs take an input's layout with empty_like's rules, as
the C++ kernels do.
"""

import torch


def _register(name, n_inputs, forward_fake):
    ops = torch.ops.vid2vid_fast
    torch.library.register_fake(f"vid2vid_fast::{name}", forward_fake)

    def backward_fake(grad_out, *args):
        inputs, mask = args[:n_inputs], args[-1]
        return tuple(torch.empty_like(t) if needed else t.new_empty((0,)) for t, needed in zip(inputs, mask))

    torch.library.register_fake(f"vid2vid_fast::{name}_backward", backward_fake)

    def setup_context(ctx, inputs, output):
        ctx.save_for_backward(*inputs[:n_inputs])
        ctx.padding_mode = inputs[n_inputs]

    def backward(ctx, grad_out):
        mask = list(ctx.needs_input_grad[:n_inputs])
        grads = getattr(ops, f"{name}_backward")(grad_out, *ctx.saved_tensors, ctx.padding_mode, mask)
        return (*(g if needed else None for g, needed in zip(grads, mask)), None)

    torch.library.register_autograd(f"vid2vid_fast::{name}", backward, setup_context=setup_context)


def register():
    _register("flow_warp", 2, lambda img, flow, padding_mode: torch.empty_like(img))
    _register("warp_blend", 4, lambda prev, flow, raw, weight, padding_mode: torch.empty_like(raw))
    _register("masked_warp_l1", 4, lambda src, flow, target, mask, padding_mode: src.new_empty(()))
