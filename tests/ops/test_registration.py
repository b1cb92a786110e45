"""torch.library integration: opcheck, torch.compile(fullgraph=True) with no graph break, autocast."""

import pytest
import torch
from cases import (
    OPS,
    CompositeStep,
    check_autocast,
    check_compile_matches_eager,
    compiled_backend_params,
    composite_inputs,
    device_of,
    make_flow,
)

import vid2vid_fast as v2v

pytestmark = pytest.mark.skipif(
    "cpu" not in v2v.available_backends("cpu"), reason="the compiled extension is not built"
)


@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_opcheck(op, backend, dtype, layout):
    make_inputs = OPS[op][0]
    torch.manual_seed(1)
    inputs = [t.requires_grad_(True) for t in make_inputs((2, 3, 5, 7), dtype, device_of(backend), layout)]
    namespace = torch.ops.vid2vid_fast_triton if backend == "triton" else torch.ops.vid2vid_fast
    forward = getattr(namespace, op).default
    torch.library.opcheck(forward, (*inputs, "zeros"))
    grad_out = torch.randn_like(forward(*inputs, "zeros"))
    backward = getattr(namespace, f"{op}_backward").default
    mask = [True] * len(inputs)
    detached = [t.detach() for t in inputs]
    torch.library.opcheck(backward, (grad_out, *detached, "border", mask))
    torch.library.opcheck(backward, (grad_out, *detached, "border", [False] + mask[1:]))


def test_compile_fullgraph_matches_eager():
    check_compile_matches_eager(CompositeStep(), composite_inputs())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_runs_in_autocast_dtype(dtype):
    check_autocast(CompositeStep(), composite_inputs(), dtype)


def test_meta_tensors_give_shapes():
    img = torch.empty(2, 3, 8, 9, device="meta")
    flow = make_flow(2, 8, 9).to("meta")
    assert torch.ops.vid2vid_fast.flow_warp(img, flow, "border").shape == img.shape
    assert torch.ops.vid2vid_fast.masked_warp_l1(img, flow, img, img[:, :1], "border").shape == ()
