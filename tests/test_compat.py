"""vid2vid_fast.compat against the formulas of the projects it replaces, written here from their definitions:
BasicSR's / mmagic's flow_warp (their grid and grid_sample), FlowNet2's Resample2d (its CUDA kernel's per-pixel
formulas, forward and backward) and vid2vid's / imaginaire's resample (their linspace grid and grid_sample)."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F

import vid2vid_fast as v2v
from vid2vid_fast import compat
from vid2vid_fast.ops.backends import available_backends

# The backends for CPU tensors (Triton's interpreter is too slow here; tests/ops covers it).
BACKENDS = [b for b in available_backends("cpu") if b != "triton"]
# (interp_mode, padding_mode, align_corners), in the order of flow_warp's arguments.
SAMPLINGS = list(itertools.product(("bilinear", "nearest"), ("zeros", "border", "reflection"), (True, False)))
SAMPLING_IDS = [f"{m}-{p}-{'corners' if a else 'centers'}" for m, p, a in SAMPLINGS]


def grads_of(fn, inputs, grad_seed=0):
    """fn(*inputs) and the gradients of sum(fn * g) for a fixed random g, on fresh leaves."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]
    out = fn(*leaves)
    g = torch.randn(out.shape, generator=torch.Generator().manual_seed(grad_seed), dtype=torch.float64)
    out.backward(g.to(out.dtype))
    return out.detach(), [leaf.grad for leaf in leaves]


def assert_same(actual, expected, atol=1e-12):
    out, grads = actual
    expected_out, expected_grads = expected
    torch.testing.assert_close(out, expected_out, rtol=0, atol=atol, equal_nan=True)
    for g, eg in zip(grads, expected_grads):
        torch.testing.assert_close(g, eg, rtol=0, atol=atol)


def random_flow(shape, scale=3.0):
    """A float64 flow of a few pixels: continuous, so no sample lands on a kink of the sampling."""
    return torch.randn(shape, dtype=torch.float64) * scale


# --- BasicSR / mmagic flow_warp -------------------------------------------------------------------------------

def basicsr_flow_warp(x, flow, interp_mode, padding_mode, align_corners):
    """BasicSR's definition: a pixel grid plus the (N, H, W, 2) flow, normalised by max(size - 1, 1)."""
    _, _, h, w = x.shape
    ys, xs = torch.meshgrid(torch.arange(h, dtype=x.dtype), torch.arange(w, dtype=x.dtype), indexing="ij")
    positions = torch.stack((xs, ys), dim=2) + flow
    grid = torch.stack((2.0 * positions[..., 0] / max(w - 1, 1) - 1.0,
                        2.0 * positions[..., 1] / max(h - 1, 1) - 1.0), dim=3)
    return F.grid_sample(x, grid, mode=interp_mode, padding_mode=padding_mode, align_corners=align_corners)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("sampling", SAMPLINGS, ids=SAMPLING_IDS)
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 2, 1, 6), (1, 2, 5, 1), (2, 1, 1, 1)],
                         ids=lambda s: "x".join(map(str, s)))
def test_flow_warp_is_basicsr_flow_warp(backend, sampling, shape):
    """Values and gradients, every option, axes of size 1 included (BasicSR's max(size - 1, 1) rule)."""
    torch.manual_seed(sum(shape))
    n, _, h, w = shape
    x = torch.randn(shape, dtype=torch.float64)
    flow = random_flow((n, h, w, 2))
    ours = grads_of(lambda a, f: compat.flow_warp(a, f, *sampling, backend=backend), [x, flow])
    assert_same(ours, grads_of(lambda a, f: basicsr_flow_warp(a, f, *sampling), [x, flow]))


def test_flow_warp_defaults_are_basicsr_defaults():
    """zeros padding, bilinear, align_corners=True, and mmagic's name for interp_mode."""
    torch.manual_seed(1)
    x, flow = torch.randn(2, 3, 6, 7, dtype=torch.float64), random_flow((2, 6, 7, 2))
    expected = basicsr_flow_warp(x, flow, "bilinear", "zeros", True)
    torch.testing.assert_close(compat.flow_warp(x, flow), expected, rtol=0, atol=1e-12)
    nearest = basicsr_flow_warp(x, flow, "nearest", "zeros", True)
    torch.testing.assert_close(compat.flow_warp(x, flow, interpolation="nearest"), nearest, rtol=0, atol=1e-12)


def test_flow_warp_casts_the_flow_to_the_image_dtype():
    torch.manual_seed(2)
    x, flow = torch.randn(1, 2, 5, 6, dtype=torch.float64), random_flow((1, 5, 6, 2)).float()
    out = compat.flow_warp(x, flow)
    assert out.dtype == torch.float64
    torch.testing.assert_close(out, basicsr_flow_warp(x, flow.double(), "bilinear", "zeros", True), rtol=0, atol=1e-12)


def test_flow_warp_errors():
    x = torch.rand(2, 3, 5, 6)
    with pytest.raises(ValueError, match=r"spatial sizes of x \(5, 6\) and flow \(2, 5\) are not the same"):
        compat.flow_warp(x, torch.rand(2, 2, 5, 6))  # a (N, 2, H, W) flow: BasicSR's error too
    with pytest.raises(ValueError, match=r"flow must be \(N, H, W, 2\), got shape \(2, 5, 6, 3\)"):
        compat.flow_warp(x, torch.rand(2, 5, 6, 3))
    with pytest.raises(ValueError, match="interp_mode must be one of"):
        compat.flow_warp(x, torch.rand(2, 5, 6, 2), "bicubic")
    with pytest.raises(ValueError, match="padding_mode must be one of"):
        compat.flow_warp(x, torch.rand(2, 5, 6, 2), "bilinear", "circular")
    with pytest.raises(TypeError, match="both interp_mode and interpolation"):
        compat.flow_warp(x, torch.rand(2, 5, 6, 2), "nearest", interpolation="nearest")
    with pytest.raises(TypeError, match="x and flow must be tensors"):
        compat.flow_warp(x.numpy(), torch.rand(2, 5, 6, 2))


# --- vid2vid / imaginaire resample ----------------------------------------------------------------------------

def vid2vid_resample(image, flow):
    """vid2vid's / imaginaire's definition: a linspace(-1, 1) grid plus the flow over (size - 1) / 2."""
    n, _, h, w = image.shape
    hor = torch.linspace(-1.0, 1.0, w, dtype=flow.dtype).view(1, 1, 1, w).expand(n, 1, h, w)
    ver = torch.linspace(-1.0, 1.0, h, dtype=flow.dtype).view(1, 1, h, 1).expand(n, 1, h, w)
    grid = torch.cat([hor, ver], 1)
    flow = torch.cat([flow[:, 0:1] / ((w - 1.0) / 2.0), flow[:, 1:2] / ((h - 1.0) / 2.0)], dim=1)
    return F.grid_sample(image, (grid + flow).permute(0, 2, 3, 1), mode="bilinear", padding_mode="border",
                         align_corners=True)


@pytest.mark.parametrize("backend", BACKENDS)
@pytest.mark.parametrize("shape", [(2, 3, 7, 9), (1, 1, 2, 2), (1, 4, 16, 5)], ids=lambda s: "x".join(map(str, s)))
def test_resample_is_vid2vid_resample(backend, shape):
    torch.manual_seed(sum(shape))
    n, _, h, w = shape
    image, flow = torch.randn(shape, dtype=torch.float64), random_flow((n, 2, h, w))
    ours = grads_of(lambda i, f: compat.resample(i, f, backend=backend), [image, flow])
    assert_same(ours, grads_of(vid2vid_resample, [image, flow]))


def test_resample_errors():
    with pytest.raises(ValueError, match="flow must have 2 channels"):
        compat.resample(torch.rand(1, 3, 4, 5), torch.rand(1, 3, 4, 5))


# --- FlowNet2 Resample2d --------------------------------------------------------------------------------------

def flownet2_resample2d(img, flow, grad_out, bilinear=True):
    """FlowNet2's resample2d CUDA kernel (kernel_size=1), pixel by pixel in float64: the output, and the
    gradients its backward kernels write for the upstream gradient grad_out (the backward is bilinear
    whatever `bilinear` says)."""
    n_b, n_c, h, w = img.shape
    out, grad_img, grad_flow = torch.zeros_like(img), torch.zeros_like(img), torch.zeros_like(flow)

    def clamp(i, size):
        return max(min(i, size - 1), 0)

    for b, y, x in itertools.product(range(n_b), range(h), range(w)):
        xf, yf = x + flow[b, 0, y, x].item(), y + flow[b, 1, y, x].item()
        alpha, beta = xf - math.floor(xf), yf - math.floor(yf)
        x_l, x_r = clamp(math.floor(xf), w), clamp(math.floor(xf) + 1, w)
        y_t, y_b = clamp(math.floor(yf), h), clamp(math.floor(yf) + 1, h)
        # The image gradient kernel takes the fraction from int(), which truncates towards 0.
        alpha_t, beta_t = xf - math.trunc(xf), yf - math.trunc(yf)
        for c in range(n_c):
            im = img[b, c]
            g = grad_out[b, c, y, x].item()
            if bilinear:
                out[b, c, y, x] = ((1 - alpha) * (1 - beta) * im[y_t, x_l] + alpha * (1 - beta) * im[y_t, x_r]
                                   + (1 - alpha) * beta * im[y_b, x_l] + alpha * beta * im[y_b, x_r])
            else:
                out[b, c, y, x] = im[clamp(math.floor(yf + 0.5), h), clamp(math.floor(xf + 0.5), w)]
            grad_img[b, c, y_t, x_l] += (1 - alpha_t) * (1 - beta_t) * g
            grad_img[b, c, y_t, x_r] += alpha_t * (1 - beta_t) * g
            grad_img[b, c, y_b, x_l] += (1 - alpha_t) * beta_t * g
            grad_img[b, c, y_b, x_r] += alpha_t * beta_t * g
            grad_flow[b, 0, y, x] += g * ((1 - beta) * (im[y_t, x_r] - im[y_t, x_l])
                                          + beta * (im[y_b, x_r] - im[y_b, x_l]))
            grad_flow[b, 1, y, x] += g * ((1 - alpha) * (im[y_b, x_l] - im[y_t, x_l])
                                          + alpha * (im[y_b, x_r] - im[y_t, x_r]))
    return out, grad_img, grad_flow


def flow_with_edge_positions(n, h, w):
    """A flow (h >= 6, w >= 7) that puts samples exactly on the first column and row (x + dx == 0, y + dy == 0),
    alone and together, with the other coordinate ordinary, far outside the image or also 0."""
    flow = random_flow((n, 2, h, w))
    flow[:, :, 0, 0] = 0.0  # pixel (0, 0) with a zero flow: position (0, 0)
    flow[:, 0, :, 3] = -3.0  # column 3 samples column 0, at fractional rows
    flow[:, 1, 2, :] = -2.0  # row 2 samples row 0, at fractional columns
    flow[:, 0, 4, 1], flow[:, 1, 4, 1] = -1.0, 40.0  # column 0, far below the image
    flow[:, 0, 5, 2], flow[:, 1, 5, 2] = -2.0, -20.0  # column 0, far above
    flow[:, 0, 3, 5], flow[:, 1, 3, 5] = 30.0, -3.0  # row 0, far to the right
    return flow


def resample2d_case(seed, shape=(2, 3, 6, 7)):
    torch.manual_seed(seed)
    n, _, h, w = shape
    img, flow = torch.randn(shape, dtype=torch.float64), flow_with_edge_positions(n, h, w)
    grad_out = torch.randn(shape, dtype=torch.float64)
    return img, flow, grad_out


def run_module(module, img, flow, grad_out):
    img, flow = img.clone().requires_grad_(True), flow.clone().requires_grad_(True)
    out = module(img, flow)
    out.backward(grad_out.to(out.dtype))
    return out.detach(), img.grad, flow.grad


def at_first_row_or_column(flow):
    """(N, 2, H, W): True where the sample position along that channel's axis is exactly 0."""
    _, _, h, w = flow.shape
    return torch.stack((flow[:, 0] == -torch.arange(w, dtype=flow.dtype),
                        flow[:, 1] == -torch.arange(h, dtype=flow.dtype).view(h, 1)), dim=1)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resample2d_with_flownet2_edge_gradient_is_flownet2(backend):
    img, flow, grad_out = resample2d_case(3)
    expected = flownet2_resample2d(img, flow, grad_out)
    assert at_first_row_or_column(flow).sum() >= 10  # the case exercises the edge rule
    ours = run_module(compat.Resample2d(flownet2_edge_gradient=True, backend=backend), img, flow, grad_out)
    for a, e in zip(ours, expected):
        torch.testing.assert_close(a, e, rtol=0, atol=1e-12)


@pytest.mark.parametrize("backend", BACKENDS)
def test_resample2d_default_is_flownet2_but_at_the_edge(backend):
    """By default the flow gradient at a position exactly 0 is 0 (grid_sample's); everything else is FlowNet2's."""
    img, flow, grad_out = resample2d_case(4)
    out_e, grad_img_e, grad_flow_e = flownet2_resample2d(img, flow, grad_out)
    out, grad_img, grad_flow = run_module(compat.Resample2d(backend=backend), img, flow, grad_out)
    edge = at_first_row_or_column(flow)
    torch.testing.assert_close(out, out_e, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_img, grad_img_e, rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_flow[~edge], grad_flow_e[~edge], rtol=0, atol=1e-12)
    assert torch.count_nonzero(grad_flow[edge]) == 0 and torch.count_nonzero(grad_flow_e[edge]) > 0


@pytest.mark.parametrize("backend", BACKENDS)
def test_resample2d_nearest(backend):
    """bilinear=False: FlowNet2's nearest pixel (away from half-pixel ties, which FlowNet2 rounds up and we round
    to even); the gradient is nearest sampling's: the image gradient to the pixel taken, no flow gradient
    (FlowNet2's backward ignores bilinear=False and returns bilinear gradients)."""
    img, flow, grad_out = resample2d_case(5)
    out_e, _, _ = flownet2_resample2d(img, flow, grad_out, bilinear=False)
    out, grad_img, grad_flow = run_module(compat.Resample2d(1, False, backend=backend), img, flow, grad_out)
    torch.testing.assert_close(out, out_e, rtol=0, atol=0)
    assert torch.count_nonzero(grad_flow) == 0
    _, _, h, w = img.shape
    xs = (torch.arange(w) + flow[:, 0]).round().clamp(0, w - 1).long()
    ys = (torch.arange(h).view(h, 1) + flow[:, 1]).round().clamp(0, h - 1).long()
    expected = torch.zeros_like(img)
    for b in range(img.shape[0]):
        expected[b].view(img.shape[1], -1).index_add_(1, (ys[b] * w + xs[b]).flatten(), grad_out[b].flatten(1))
    torch.testing.assert_close(grad_img, expected, rtol=0, atol=1e-12)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=str)
def test_resample2d_edge_gradient_in_low_precision_and_under_autocast(dtype):
    """The correction is computed in float32 at least and returned in the flow's dtype; under autocast the
    warp runs in the autocast dtype and the gradients keep the inputs' dtypes."""
    img, flow, grad_out = resample2d_case(6)
    _, _, grad_flow_e = flownet2_resample2d(img, flow, grad_out)
    module = compat.Resample2d(flownet2_edge_gradient=True)
    _, _, grad_flow = run_module(module, img.to(dtype), flow.to(dtype), grad_out.to(dtype))
    assert grad_flow.dtype == dtype
    tolerance = 1e-5 if dtype == torch.float32 else 1e-1
    edge = at_first_row_or_column(flow)
    torch.testing.assert_close(grad_flow[edge].double(), grad_flow_e[edge], rtol=0, atol=tolerance)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out, grad_img, grad_flow = run_module(module, img.float(), flow.float(), grad_out.float())
    assert out.dtype == torch.bfloat16 and grad_img.dtype == grad_flow.dtype == torch.float32
    torch.testing.assert_close(grad_flow[edge].double(), grad_flow_e[edge], rtol=0, atol=1e-1)


def test_resample2d_edge_gradient_broadcasts_and_takes_infinite_rows_as_far():
    img, flow, grad_out = resample2d_case(7)
    module = compat.Resample2d(flownet2_edge_gradient=True)
    # A batch-1 image broadcast over the flow's batch: the same as the image repeated.
    _, grad_img, grad_flow = run_module(module, img[:1], flow, grad_out)
    _, grad_img_e, grad_flow_e = run_module(module, img[:1].expand_as(img), flow, grad_out)
    torch.testing.assert_close(grad_img, grad_img_e.sum(0, keepdim=True), rtol=0, atol=1e-12)
    torch.testing.assert_close(grad_flow, grad_flow_e, rtol=0, atol=1e-12)
    # ±Inf along the other axis samples the edge row like a far position; NaN sends nothing.
    far, inf, nan = flow.clone(), flow.clone(), flow.clone()
    far[:, 1, 4, 1], inf[:, 1, 4, 1], nan[:, 1, 4, 1] = 1e6, float("inf"), float("nan")
    _, _, grad_far = run_module(module, img, far, grad_out)
    _, _, grad_inf = run_module(module, img, inf, grad_out)
    _, _, grad_nan = run_module(module, img, nan, grad_out)
    assert grad_far[:, 0, 4, 1].abs().min() > 0
    torch.testing.assert_close(grad_inf[:, 0, 4, 1], grad_far[:, 0, 4, 1], rtol=0, atol=0)
    assert torch.count_nonzero(grad_nan[:, :, 4, 1]) == 0


def test_resample2d_output_can_be_modified_in_place():
    img, flow, grad_out = resample2d_case(8)
    img.requires_grad_(True)
    out = compat.Resample2d(flownet2_edge_gradient=True)(img, flow)
    out.mul_(2)
    out.backward(grad_out)
    assert img.grad is not None


def test_resample2d_constructor():
    assert compat.Resample2d().bilinear and not compat.Resample2d(1, False).bilinear
    assert "flownet2_edge_gradient=False" in repr(compat.Resample2d())
    with pytest.raises(ValueError, match="kernel_size must be 1"):
        compat.Resample2d(3)
    with pytest.raises(TypeError, match="bilinear must be True"):
        compat.Resample2d(1, 2)
    with pytest.raises(ValueError, match="flownet2_edge_gradient=True needs bilinear=True"):
        compat.Resample2d(1, False, flownet2_edge_gradient=True)
    with pytest.raises(ValueError, match="backend must be one of"):
        compat.Resample2d(backend="gpu")


def test_top_level_resample2d_points_to_compat():
    """vid2vid_fast.Resample2d takes kernel_size alone positionally: FlowNet2's Resample2d(1, False) would
    silently have meant something else, so it raises and names vid2vid_fast.compat.Resample2d."""
    with pytest.raises(TypeError, match="vid2vid_fast.compat.Resample2d"):
        v2v.Resample2d(1, False)
