"""The Triton backend against the float64 reference, its torch.library registration and its deterministic
backward. Runs on CUDA tensors where there is a GPU; without one, test_triton_interpreter.py runs this file
in a subprocess with TRITON_INTERPRET=1 (CPU tensors; small sizes keep the interpreter fast)."""

import pytest
import torch
from cases import (
    OPS,
    PADDING_MODES,
    CompositeStep,
    assert_close_to_reference,
    check_64bit_offsets,
    check_backward_leaves_inputs_unchanged,
    check_autocast,
    check_compile_matches_eager,
    composite_inputs,
    make_flow,
    run_with_grads,
)

from vid2vid_fast.ops.backends import TRITON_IMPORTABLE, TRITON_INTERPRETED

if TRITON_INTERPRETED:
    DEVICE = "cpu"
elif torch.cuda.is_available():
    DEVICE = "cuda"
else:
    DEVICE = None

pytestmark = pytest.mark.skipif(
    not TRITON_IMPORTABLE or DEVICE is None,
    reason="needs triton, and a GPU or TRITON_INTERPRET=1 (test_triton_interpreter.py runs this file so)",
)

SHAPES = [(2, 3, 5, 7), (1, 1, 1, 6), (1, 3, 5, 1), (1, 2, 1, 1)]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]
GRAD_NAMES = ["first input", "flow", "third input", "fourth input"]


def check_op(op, shape, dtype, layout, padding_mode, seed, mask_channels=None):
    make_inputs, fn, ref = OPS[op]
    torch.manual_seed(seed)
    extra = {} if mask_channels is None else {"mask_channels": mask_channels}
    inputs = make_inputs(shape, dtype, DEVICE, layout, **extra)
    out, grads = run_with_grads(fn, inputs, padding_mode, backend="triton")
    ref_out, ref_grads = run_with_grads(ref, [t.to(torch.float64) for t in inputs], padding_mode, grad_dtype=dtype)
    assert out.dtype == dtype and out.device.type == DEVICE
    assert_close_to_reference(out, ref_out, dtype, f"{op} output")
    for name, g, rg, x in zip(GRAD_NAMES, grads, ref_grads, inputs):
        assert g is not None and g.shape == x.shape and g.dtype == dtype, name
        assert_close_to_reference(g, rg, dtype, f"{op} gradient of {name}")
    return out, grads


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(op, shape, dtype, padding_mode):
    """The atomic (default) backward; sizes of 1 along H and W."""
    check_op(op, shape, dtype, "contiguous", padding_mode, seed=sum(shape))


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_deterministic_mode_matches_reference(op, layout, dtype, padding_mode):
    check_op(op, (2, 3, 6, 7), dtype, layout, padding_mode, seed=5)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("layout", ["channels_last", "strided"])
@pytest.mark.parametrize("shape", [(2, 3, 6, 7), (1, 17, 3, 4)], ids=lambda s: "x".join(map(str, s)))
def test_layouts_and_channel_tiles(op, layout, shape):
    """Any strides; 17 channels take two channel tiles, the second one partial."""
    check_op(op, shape, torch.float32, layout, "border", seed=7)


@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_masked_warp_l1_per_channel_mask(padding_mode):
    check_op("masked_warp_l1", (2, 3, 4, 5), torch.float32, "channels_last", padding_mode, seed=3, mask_channels=3)


def hostile_flow(shape, dtype):
    b, _, h, w = shape
    flow = torch.randn(b, 2, h, w, dtype=torch.float64) * 2
    specials = torch.tensor([float("nan"), float("inf"), -float("inf"), 1e30, -1e30, 6e4, -6e4], dtype=torch.float64)
    pick = torch.rand(flow.shape) < 0.3
    flow = torch.where(pick, specials[torch.randint(0, len(specials), flow.shape)], flow)
    return flow.to(dtype).to(DEVICE)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_hostile_flows(op, padding_mode, dtype):
    """NaN, ±Inf and huge flows: never out of bounds, and the documented result: NaN flow -> NaN pixel
    with no image or flow gradient, ±Inf / huge -> a far sample."""
    make_inputs, fn, ref = OPS[op]
    torch.manual_seed(17)
    inputs = make_inputs((2, 3, 6, 7), dtype, DEVICE, "contiguous")
    inputs[1] = hostile_flow((2, 3, 6, 7), dtype)
    out, grads = run_with_grads(fn, inputs, padding_mode, backend="triton")
    ref_out, ref_grads = run_with_grads(ref, [t.double() for t in inputs], padding_mode, grad_dtype=dtype)
    if op == "masked_warp_l1":
        assert out.isnan()
    else:
        nan_pixels = inputs[1].isnan().any(dim=1, keepdim=True).expand_as(out)
        assert nan_pixels.any() and out[nan_pixels].isnan().all() and not out[~nan_pixels].isnan().any()
        assert_close_to_reference(out, ref_out, dtype, "output")
    for name, g, rg in zip(GRAD_NAMES, grads, ref_grads):
        assert_close_to_reference(g, rg, dtype, f"gradient of {name}")


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0)])
def test_empty(op, shape):
    make_inputs, fn, _ = OPS[op]
    inputs = make_inputs(shape, torch.float32, DEVICE, "contiguous")
    out, grads = run_with_grads(fn, inputs, "border", backend="triton")
    if op == "masked_warp_l1":
        assert out.isnan()  # the mean of no elements, as torch.mean
    else:
        assert out.shape == shape
    for g, x in zip(grads, inputs):
        assert g.shape == x.shape and not g.isnan().any()


@pytest.mark.parametrize("op", OPS)
def test_only_requested_gradients(op):
    make_inputs, fn, ref = OPS[op]
    torch.manual_seed(11)
    inputs = make_inputs((1, 3, 5, 6), torch.float64, DEVICE, "contiguous")
    for i in range(len(inputs)):
        leaves = [t.clone().requires_grad_(j == i) for j, t in enumerate(inputs)]
        fn(*leaves, "border", backend="triton").sum().backward()
        ref_leaves = [t.clone().requires_grad_(j == i) for j, t in enumerate(inputs)]
        ref(*ref_leaves, "border").sum().backward()
        assert all(leaves[j].grad is None for j in range(len(inputs)) if j != i)
        assert_close_to_reference(leaves[i].grad, ref_leaves[i].grad, torch.float64, f"gradient {i}")


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_gradcheck(op, padding_mode):
    """fast_mode (random projections of the Jacobian): the interpreter pays per launch, and the full
    Jacobian of even a small input takes hundreds of them."""
    make_inputs, fn, _ = OPS[op]
    torch.manual_seed(3)
    inputs = [t.requires_grad_(True) for t in make_inputs((2, 2, 3, 4), torch.float64, DEVICE, "contiguous")]
    assert torch.autograd.gradcheck(lambda *xs: fn(*xs, padding_mode, backend="triton"), inputs, fast_mode=True)


@pytest.mark.parametrize("op", OPS)
def test_deterministic_backward_is_bit_identical(op, poisoned_allocations):
    """Many outputs sample the same pixels (a flow that squeezes the image into a corner), so the order of
    the image-gradient sums matters; deterministic mode fixes it: runs are bit-identical."""
    make_inputs, fn, _ = OPS[op]
    torch.manual_seed(23)
    inputs = make_inputs((2, 5, 9, 11), torch.float32, DEVICE, "contiguous")
    inputs[1] = inputs[1] * 0.2 - 4.0
    first = run_with_grads(fn, inputs, "border", backend="triton")
    again = run_with_grads(fn, inputs, "border", backend="triton")
    assert torch.equal(first[0], again[0])
    assert all(torch.equal(a, b) for a, b in zip(first[1], again[1]))
    torch.use_deterministic_algorithms(False)
    atomic = run_with_grads(fn, inputs, "border", backend="triton")
    for a, b in zip(first[1], atomic[1]):
        assert_close_to_reference(a, b, torch.float32, "deterministic against atomic gradient")


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_opcheck(op, layout):
    make_inputs = OPS[op][0]
    torch.manual_seed(1)
    inputs = [t.requires_grad_(True) for t in make_inputs((2, 3, 4, 5), torch.float32, DEVICE, layout)]
    forward = getattr(torch.ops.vid2vid_fast_triton, op).default
    torch.library.opcheck(forward, (*inputs, "zeros"))
    grad_out = torch.randn_like(forward(*inputs, "zeros"))
    backward = getattr(torch.ops.vid2vid_fast_triton, f"{op}_backward").default
    mask = [True] * len(inputs)
    detached = [t.detach() for t in inputs]
    torch.library.opcheck(backward, (grad_out, *detached, "border", mask))
    torch.library.opcheck(backward, (grad_out, *detached, "border", [False] + mask[1:]))


def test_outputs_keep_channels_last():
    make_inputs, fn, _ = OPS["warp_blend"]
    inputs = make_inputs((2, 3, 4, 5), torch.float32, DEVICE, "channels_last")
    out, grads = run_with_grads(fn, inputs, "border", backend="triton")
    assert out.is_contiguous(memory_format=torch.channels_last)
    for g in grads:
        assert g.is_contiguous(memory_format=torch.channels_last) or g.shape[1] == 1


def test_compile_fullgraph_matches_eager():
    check_compile_matches_eager(CompositeStep("triton").to(DEVICE), composite_inputs(DEVICE, (6, 7)))


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_runs_in_autocast_dtype(dtype):
    check_autocast(CompositeStep("triton").to(DEVICE), composite_inputs(DEVICE, (6, 7)), dtype)


def test_meta_tensors_give_shapes():
    img = torch.empty(2, 3, 8, 9, device="meta")
    flow = make_flow(2, 8, 9).to("meta")
    assert torch.ops.vid2vid_fast_triton.flow_warp(img, flow, "border").shape == img.shape
    assert torch.ops.vid2vid_fast_triton.masked_warp_l1(img, flow, img, img[:, :1], "border").shape == ()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("deterministic", [False, True])
def test_64bit_offsets_path(op, deterministic, monkeypatch, request):
    """The 64-bit offset variants of every kernel, on small tensors: the launcher is told that int32 offsets
    never suffice (real sizes past 2^31 elements: test_64bit_offsets, on a GPU)."""
    from vid2vid_fast.ops.triton import launch

    monkeypatch.setattr(launch, "_INT32_LIMIT", 0)
    if deterministic:
        request.getfixturevalue("poisoned_allocations")
    check_op(op, (2, 3, 4, 5), torch.float32, "channels_last", "zeros", seed=29)


def test_direct_op_calls_are_checked():
    """torch.ops.vid2vid_fast_triton.* checks its arguments too: a wrong shape must never reach a kernel."""
    img, flow = torch.rand(1, 3, 4, 5, device=DEVICE), torch.rand(1, 2, 4, 6, device=DEVICE)
    with pytest.raises(ValueError, match="flow must have shape"):
        torch.ops.vid2vid_fast_triton.flow_warp(img, flow, "border")
    flow = torch.rand(1, 2, 4, 5, device=DEVICE)
    with pytest.raises(ValueError, match="weight must have shape"):
        torch.ops.vid2vid_fast_triton.warp_blend(img, flow, img, img, "border")
    with pytest.raises(ValueError, match="grad_out must have shape"):
        torch.ops.vid2vid_fast_triton.flow_warp_backward(img[:, :2], img, flow, "border", [True, True])
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        torch.ops.vid2vid_fast_triton.flow_warp(img, flow, "reflect")


@pytest.mark.slow
@pytest.mark.skipif(DEVICE != "cuda", reason="needs a GPU with about 24 GB free")
def test_64bit_offsets():
    check_64bit_offsets("triton")


@pytest.mark.parametrize("op", OPS)
def test_backward_leaves_inputs_unchanged(op):
    check_backward_leaves_inputs_unchanged(op, "triton", DEVICE, dtypes=(torch.float32,))


def test_double_backward_raises_a_clear_error():
    make_inputs, fn, _ = OPS["flow_warp"]
    inputs = [t.requires_grad_(True) for t in make_inputs((1, 2, 4, 5), torch.float32, DEVICE, "contiguous")]
    grads = torch.autograd.grad(fn(*inputs, "border", backend="triton").sum(), inputs, create_graph=True)
    with pytest.raises(RuntimeError, match="double backward of vid2vid_fast_triton::flow_warp_backward is not"):
        sum(g.sum() for g in grads).backward()
