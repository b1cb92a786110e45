"""Bad input raises a clear error that names the argument and what was expected, on every backend."""

import cuda_emulated
import pytest
import torch

import vid2vid_fast as v2v
from cases import CUDA_EMULATED, COMPILER_FOUND, device_of, public_backend_params


def good(device, dtype=torch.float32):
    return {
        "img": torch.rand(2, 3, 5, 6, dtype=dtype, device=device),
        "flow": torch.rand(2, 2, 5, 6, dtype=dtype, device=device),
        "weight": torch.rand(2, 1, 5, 6, dtype=dtype, device=device),
    }


def call(op, backend, img=None, flow=None, other=None, weight=None, padding_mode="border"):
    t = good(device_of(backend))
    img = t["img"] if img is None else img
    flow = t["flow"] if flow is None else flow
    other = t["img"] if other is None else other
    weight = t["weight"] if weight is None else weight
    if op == "flow_warp":
        return v2v.flow_warp(img, flow, padding_mode, backend=backend)
    if op == "warp_blend":
        return v2v.warp_blend(img, flow, other, weight, padding_mode, backend=backend)
    return v2v.masked_warp_l1(img, flow, other, weight, padding_mode, backend=backend)


IMG_NAME = {"flow_warp": "img", "warp_blend": "prev", "masked_warp_l1": "src"}
OTHER_NAME = {"warp_blend": "raw", "masked_warp_l1": "target"}
WEIGHT_NAME = {"warp_blend": "weight", "masked_warp_l1": "mask"}
OPS = list(IMG_NAME)


@pytest.mark.parametrize("backend", public_backend_params())
@pytest.mark.parametrize("op", OPS)
def test_image_and_flow_errors(op, backend):
    dev = device_of(backend)
    name = IMG_NAME[op]
    cases = [
        (dict(img=torch.rand(3, 5, 6, device=dev)), ValueError, f"{name} must be a 4-d tensor"),
        (dict(img=torch.ones(2, 3, 5, 6, dtype=torch.int64, device=dev)), TypeError, f"{name} must be a floating"),
        (dict(img=[[1.0]]), TypeError, f"{name} must be a torch.Tensor"),
        (dict(flow=torch.rand(2, 3, 5, 6, device=dev)), ValueError, r"flow must have 2 channels"),
        (dict(flow=torch.rand(3, 2, 5, 6, device=dev)), ValueError, "the batch sizes must be equal, or 1 to broadcast"),
        (dict(flow=torch.rand(2, 2, 5, 7, device=dev)), ValueError, r"flow must have shape \(2, 2, 5, 6\)"),
        (dict(flow=torch.rand(2, 2, 5, device=dev)), ValueError, "flow must be a 4-d tensor"),
        (dict(flow=torch.ones(2, 2, 5, 6, dtype=torch.int32, device=dev)), TypeError, "flow must be a floating"),
        (dict(flow=torch.rand(2, 2, 5, 6, dtype=torch.float64, device=dev)), TypeError, "flow has dtype"),
        (dict(flow=torch.rand(2, 2, 5, 6, device="meta")), ValueError, f"flow is on meta but {name} is on"),
        (dict(padding_mode="circular"), ValueError, "padding_mode must be one of"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            call(op, backend, **kwargs)


@pytest.mark.parametrize("backend", public_backend_params())
@pytest.mark.parametrize("op", ["warp_blend", "masked_warp_l1"])
def test_second_image_and_weight_errors(op, backend):
    dev = device_of(backend)
    other, weight = OTHER_NAME[op], WEIGHT_NAME[op]
    bad_weight_channels = 2  # neither 1 nor C
    cases = [
        (dict(other=torch.rand(2, 4, 5, 6, device=dev)), ValueError, rf"{other} must have shape \(2, 3, 5, 6\)"),
        (dict(other=torch.rand(2, 3, 5, 6, dtype=torch.float64, device=dev)), TypeError, f"{other} has dtype"),
        (dict(weight=torch.rand(2, bad_weight_channels, 5, 6, device=dev)), ValueError, f"{weight} must have shape"),
        (dict(weight=torch.rand(2, 1, 4, 6, device=dev)), ValueError, f"{weight} must have shape"),
        (dict(weight=torch.rand(2, 1, 5, 6, device="meta")), ValueError, f"{weight} is on meta"),
    ]
    if op == "warp_blend":
        cases.append((dict(weight=torch.rand(2, 3, 5, 6, device=dev)), ValueError, r"weight must have shape \(2, 1, 5, 6\)"))
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            call(op, backend, **kwargs)


def test_unknown_backend_and_wrong_device():
    t = good("cpu")
    with pytest.raises(ValueError, match="backend must be one of"):
        v2v.flow_warp(t["img"], t["flow"], backend="opencl")
    with pytest.raises(ValueError, match="backend='cuda' needs cuda tensors"):
        v2v.flow_warp(t["img"], t["flow"], backend="cuda")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        v2v.FlowWarp("reflect")


@pytest.mark.parametrize(
    "backend",
    [
        pytest.param("cpu", marks=pytest.mark.skipif("cpu" not in v2v.available_backends("cpu"),
                                                     reason="extension not built")),
        pytest.param(CUDA_EMULATED, marks=[pytest.mark.cuda_emulated,
                                           pytest.mark.skipif(not COMPILER_FOUND, reason="no C++ compiler")]),
    ],
)
def test_direct_op_calls_are_checked_in_cpp(backend):
    """Callers of torch.ops.vid2vid_fast.* skip the Python checks; the C++ ones (of the CPU and of the CUDA
    backend, emulated) stop a bad shape before it can read out of bounds."""
    t = good("cpu")
    ops = cuda_emulated.load() if backend == CUDA_EMULATED else torch.ops.vid2vid_fast
    with pytest.raises(RuntimeError, match="flow must be"):
        ops.flow_warp(t["img"], torch.rand(2, 2, 4, 6), "border")
    with pytest.raises(RuntimeError, match="padding_mode must be 'border' or 'zeros'"):
        ops.flow_warp(t["img"], t["flow"], "mirror")
    with pytest.raises(RuntimeError, match="raw must have shape"):
        ops.warp_blend(t["img"], t["flow"], torch.rand(2, 3, 5, 5), t["weight"], "border")
    with pytest.raises(RuntimeError, match="weight must have 1 channels"):
        ops.warp_blend(t["img"], t["flow"], t["img"], t["img"], "border")
    with pytest.raises(RuntimeError, match="grad_out must have shape"):
        ops.flow_warp_backward(torch.rand(2, 3, 5, 7), t["img"], t["flow"], "border", [True, True])
    with pytest.raises(RuntimeError, match="must be a scalar"):
        ops.masked_warp_l1_backward(t["img"], t["img"], t["flow"], t["img"], t["weight"], "border", [True] * 4)
