import pytest
import torch
import torch.nn.functional as F

from vid2vid_fast.models.phase_conv import phase_conv2d


@pytest.mark.parametrize("out_channels, in_channels, kernel, size", [
    (3, 8, (7, 7), (18, 22)),   # a generator head, even output (12 x 16): the phased path
    (1, 5, (3, 5), (9, 12)),    # a non-square kernel, even output (7 x 8): odd input sizes
    (2, 4, (4, 4), (11, 9)),    # even kernel, even output (8 x 6)
    (3, 4, (7, 7), (18, 21)),   # odd output width (12 x 15): computed directly
])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_conv2d_in_float64(out_channels, in_channels, kernel, size, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, in_channels, *size, dtype=torch.float64, generator=g)
    w = torch.randn(out_channels, in_channels, *kernel, dtype=torch.float64, generator=g)
    b = torch.randn(out_channels, dtype=torch.float64, generator=g) if bias else None
    torch.testing.assert_close(phase_conv2d(x, w, b), F.conv2d(x, w, b), rtol=1e-12, atol=1e-12)


def test_gradients_in_float64():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(1, 3, 10, 12, dtype=torch.float64, generator=g, requires_grad=True)
    w = torch.randn(2, 3, 5, 5, dtype=torch.float64, generator=g, requires_grad=True)
    b = torch.randn(2, dtype=torch.float64, generator=g, requires_grad=True)
    assert torch.autograd.gradcheck(phase_conv2d, (x, w, b))


@pytest.mark.parametrize("dtype, tol", [(torch.float32, 1e-5), (torch.bfloat16, 2e-2)])
def test_channels_last_and_low_precision(dtype, tol):
    g = torch.Generator().manual_seed(2)
    x = torch.randn(2, 8, 20, 26, generator=g).to(memory_format=torch.channels_last)
    w = torch.randn(3, 8, 7, 7, generator=g) / 20
    b = torch.randn(3, generator=g)
    expected = F.conv2d(x.double(), w.double(), b.double())
    got = phase_conv2d(x.to(dtype), w.to(dtype), b.to(dtype))
    assert got.dtype == dtype and got.shape == expected.shape
    torch.testing.assert_close(got.double(), expected, rtol=tol, atol=tol)
