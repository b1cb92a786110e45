"""Every sampling option (padding_mode x mode x align_corners) on every backend against the float64 reference,
and the front-end's flow layouts and batch broadcast (README, "What the ops compute")."""

import pytest
import torch

import vid2vid_fast as v2v
from cases import (
    ALL_SAMPLINGS,
    OPS,
    Sampling,
    assert_close_to_reference,
    backend_params,
    check_op,
    compiled_backend_params,
    device_of,
    public_backend_params,
    run_with_grads,
)
from vid2vid_fast.ops.frontend import flow_as_bchw

SAMPLING_IDS = [str(s) for s in ALL_SAMPLINGS]
# An odd shape, and shapes with an axis of size 1 (the identity rule of align_corners=False).
SHAPES = [(2, 3, 9, 13), (1, 2, 1, 6), (1, 5, 7, 1)]


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_every_sampling_matches_reference(op, backend, sampling, shape):
    check_op(op, backend, shape, torch.float32, "contiguous", sampling, seed=sum(shape))
    check_op(op, backend, shape, torch.float64, "channels_last", sampling, seed=sum(shape) + 1)


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16], ids=str)
def test_every_sampling_in_low_precision(op, backend, sampling, dtype):
    check_op(op, backend, (2, 4, 11, 14), dtype, "strided", sampling, seed=5)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
def test_gradcheck_every_sampling(op, backend, sampling):
    make_inputs, fn, _ = OPS[op]
    torch.manual_seed(3)
    inputs = make_inputs((2, 3, 5, 6), torch.float64, device_of(backend), "contiguous", sampling)
    inputs = [t.requires_grad_(True) for t in inputs]
    nondet_tol = 1e-12 if backend in ("cuda", "cuda_emulated", "triton") else 0.0
    assert torch.autograd.gradcheck(
        lambda *xs: fn(*xs, sampling.padding_mode, mode=sampling.mode, align_corners=sampling.align_corners,
                       backend=backend),
        inputs, nondet_tol=nondet_tol)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("padding_mode", ["border", "zeros", "reflection"])
def test_nearest_sends_no_flow_gradient_and_picks_one_pixel(backend, padding_mode):
    """mode="nearest": the output is a copy of one input pixel (or 0 outside, with zeros), the flow gradient is 0,
    and the image gradient of a pixel is the sum of the upstream gradients of the outputs that copied it."""
    _, fn, _ = OPS["flow_warp"]
    torch.manual_seed(8)
    device = device_of(backend)
    inputs = OPS["flow_warp"][0]((1, 2, 6, 7), torch.float64, device, "contiguous",
                                 Sampling(padding_mode, "nearest"))
    out, (grad_img, grad_flow) = run_with_grads(fn, inputs, Sampling(padding_mode, "nearest"),
                                                backend=backend)
    img = inputs[0]
    values = set(img.flatten().tolist()) | {0.0}
    assert all(v in values for v in out.flatten().tolist())
    assert torch.count_nonzero(grad_flow) == 0
    assert grad_img.shape == img.shape


@pytest.mark.parametrize("backend", public_backend_params())
@pytest.mark.parametrize("op", OPS)
def test_bhwc_flow_equals_bchw(op, backend):
    """flow_layout="bhwc": a (B, H, W, 2) flow gives the (B, 2, H, W) flow's output, and its gradient comes back
    (B, H, W, 2)."""
    make_inputs, _, _ = OPS[op]
    public = getattr(v2v, op)
    torch.manual_seed(9)
    inputs = make_inputs((2, 3, 5, 7), torch.float64, device_of(backend), "contiguous")
    flow_bhwc = inputs[1].permute(0, 2, 3, 1).contiguous()
    expected, expected_grads = run_with_grads(lambda *xs, **kw: public(*xs, **kw), inputs, "zeros", backend=backend)
    bhwc_inputs = [inputs[0], flow_bhwc, *inputs[2:]]
    out, grads = run_with_grads(lambda *xs, **kw: public(*xs, flow_layout="bhwc", **kw), bhwc_inputs, "zeros",
                                backend=backend)
    assert_close_to_reference(out, expected, torch.float64, "output")
    assert grads[1].shape == flow_bhwc.shape
    assert_close_to_reference(grads[1], expected_grads[1].permute(0, 2, 3, 1), torch.float64, "flow gradient")
    for g, eg in zip(grads[:1] + grads[2:], expected_grads[:1] + expected_grads[2:]):
        assert_close_to_reference(g, eg, torch.float64, "gradient")


def test_bhwc_flow_is_read_in_place():
    flow = torch.rand(2, 5, 7, 2)
    view = flow_as_bchw(flow, "bhwc")
    assert view.shape == (2, 2, 5, 7) and view.data_ptr() == flow.data_ptr()


@pytest.mark.parametrize("backend", public_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("broadcast", [0, 1], ids=["image_batch_1", "flow_batch_1"])
def test_batch_one_broadcasts(op, backend, broadcast):
    """An input of batch 1 (the sampled image, or the flow) broadcasts over the batch; its gradient is the sum of
    the gradients its copies would get."""
    make_inputs, _, _ = OPS[op]
    public = getattr(v2v, op)
    torch.manual_seed(10)
    inputs = make_inputs((3, 2, 6, 5), torch.float64, device_of(backend), "contiguous")
    inputs[broadcast] = inputs[broadcast][:1].clone()
    repeated = [t.expand(3, -1, -1, -1).clone() if i == broadcast else t for i, t in enumerate(inputs)]
    out, grads = run_with_grads(public, inputs, "border", backend=backend)
    expected, expected_grads = run_with_grads(public, repeated, "border", backend=backend)
    assert_close_to_reference(out, expected, torch.float64, "output")
    assert grads[broadcast].shape[0] == 1
    assert_close_to_reference(grads[broadcast], expected_grads[broadcast].sum(0, keepdim=True), torch.float64,
                              "gradient of the broadcast input")


@pytest.mark.parametrize("backend", public_backend_params())
def test_option_errors(backend):
    device = device_of(backend)
    img, flow = torch.rand(2, 3, 5, 6, device=device), torch.rand(2, 2, 5, 6, device=device)
    cases = [
        (dict(mode="bicubic"), ValueError, "mode must be one of"),
        (dict(padding_mode="circular"), ValueError, "padding_mode must be one of"),
        (dict(align_corners="yes"), TypeError, "align_corners must be True or False"),
        (dict(flow_layout="nhwc"), ValueError, "flow_layout must be one of"),
    ]
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            v2v.flow_warp(img, flow, backend=backend, **kwargs)
    with pytest.raises(ValueError, match=r"flow with flow_layout='bhwc' must be \(B, H, W, 2\)"):
        v2v.flow_warp(img, flow, flow_layout="bhwc", backend=backend)
    with pytest.raises(ValueError, match="the batch sizes must be equal, or 1 to broadcast; got img 2, flow 3"):
        v2v.flow_warp(img, torch.rand(3, 2, 5, 6, device=device), backend=backend)
