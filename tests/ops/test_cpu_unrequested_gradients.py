"""The CPU kernels compute a gradient only where it is asked for, and never into an input: with
requires_grad on any subset of the inputs, every input is bit-unchanged after backward, and the backward
ops return empty tensors for the gradients they were not asked for. float32 runs the channel-block path
(AVX2 / AVX-512 builds), float64 the planar one; channels_last the planar strides of the outputs."""

import itertools

import pytest
import torch
from cases import OPS

from vid2vid_fast.ops.backends import EXTENSION_DEVICES

pytestmark = pytest.mark.skipif("cpu" not in EXTENSION_DEVICES, reason="the extension has no cpu kernels")

SHAPE = (2, 5, 9, 21)  # a full and a padded channel block; rows longer than a vector


def bits(t):
    """The tensor's bytes, so that NaNs and signed zeros compare too."""
    return t.detach().clone().contiguous().view(torch.uint8)


def inputs_of(op, dtype, layout):
    torch.manual_seed(0)
    return [t.detach() for t in OPS[op][0](SHAPE, dtype, "cpu", layout)]


@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_inputs_unchanged_for_every_subset_of_requested_gradients(op, dtype, layout):
    inputs = inputs_of(op, dtype, layout)
    before = [bits(t) for t in inputs]
    fn = getattr(torch.ops.vid2vid_fast, op)
    for requested in itertools.product([False, True], repeat=len(inputs)):
        if not any(requested):
            continue
        leaves = [t.requires_grad_(r) for t, r in zip((t.detach() for t in inputs), requested)]
        out = fn(*leaves, "reflection", "bilinear", False)
        out.backward(torch.ones_like(out))
        for i, (leaf, r, b) in enumerate(zip(leaves, requested, before)):
            assert torch.equal(bits(leaf), b), f"{op}: input {i} changed with requires_grad {requested}"
            assert (leaf.grad is not None) == r, f"{op}: gradient of input {i} with requires_grad {requested}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_backward_op_returns_empty_unrequested_gradients(op, dtype):
    inputs = inputs_of(op, dtype, "contiguous")
    before = [bits(t) for t in inputs]
    grad_out = torch.ones(()) if op == "masked_warp_l1" else torch.ones(SHAPE, dtype=dtype)
    for i in range(len(inputs)):
        mask = [j == i for j in range(len(inputs))]
        grads = getattr(torch.ops.vid2vid_fast, f"{op}_backward")(grad_out.to(dtype), *inputs, "zeros", "bilinear",
                                                               True, mask)
        for j, (g, t, b) in enumerate(zip(grads, inputs, before)):
            assert torch.equal(bits(t), b), f"{op}: input {j} changed with mask {mask}"
            assert g.shape == (t.shape if j == i else (0,)), f"{op}: gradient {j} with mask {mask}: {g.shape}"


@pytest.mark.parametrize("mode", ["bilinear", "nearest"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("op", OPS)
def test_each_requested_gradient_is_the_one_computed_with_all(op, dtype, mode):
    """A gradient asked for alone or with others has the bits it has when every gradient is asked for (the
    kernels skip work for the others: under nearest, the tiles for the flow gradient, which is 0)."""
    inputs = inputs_of(op, dtype, "contiguous")
    grad_out = torch.ones((), dtype=dtype) if op == "masked_warp_l1" else torch.randn(SHAPE, dtype=dtype)
    backward = getattr(torch.ops.vid2vid_fast, f"{op}_backward")
    everything = backward(grad_out, *inputs, "zeros", mode, True, [True] * len(inputs))
    if mode == "nearest":
        assert torch.equal(everything[1], torch.zeros_like(inputs[1]))
    for mask in itertools.product([False, True], repeat=len(inputs)):
        grads = backward(grad_out, *inputs, "zeros", mode, True, list(mask))
        for j, (g, want, asked) in enumerate(zip(grads, everything, mask)):
            if asked:
                assert torch.equal(bits(g), bits(want)), f"{op}: gradient {j} with mask {mask}"
