import types

import pytest
import torch
import torch.nn.functional as F

import vid2vid_fast.models.phase_conv as phase_conv_module
from vid2vid_fast.models.phase_conv import phase_conv2d


@pytest.mark.parametrize("out_channels, in_channels, kernel, size, phased", [
    (3, 8, (7, 7), (18, 22), True),    # a generator head, even output (12 x 16)
    (1, 5, (3, 4), (10, 11), True),    # a non-square kernel, even output (8 x 8) of an odd input width
    (2, 4, (4, 4), (11, 9), True),     # even kernel, even output (8 x 6)
    (3, 4, (7, 7), (18, 21), False),   # odd output width (12 x 15): computed directly
])
@pytest.mark.parametrize("bias", [True, False])
def test_equals_conv2d_in_float64(monkeypatch, out_channels, in_channels, kernel, size, phased, bias):
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, in_channels, *size, dtype=torch.float64, generator=g)
    w = torch.randn(out_channels, in_channels, *kernel, dtype=torch.float64, generator=g)
    b = torch.randn(out_channels, dtype=torch.float64, generator=g) if bias else None
    strides = []

    def conv2d(*args, stride=1):
        strides.append(stride)
        return F.conv2d(*args, stride=stride)

    monkeypatch.setattr(phase_conv_module, "F", types.SimpleNamespace(conv2d=conv2d, pad=F.pad,
                                                                      pixel_shuffle=F.pixel_shuffle))
    torch.testing.assert_close(phase_conv2d(x, w, b), F.conv2d(x, w, b), rtol=1e-12, atol=1e-12)
    assert strides == [2 if phased else 1]


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


@pytest.mark.parametrize("x_shape, w_shape, bias_size", [
    ((1, 4, 18, 22), (3, 5, 7, 7), 3),  # the weight's input channels do not match
    ((1, 4, 6, 6), (3, 4, 7, 7), 3),    # a kernel larger than the input
    ((1, 4, 18, 22), (3, 4, 7, 7), 2),  # a bias of the wrong length
])
def test_bad_shapes_raise_as_conv2d_does(x_shape, w_shape, bias_size):
    x, w, b = torch.randn(x_shape), torch.randn(w_shape), torch.randn(bias_size)
    with pytest.raises(RuntimeError) as expected:
        F.conv2d(x, w, b)
    with pytest.raises(RuntimeError) as got:
        phase_conv2d(x, w, b)
    assert str(got.value) == str(expected.value)


def test_an_unbatched_input_as_conv2d():
    x, w = torch.randn(4, 18, 22, dtype=torch.float64), torch.randn(3, 4, 7, 7, dtype=torch.float64)
    torch.testing.assert_close(phase_conv2d(x, w), F.conv2d(x, w), rtol=1e-12, atol=1e-12)
