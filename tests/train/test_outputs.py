import math

import numpy as np
import pytest
import torch

from vid2vid_fast.train.outputs import psnr, side_by_side, ssim, to_uint8, warp_error, write_png_grid, write_video


def frames(t=5, c=3, h=40, w=48, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(t, c, h, w, generator=g) * 2 - 1


def test_psnr():
    real = frames()
    assert torch.all(psnr(real, real) > 100)
    noisy = real + 0.2  # 0.1 on the [0, 1] scale, except where clamped
    expected = 10 * math.log10(1 / (((noisy.clamp(-1, 1) - real) / 2) ** 2).mean().item())
    assert psnr(noisy, real).mean().item() == pytest.approx(expected, rel=1e-2)
    with pytest.raises(ValueError, match="same shape"):
        psnr(real, real[:1])


def _ssim_direct(a, b):
    """SSIM by a plain loop over window positions (float64), for one channel."""
    a, b = ((a + 1) / 2).double(), ((b + 1) / 2).double()
    g = torch.exp(-((torch.arange(11) - 5.0) ** 2) / (2 * 1.5**2))
    w = torch.outer(g, g) / torch.outer(g, g).sum()
    values = []
    for y in range(a.shape[0] - 10):
        for x in range(a.shape[1] - 10):
            pa, pb = a[y : y + 11, x : x + 11], b[y : y + 11, x : x + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * pa * pa).sum() - ma**2, (w * pb * pb).sum() - mb**2
            cov = (w * pa * pb).sum() - ma * mb
            c1, c2 = 0.01**2, 0.03**2
            values.append(((2 * ma * mb + c1) * (2 * cov + c2)) / ((ma**2 + mb**2 + c1) * (va + vb + c2)))
    return torch.stack(values).mean()


def test_ssim_matches_the_definition():
    real = frames(2, 1, 16, 20)
    fake = (real + 0.3 * frames(2, 1, 16, 20, seed=1)).clamp(-1, 1)
    assert torch.allclose(ssim(real, real), torch.ones(2), atol=1e-5)
    ours = ssim(fake, real)
    assert ours[0].item() == pytest.approx(_ssim_direct(fake[0, 0], real[0, 0]).item(), abs=1e-4)
    assert 0 < ours[0] < 0.99


def test_warp_error_sees_motion_that_the_flow_explains():
    base = frames(1, 3, 24, 32)
    # frame t is frame t-1 shifted right by one pixel: warping t-1 with dx = -1 reproduces it
    video = torch.stack([torch.roll(base[0], shifts=t, dims=2) for t in range(4)])
    flow = torch.zeros(3, 2, 24, 32)
    flow[:, 0] = -1
    conf = torch.ones(3, 1, 24, 32)
    conf[..., 0] = 0  # the wrapped-around column is not explained by the flow
    assert torch.all(warp_error(video, flow, conf) < 1e-6)
    assert torch.all(warp_error(video, torch.zeros_like(flow), conf) > 0.1)


def test_write_video_and_read_back(tmp_path):
    av = pytest.importorskip("av")
    video = frames(6, 3, 31, 45)  # odd sizes are padded to even
    path = write_video(tmp_path / "v.mp4", video, fps=10)
    with av.open(str(path)) as container:
        decoded = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
    assert len(decoded) == 6 and decoded[0].shape == (32, 46, 3)
    smooth = torch.linspace(-1, 1, 45).expand(6, 3, 31, 45)  # smooth: survives compression
    write_video(tmp_path / "s.mp4", smooth)
    with av.open(str(tmp_path / "s.mp4")) as container:
        first = next(container.decode(video=0)).to_ndarray(format="rgb24")[:31, :45].astype(np.float64)
    assert np.abs(first - to_uint8(smooth[:1])[0].numpy()).mean() < 3
    assert not list(tmp_path.glob(".*tmp*"))


def test_side_by_side_and_grid(tmp_path):
    from PIL import Image

    a, b = frames(4, 1, 16, 20), frames(4, 3, 16, 20)
    both = side_by_side(a, b, gap=2)
    assert both.shape == (4, 3, 16, 42)
    assert torch.equal(both[:, 0, :, :20], a[:, 0]) and torch.equal(both[:, :, :, 22:], b)
    path = write_png_grid(tmp_path / "g.png", [a, b, b[:2]], max_columns=3)
    assert Image.open(path).size == (3 * 20 + 2 * 2, 3 * 16 + 2 * 2)
