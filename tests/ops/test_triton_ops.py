"""The Triton backend against the float64 reference, for every sampling option (padding_mode, mode,
align_corners) and the strides the public functions hand the ops (a flow read from (B, H, W, 2), a batch of 1
expanded), its torch.library registration and its deterministic backward. Runs on CUDA tensors where there is
a GPU; without one, test_triton_interpreter.py runs this file in a subprocess with TRITON_INTERPRET=1 (CPU
tensors; small sizes keep the interpreter fast)."""

import pytest
import torch
from cases import (
    ALL_SAMPLINGS,
    DEFAULT_SAMPLING,
    OPS,
    CompositeStep,
    Sampling,
    assert_close_to_reference,
    check_64bit_offsets,
    check_autocast,
    check_backward_leaves_inputs_unchanged,
    check_compile_matches_eager,
    check_hostile_flows,
    check_op,
    composite_inputs,
    hostile_flow,
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
SAMPLING_IDS = [str(s) for s in ALL_SAMPLINGS]
# A few samplings for the tests of what does not depend on the sampling (layouts, strides, the deterministic
# path): the default, and the two options that take the kernels' other paths (nearest's single corner,
# reflection's flow reduction, zeros' outside corners, align_corners=False's scale).
SOME_SAMPLINGS = [DEFAULT_SAMPLING, Sampling("reflection", "nearest", False), Sampling("zeros", "bilinear", False)]


def triton_op(op, batch=None):
    """torch.ops.vid2vid_fast_triton.<op> called directly, in the form run_with_grads calls a public function;
    with batch, every input is first expanded to that batch (a batch stride of 0)."""
    forward = getattr(torch.ops.vid2vid_fast_triton, op)

    def fn(*args, mode, align_corners):
        *tensors, padding_mode = args
        if batch is not None:
            tensors = [t.expand(batch, -1, -1, -1) for t in tensors]
        return forward(*tensors, padding_mode, mode, align_corners)

    return fn


def check_inputs(op, inputs, sampling, what):
    """The Triton op, called directly on `inputs`, against the float64 reference: the output and every
    gradient."""
    _, _, ref = OPS[op]
    dtype = inputs[0].dtype
    out, grads = run_with_grads(triton_op(op), inputs, sampling)
    ref_out, ref_grads = run_with_grads(ref, [t.to(torch.float64) for t in inputs], sampling, grad_dtype=dtype)
    assert_close_to_reference(out, ref_out, dtype, f"{op} output, {what} ({sampling})")
    for name, g, rg, x in zip(GRAD_NAMES, grads, ref_grads, inputs):
        assert g.shape == x.shape and g.dtype == dtype, name
        assert_close_to_reference(g, rg, dtype, f"{op} gradient of {name}, {what} ({sampling})")
    return grads


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(op, shape, dtype, padding_mode):
    """The atomic (default) backward; sizes of 1 along H and W."""
    check_op(op, "triton", shape, dtype, "contiguous", padding_mode, seed=sum(shape))


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
@pytest.mark.parametrize("shape", [(2, 3, 5, 7), (1, 2, 1, 6), (1, 3, 5, 1)], ids=lambda s: "x".join(map(str, s)))
def test_every_sampling_matches_reference(op, sampling, shape):
    """Every (padding_mode, mode, align_corners), forward and every gradient, on sizes of 1 too (the identity
    rule of align_corners=False, reflection into one pixel); deterministic mode (poisoned allocations)."""
    check_op(op, "triton", shape, torch.float32, "contiguous", sampling, seed=sum(shape))
    check_op(op, "triton", shape, torch.float64, "channels_last", sampling, seed=sum(shape) + 1)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
def test_every_sampling_atomic_backward_and_low_precision(op, sampling):
    check_op(op, "triton", (2, 3, 6, 5), torch.float32, "strided", sampling, seed=2)
    check_op(op, "triton", (2, 3, 6, 5), torch.bfloat16, "channels_last", sampling, seed=3)


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last", "strided"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
@pytest.mark.parametrize("padding_mode", ["border", "zeros"])
def test_deterministic_mode_matches_reference(op, layout, dtype, padding_mode):
    check_op(op, "triton", (2, 3, 6, 7), dtype, layout, padding_mode, seed=5)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("layout", ["channels_last", "strided"])
@pytest.mark.parametrize("shape", [(2, 3, 6, 7), (1, 17, 3, 4)], ids=lambda s: "x".join(map(str, s)))
def test_layouts_and_channel_tiles(op, layout, shape):
    """Any strides; 17 channels take two channel tiles, the second one partial."""
    check_op(op, "triton", shape, torch.float32, layout, "border", seed=7)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", SOME_SAMPLINGS, ids=str)
@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_flow_read_in_place_from_bhwc(op, sampling, deterministic, request):
    """The flow as the public functions pass a flow_layout="bhwc" flow: a (B, 2, H, W) view of a (B, H, W, 2)
    tensor, strides (H*W*2, 1, W*2, 2). Its gradient is written in that layout."""
    if deterministic:
        request.getfixturevalue("poisoned_allocations")
    make_inputs = OPS[op][0]
    torch.manual_seed(31)
    inputs = make_inputs((2, 3, 5, 6), torch.float32, DEVICE, "channels_last", sampling)
    inputs[1] = inputs[1].permute(0, 2, 3, 1).contiguous().permute(0, 3, 1, 2)
    assert inputs[1].stride() == (5 * 6 * 2, 1, 6 * 2, 2)
    grads = check_inputs(op, inputs, sampling, "a flow read from (B, H, W, 2)")
    assert grads[1].stride() == inputs[1].stride()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", SOME_SAMPLINGS, ids=str)
@pytest.mark.parametrize("expanded", [(0,), (1,), (0, 1, 2, 3)], ids=["image", "flow", "all"])
@pytest.mark.parametrize("deterministic", [False, True], ids=["atomic", "deterministic"])
def test_batch_expanded_inputs(op, sampling, expanded, deterministic, request):
    """Inputs of batch 1 expanded over the batch (batch stride 0), as the public functions broadcast them: read
    in place, their gradients written to fresh buffers (never into the expanded input) and summed over the
    batch by autograd; against the reference of the repeated inputs."""
    if deterministic:
        request.getfixturevalue("poisoned_allocations")
    make_inputs = OPS[op][0]
    torch.manual_seed(37)
    batch = 3
    inputs = make_inputs((batch, 2, 4, 6), torch.float32, DEVICE, "contiguous", sampling)
    ones = [t[:1].clone() if i in expanded else t for i, t in enumerate(inputs)]
    repeated = [t.expand(batch, -1, -1, -1) for t in ones]
    out, grads = run_with_grads(triton_op(op, batch), ones, sampling)
    ref_out, ref_grads = run_with_grads(OPS[op][2], [t.double().contiguous() for t in repeated], sampling)
    assert_close_to_reference(out, ref_out, torch.float32, "output")
    for i, (g, rg) in enumerate(zip(grads, ref_grads)):
        expected = rg.sum(0, keepdim=True) if i in expanded else rg
        assert_close_to_reference(g, expected, torch.float32, f"gradient of {GRAD_NAMES[i]}")


@pytest.mark.parametrize("padding_mode", ["border", "zeros", "reflection"])
@pytest.mark.parametrize("align_corners, size", [(True, 6), (False, 2), (False, 8)],
                         ids=["corners", "centers2", "centers8"])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
def test_nearest_rounds_ties_to_even(padding_mode, align_corners, size, dtype):
    """Sampling coordinates exactly halfway between two pixels go to the even one (grid_sample's nearbyint),
    and are computed exactly: u = x + dx with half-integer flows for align_corners=True; with
    align_corners=False, u = (x + dx) * size / (size - 1) - 0.5 = n - 0.5 at the positions n * (size - 1) / size,
    exact for a size that is a power of 2 (pos * (size / (size - 1)), rounded twice, misses some)."""
    torch.manual_seed(41)
    sampling = Sampling(padding_mode, "nearest", align_corners)
    shape = (2, 2, size, size)
    steps = torch.randint(-3, size + 4, (2, 2, size, size)).double()
    base = torch.arange(size, dtype=torch.float64)
    base = torch.stack((base.view(1, size).expand(size, size), base.view(size, 1).expand(size, size)))
    flow = (steps - size // 2 + 0.5) if align_corners else steps * (size - 1) / size - base
    u = base + flow if align_corners else (base + flow) * size / (size - 1) - 0.5
    assert (u - u.floor() == 0.5).all()
    inputs = [torch.randn(shape, dtype=dtype).to(DEVICE), flow.to(dtype).to(DEVICE)]
    assert torch.equal(inputs[1].double().cpu(), flow)
    check_inputs("flow_warp", inputs, sampling, "positions halfway between pixels")


@pytest.mark.parametrize("padding_mode", ["border", "zeros", "reflection"])
def test_masked_warp_l1_per_channel_mask(padding_mode):
    make_inputs = OPS["masked_warp_l1"][0]
    torch.manual_seed(3)
    sampling = Sampling(padding_mode)
    inputs = make_inputs((2, 3, 4, 5), torch.float32, DEVICE, "channels_last", sampling, mask_channels=3)
    check_inputs("masked_warp_l1", inputs, sampling, "a per-channel mask")


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_hostile_flows(op, sampling, dtype):
    """NaN, ±Inf and huge flows: test_flow_warp's checks (never out of bounds; NaN, and ±Inf under reflection,
    make a NaN pixel with no gradient; the reference where both compute the position exactly)."""
    check_hostile_flows(op, "triton", sampling, dtype)


@pytest.mark.parametrize("sampling", [s for s in ALL_SAMPLINGS if s.mode == "nearest" or not s.align_corners],
                         ids=str)
def test_hostile_flows_sample_inside_the_image(sampling):
    """Where huge positions round differently in float32 and float64 (so no reference comparison), what holds
    whatever the rounding: every valid output lies within the image's range (or is 0), and without zeros
    padding the image gradient adds up to the upstream gradient of the valid pixels (a sample's weights add up
    to 1)."""
    make_inputs = OPS["flow_warp"][0]
    torch.manual_seed(19)
    inputs = make_inputs((2, 3, 6, 7), torch.float32, DEVICE, "contiguous", sampling)
    inputs[1] = hostile_flow(6, 7, torch.float32, DEVICE)
    out, (grad_img, _) = run_with_grads(triton_op("flow_warp"), inputs, sampling)
    flow = inputs[1]
    invalid = flow.isnan() | (flow.isinf() & (sampling.padding_mode == "reflection"))
    invalid = invalid.any(dim=1, keepdim=True).expand_as(out)
    img = inputs[0]
    lo = img.amin(dim=(0, 2, 3), keepdim=True).clamp(max=0)
    hi = img.amax(dim=(0, 2, 3), keepdim=True).clamp(min=0)
    assert (((out >= lo) & (out <= hi)) | invalid).all() and out[invalid].isnan().all()
    if sampling.padding_mode != "zeros":
        # The upstream gradient run_with_grads sends.
        upstream = torch.randn(out.shape, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        upstream = upstream.float().double().masked_fill(invalid.cpu(), 0)
        assert (grad_img.double().sum().cpu() - upstream.sum()).abs() <= 1e-5 * upstream.abs().sum()


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
@pytest.mark.parametrize("sampling", ALL_SAMPLINGS, ids=SAMPLING_IDS)
def test_gradcheck(op, sampling):
    """fast_mode (random projections of the Jacobian): the interpreter pays per launch, and the full
    Jacobian of even a small input takes hundreds of them."""
    make_inputs = OPS[op][0]
    torch.manual_seed(3)
    inputs = [t.requires_grad_(True) for t in make_inputs((2, 2, 3, 4), torch.float64, DEVICE, "contiguous", sampling)]
    fn = triton_op(op)
    assert torch.autograd.gradcheck(
        lambda *xs: fn(*xs, sampling.padding_mode, mode=sampling.mode, align_corners=sampling.align_corners), inputs,
        fast_mode=True, nondet_tol=1e-12)


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
@pytest.mark.parametrize("sampling", [Sampling("zeros"), Sampling("reflection", "nearest", False)], ids=str)
def test_opcheck(op, layout, sampling):
    make_inputs = OPS[op][0]
    torch.manual_seed(1)
    inputs = [t.requires_grad_(True) for t in make_inputs((2, 3, 4, 5), torch.float32, DEVICE, layout, sampling)]
    options = sampling.op_args()
    forward = getattr(torch.ops.vid2vid_fast_triton, op).default
    torch.library.opcheck(forward, (*inputs, *options))
    grad_out = torch.randn_like(forward(*inputs, *options))
    backward = getattr(torch.ops.vid2vid_fast_triton, f"{op}_backward").default
    mask = [True] * len(inputs)
    detached = [t.detach() for t in inputs]
    torch.library.opcheck(backward, (grad_out, *detached, *options, mask))
    torch.library.opcheck(backward, (grad_out, *detached, *options, [False] + mask[1:]))


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
    options = ("reflection", "nearest", False)
    assert torch.ops.vid2vid_fast_triton.flow_warp(img, flow, *options).shape == img.shape
    assert torch.ops.vid2vid_fast_triton.masked_warp_l1(img, flow, img, img[:, :1], *options).shape == ()


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("deterministic", [False, True])
def test_64bit_offsets_path(op, deterministic, monkeypatch, request):
    """The 64-bit offset variants of every kernel, on small tensors: the launcher is told that int32 offsets
    never suffice (real sizes past 2^31 elements: test_64bit_offsets, on a GPU)."""
    from vid2vid_fast.ops.triton import launch

    monkeypatch.setattr(launch, "_INT32_LIMIT", 0)
    if deterministic:
        request.getfixturevalue("poisoned_allocations")
    check_op(op, "triton", (2, 3, 4, 5), torch.float32, "channels_last", Sampling("reflection", "bilinear", False),
             seed=29)


def test_direct_op_calls_are_checked():
    """torch.ops.vid2vid_fast_triton.* checks its arguments too: a wrong shape must never reach a kernel."""
    ops = torch.ops.vid2vid_fast_triton
    options = ("border", "bilinear", True)
    img, flow = torch.rand(1, 3, 4, 5, device=DEVICE), torch.rand(1, 2, 4, 6, device=DEVICE)
    with pytest.raises(ValueError, match="flow must have shape"):
        ops.flow_warp(img, flow, *options)
    flow = torch.rand(1, 2, 4, 5, device=DEVICE)
    with pytest.raises(ValueError, match="weight must have shape"):
        ops.warp_blend(img, flow, img, img, *options)
    with pytest.raises(ValueError, match="flow has batch 1 but img has 2: the ops take equal batches"):
        ops.flow_warp(img.expand(2, -1, -1, -1), flow, *options)  # a batch of 1 is the public functions' to expand
    with pytest.raises(ValueError, match="grad_out of masked_warp_l1 must be a scalar"):
        ops.masked_warp_l1_backward(img, img, flow, img, img[:, :1], *options, [True] * 4)
    with pytest.raises(ValueError, match="grad_out must have shape"):
        ops.flow_warp_backward(img[:, :2], img, flow, *options, [True, True])
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        ops.flow_warp(img, flow, "reflect", "bilinear", True)
    with pytest.raises(ValueError, match="mode must be one of"):
        ops.warp_blend_backward(img, img, flow, img, img[:, :1], "zeros", "bicubic", True, [True] * 4)
    with pytest.raises(RuntimeError):  # the schema's bool
        ops.masked_warp_l1(img, flow, img, img, "zeros", "nearest", "yes")


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
