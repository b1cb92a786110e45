"""torch.library registrations for the extension's ops (schemas and kernels live in C++): fake
implementations, so torch.compile and meta tensors know output shapes, and autograd formulas.

Every output takes its input's layout with empty_like's rules, as the C++ kernels do.
"""

import torch

_OPS = torch.ops.vid2vid_fast


def _grad_or_empty(needed, like):
    return torch.empty_like(like) if needed else like.new_empty((0,))


def _as_gradients(grads, mask):
    return tuple(g if needed else None for g, needed in zip(grads, mask))


def register():
    # ------------------------------------------------------------------ flow_warp
    @torch.library.register_fake("vid2vid_fast::flow_warp")
    def _(img, flow, padding_mode):
        return torch.empty_like(img)

    @torch.library.register_fake("vid2vid_fast::flow_warp_backward")
    def _(grad_out, img, flow, padding_mode, output_mask):
        return _grad_or_empty(output_mask[0], img), _grad_or_empty(output_mask[1], flow)

    def flow_warp_setup(ctx, inputs, output):
        img, flow, padding_mode = inputs
        ctx.save_for_backward(img, flow)
        ctx.padding_mode = padding_mode

    def flow_warp_backward(ctx, grad_out):
        img, flow = ctx.saved_tensors
        mask = list(ctx.needs_input_grad[:2])
        grads = _OPS.flow_warp_backward(grad_out, img, flow, ctx.padding_mode, mask)
        return (*_as_gradients(grads, mask), None)

    torch.library.register_autograd(
        "vid2vid_fast::flow_warp", flow_warp_backward, setup_context=flow_warp_setup
    )

    # ------------------------------------------------------------------ warp_blend
    @torch.library.register_fake("vid2vid_fast::warp_blend")
    def _(prev, flow, raw, weight, padding_mode):
        return torch.empty_like(raw)

    @torch.library.register_fake("vid2vid_fast::warp_blend_backward")
    def _(grad_out, prev, flow, raw, weight, padding_mode, output_mask):
        likes = (prev, flow, raw, weight)
        return tuple(_grad_or_empty(m, t) for m, t in zip(output_mask, likes))

    def warp_blend_setup(ctx, inputs, output):
        prev, flow, raw, weight, padding_mode = inputs
        ctx.save_for_backward(prev, flow, raw, weight)
        ctx.padding_mode = padding_mode

    def warp_blend_backward(ctx, grad_out):
        mask = list(ctx.needs_input_grad[:4])
        grads = _OPS.warp_blend_backward(grad_out, *ctx.saved_tensors, ctx.padding_mode, mask)
        return (*_as_gradients(grads, mask), None)

    torch.library.register_autograd(
        "vid2vid_fast::warp_blend", warp_blend_backward, setup_context=warp_blend_setup
    )

    # ------------------------------------------------------------------ masked_warp_l1
    @torch.library.register_fake("vid2vid_fast::masked_warp_l1")
    def _(src, flow, target, mask, padding_mode):
        return src.new_empty(())

    @torch.library.register_fake("vid2vid_fast::masked_warp_l1_backward")
    def _(grad_out, src, flow, target, mask, padding_mode, output_mask):
        likes = (src, flow, target, mask)
        return tuple(_grad_or_empty(m, t) for m, t in zip(output_mask, likes))

    def masked_warp_l1_setup(ctx, inputs, output):
        src, flow, target, mask, padding_mode = inputs
        ctx.save_for_backward(src, flow, target, mask)
        ctx.padding_mode = padding_mode

    def masked_warp_l1_backward(ctx, grad_out):
        mask = list(ctx.needs_input_grad[:4])
        grads = _OPS.masked_warp_l1_backward(grad_out, *ctx.saved_tensors, ctx.padding_mode, mask)
        return (*_as_gradients(grads, mask), None)

    torch.library.register_autograd(
        "vid2vid_fast::masked_warp_l1", masked_warp_l1_backward, setup_context=masked_warp_l1_setup
    )
