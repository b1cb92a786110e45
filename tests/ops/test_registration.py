"""torch.library integration: opcheck, torch.compile(fullgraph=True) with no graph break, autocast."""

import cuda_emulated
import pytest
import torch
from cases import (
    CUDA_EMULATED,
    OPS,
    CompositeStep,
    check_autocast,
    check_compile_matches_eager,
    compiled_backend_params,
    composite_inputs,
    device_of,
    Sampling,
    make_flow,
)

import vid2vid_fast as v2v
from vid2vid_fast.ops.spec import OPS as SPECS

pytestmark = pytest.mark.skipif(
    "cpu" not in v2v.available_backends("cpu"), reason="the compiled extension is not built"
)


def op_namespace(backend):
    """torch.ops.<namespace> whose ops run on `backend`."""
    if backend == CUDA_EMULATED:
        return cuda_emulated.load()
    return torch.ops.vid2vid_fast_triton if backend == "triton" else torch.ops.vid2vid_fast


# The backends whose autograd and autocast are the extension's C++ (csrc/autograd.cpp, csrc/autocast.cpp).
CPP_BACKENDS = [p for p in compiled_backend_params() if p.values[0] in ("cpu", CUDA_EMULATED, "cuda")]


@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
def test_schemas_are_the_op_specs(op, backend):
    """Every backend's ops have the schemas ops/spec.py describes (the C++ ones are written in csrc/ops.cpp)."""
    spec = SPECS[op]
    namespace = op_namespace(backend)
    for name, expected in ((op, spec.schema()), (f"{op}_backward", spec.backward_schema())):
        schema = str(getattr(namespace, name).default._schema)
        assert schema.split("::", 1)[1] == expected


@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
@pytest.mark.parametrize("sampling", [Sampling("zeros"), Sampling("reflection", "nearest", False)], ids=str)
def test_opcheck(op, backend, dtype, layout, sampling):
    make_inputs = OPS[op][0]
    torch.manual_seed(1)
    inputs = make_inputs((2, 3, 5, 7), dtype, device_of(backend), layout, sampling)
    inputs = [t.requires_grad_(True) for t in inputs]
    namespace = op_namespace(backend)
    forward = getattr(namespace, op).default
    options = sampling.op_args()
    torch.library.opcheck(forward, (*inputs, *options))
    grad_out = torch.randn_like(forward(*inputs, *options))
    backward = getattr(namespace, f"{op}_backward").default
    mask = [True] * len(inputs)
    detached = [t.detach() for t in inputs]
    torch.library.opcheck(backward, (grad_out, *detached, *options, mask))
    torch.library.opcheck(backward, (grad_out, *detached, *options, [False] + mask[1:]))


def test_compile_fullgraph_matches_eager():
    check_compile_matches_eager(CompositeStep(), composite_inputs())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_runs_in_autocast_dtype(dtype):
    check_autocast(CompositeStep(), composite_inputs(), dtype)


def test_meta_tensors_give_shapes():
    img = torch.empty(2, 3, 8, 9, device="meta")
    flow = make_flow(2, 8, 9).to("meta")
    assert torch.ops.vid2vid_fast.flow_warp(img, flow, "border", "bilinear", True).shape == img.shape
    assert torch.ops.vid2vid_fast.masked_warp_l1(img, flow, img, img[:, :1], "border", "bilinear", True).shape == ()


@pytest.mark.parametrize("backend", CPP_BACKENDS)
@pytest.mark.parametrize("op", OPS)
def test_double_backward_raises_a_clear_error(op, backend):
    make_inputs, fn, _ = OPS[op]
    torch.manual_seed(2)
    inputs = [t.requires_grad_(True) for t in make_inputs((1, 2, 4, 5), torch.float64, device_of(backend), "contiguous")]
    out = fn(*inputs, "border", backend=backend)
    grads = torch.autograd.grad(out.sum(), inputs, create_graph=True)  # a first derivative is fine
    with pytest.raises(RuntimeError, match=f"double backward of vid2vid_fast[a-z_]*::{op}_backward is not supported"):
        sum(g.sum() for g in grads).backward()


@pytest.mark.parametrize("backend", CPP_BACKENDS)
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_direct_op_calls_under_autocast_run_in_the_autocast_dtype(op, backend, dtype):
    """torch.ops.vid2vid_fast.* under torch.autocast behaves as the public functions: float32 inputs are cast
    down to the autocast dtype, float64 ones are left alone."""
    make_inputs = OPS[op][0]
    device = device_of(backend)
    torch.manual_seed(4)
    inputs = make_inputs((2, 3, 5, 7), torch.float32, device, "channels_last")
    forward = getattr(op_namespace(backend), op)
    expected = forward(*[t.to(dtype) for t in inputs], "zeros", "bilinear", True)
    with torch.autocast(device, dtype=dtype):
        out = forward(*inputs, "zeros", "bilinear", True)
        public = OPS[op][1](*inputs, "zeros", backend=backend)
        wide = forward(*[t.double() for t in inputs], "zeros", "bilinear", True)
    assert out.dtype == public.dtype == dtype and torch.equal(out, expected)
    assert wide.dtype == torch.float64
