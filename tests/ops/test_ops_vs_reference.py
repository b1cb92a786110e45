"""Every op on every backend against the float64 reference: values and all gradients, every dtype,
odd shapes, sizes of 1, many channels, every memory layout (DESIGN.md §5)."""

import pytest
import torch
from cases import (
    LAYOUTS,
    OPS,
    PADDING_MODES,
    assert_close_to_reference,
    backend_params,
    check_backward_leaves_inputs_unchanged,
    check_op,
    compiled_backend_params,
    device_of,
    run_with_grads,
)

SHAPES = [
    (2, 3, 17, 23),
    (1, 1, 1, 9),
    (1, 3, 7, 1),
    (1, 2, 1, 1),
    (3, 5, 9, 13),
    (1, 64, 6, 10),
    (1, 256, 3, 5),
]
DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.float64]


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_matches_reference(op, backend, shape, dtype, padding_mode):
    check_op(op, backend, shape, dtype, "contiguous", padding_mode, seed=sum(shape))


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_matches_reference_on_long_rows(op, backend, padding_mode):
    """Rows of several CPU tiles (128 pixels) that end in a partial vector. Near x = 300 a float32 position
    carries up to 3e-5 px of rounding (its ulp), times image slopes of a few units: hence 1e-4 rather than
    the 1e-5 of the small shapes (the float32 grid_sample chain is off by about twice as much as the kernels).
    float64 keeps its tolerance."""
    check_op(op, backend, (1, 3, 4, 300), torch.float32, "contiguous", padding_mode, seed=1, tolerance=1e-4)
    check_op(op, backend, (1, 3, 4, 300), torch.float64, "contiguous", padding_mode, seed=2)


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape", [(1, 5, 40, 300), (2, 5, 40, 300), (3, 5, 40, 300)], ids=lambda s: "x".join(map(str, s)))
def test_matches_reference_on_two_threads(op, backend, shape):
    """Images large enough that the CPU backward splits its rows between two threads: by whole batch
    elements (batch 2), or evenly with a private image-gradient buffer for the second thread (batches 1
    and 3). Five channels: one full channel block and one padded block on the float32 path."""
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        check_op(op, backend, shape, torch.float32, "contiguous", "zeros", seed=3, tolerance=1e-4)
        check_op(op, backend, shape, torch.float64, "channels_last", "border", seed=4)
    finally:
        torch.set_num_threads(threads)


@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
@pytest.mark.parametrize("shape", SHAPES[:4], ids=lambda s: "x".join(map(str, s)))
def test_reference_in_float32(op, shape, padding_mode):
    """The reference itself in float32 (the benchmarks' baseline) against its float64 run."""
    check_op(op, "reference", shape, torch.float32, "contiguous", padding_mode, seed=sum(shape))


@pytest.mark.usefixtures("poisoned_allocations")
@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("layout", LAYOUTS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_layouts(op, backend, layout, dtype):
    check_op(op, backend, (2, 4, 11, 14), dtype, layout, "border", seed=7)


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("padding_mode", PADDING_MODES)
def test_gradcheck(op, backend, padding_mode):
    make_inputs, fn, _ = OPS[op]
    torch.manual_seed(3)
    inputs = [t.requires_grad_(True) for t in make_inputs((2, 3, 6, 7), torch.float64, device_of(backend), "contiguous")]
    # The GPU backends' image gradients add with float atomics, in any order: two backward runs may differ by
    # rounding (the emulation of the CUDA kernels, with its shuffled thread order, showed it).
    nondet_tol = 1e-12 if backend in ("cuda", "cuda_emulated", "triton") else 0.0
    assert torch.autograd.gradcheck(lambda *xs: fn(*xs, padding_mode, backend=backend), inputs, nondet_tol=nondet_tol)


@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
def test_outputs_keep_input_layout(op, backend):
    """channels_last in, channels_last out, with no hidden conversion (the reference, grid_sample, does not
    promise this)."""
    make_inputs, fn, _ = OPS[op]
    inputs = make_inputs((2, 3, 8, 9), torch.float32, device_of(backend), "channels_last")
    out, grads = run_with_grads(fn, inputs, "border", backend=backend)
    if op != "masked_warp_l1":
        assert out.is_contiguous(memory_format=torch.channels_last)
    for g in grads:
        assert g.is_contiguous(memory_format=torch.channels_last) or g.shape[1] == 1


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("shape", [(0, 3, 4, 5), (2, 0, 4, 5), (2, 3, 0, 5), (2, 3, 4, 0)])
def test_empty(op, backend, shape):
    make_inputs, fn, _ = OPS[op]
    inputs = make_inputs(shape, torch.float32, device_of(backend), "contiguous")
    out, grads = run_with_grads(fn, inputs, "border", backend=backend)
    if op == "masked_warp_l1":
        assert out.isnan()  # the mean of no elements, as torch.mean
    else:
        assert out.shape == shape
    for g, x in zip(grads, inputs):
        assert g.shape == x.shape


@pytest.mark.parametrize("backend", backend_params())
def test_masked_warp_l1_per_channel_mask(backend):
    make_inputs, fn, ref = OPS["masked_warp_l1"]
    torch.manual_seed(5)
    inputs = make_inputs((2, 3, 9, 10), torch.float32, device_of(backend), "contiguous", mask_channels=3)
    out, grads = run_with_grads(fn, inputs, "zeros", backend=backend)
    ref_out, ref_grads = run_with_grads(ref, [t.double() for t in inputs], "zeros")
    assert_close_to_reference(out, ref_out, torch.float32, "loss")
    for g, rg in zip(grads, ref_grads):
        assert_close_to_reference(g, rg, torch.float32, "gradient")


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("op", OPS)
def test_only_requested_gradients(op, backend):
    """Each input can be the only one that needs a gradient; the others get none."""
    make_inputs, fn, ref = OPS[op]
    torch.manual_seed(11)
    inputs = make_inputs((1, 3, 8, 8), torch.float64, device_of(backend), "contiguous")
    for i in range(len(inputs)):
        leaves = [t.clone().requires_grad_(j == i) for j, t in enumerate(inputs)]
        fn(*leaves, "border", backend=backend).sum().backward()
        ref_leaves = [t.clone().requires_grad_(j == i) for j, t in enumerate(inputs)]
        ref(*ref_leaves, "border").sum().backward()
        assert all(leaves[j].grad is None for j in range(len(inputs)) if j != i)
        assert_close_to_reference(leaves[i].grad, ref_leaves[i].grad, torch.float64, f"gradient {i}")


@pytest.mark.parametrize("backend", backend_params())
@pytest.mark.parametrize("op", OPS)
def test_backward_leaves_inputs_unchanged(op, backend):
    check_backward_leaves_inputs_unchanged(op, backend, device_of(backend))
