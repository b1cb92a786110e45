"""Fake implementations for the extension's ops (schemas, kernels and autograd live in C++:
csrc/ops.cpp, csrc/cpu, csrc/cuda, csrc/autograd.cpp), so that torch.compile and meta tensors know the
output shapes.

Every op has the form op(tensor inputs..., str padding_mode, str mode, bool align_corners) with a companion
op_backward(grad_out, tensor inputs..., padding_mode, mode, align_corners, bool[] output_mask) -> one gradient per input,
empty where the mask says it is not needed. Outputs take an input's layout with empty_like's rules, as
the C++ kernels do.
"""

import torch


def _register(namespace, name, n_inputs, forward_fake):
    torch.library.register_fake(f"{namespace}::{name}", forward_fake)

    def backward_fake(grad_out, *args):
        inputs, mask = args[:n_inputs], args[-1]
        return tuple(torch.empty_like(t) if needed else t.new_empty((0,)) for t, needed in zip(inputs, mask))

    torch.library.register_fake(f"{namespace}::{name}_backward", backward_fake)


def register(namespace="vid2vid_fast"):
    """The fakes of the ops in `namespace`: the extension's, or the CUDA emulation test library's
    (vid2vid_fast_cuda_emulated, same schemas)."""
    _register(namespace, "flow_warp", 2, lambda img, flow, *sampling: torch.empty_like(img))
    _register(namespace, "warp_blend", 4, lambda prev, flow, raw, weight, *sampling: torch.empty_like(raw))
    _register(namespace, "masked_warp_l1", 4, lambda src, flow, target, mask, *sampling: src.new_empty(()))
