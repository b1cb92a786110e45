"""Fake implementations for the extension's ops (schemas, kernels and autograd live in C++:
csrc/ops.cpp, csrc/cpu, csrc/cuda, csrc/autograd.cpp), so that torch.compile and meta tensors know the
output shapes. Every op and its _backward companion have the form ops/spec.py describes; outputs take an
input's layout with empty_like's rules, as the C++ kernels do.
"""

import torch

from .spec import OPS


def register_fakes(namespace, spec):
    """The fake implementations of op `spec` and its _backward companion in `namespace`."""
    n = len(spec.inputs)
    torch.library.register_fake(f"{namespace}::{spec.name}", lambda *args: spec.fake_output(*args[:n]))
    torch.library.register_fake(f"{namespace}::{spec.name}_backward",
                                lambda grad_out, *args: spec.fake_gradients(*args[:n], output_mask=args[-1]))


def register(namespace="vid2vid_fast"):
    """The fakes of the ops in `namespace`: the extension's, or the CUDA emulation test library's
    (vid2vid_fast_cuda_emulated, same schemas)."""
    for spec in OPS.values():
        register_fakes(namespace, spec)
