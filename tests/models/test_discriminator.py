import pytest
import torch

from model_cases import DISCRIMINATOR_PARAMS
from vid2vid_fast.models import (MultiscaleDiscriminator, NLayerDiscriminator, TemporalDiscriminators,
                                 sample_temporal_frames, temporal_frame_indices)


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(DISCRIMINATOR_PARAMS))
def test_multiscale_discriminator_parameter_count_equals_original(name):
    args, expected = DISCRIMINATOR_PARAMS[name]
    with torch.device("meta"):
        assert count(MultiscaleDiscriminator(*args)) == expected


def test_temporal_discriminators_are_one_multiscale_d_per_temporal_scale():
    with torch.device("meta"):
        d = TemporalDiscriminators()
    assert d.input_nc == 13 and len(d.scales) == 2
    assert count(d) == 2 * DISCRIMINATOR_PARAMS["temporal_default_3x3+2x2"][1]


def test_multiscale_outputs_level_zero_first_with_the_per_level_width_rule():
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(5, ndf=16, n_layers=3, norm="instance", num_D=3)
    out = d(torch.randn(2, 5, 64, 48))
    assert len(out) == 3 and all(len(level) == 5 for level in out)
    # level k has base width min(64, ndf * 2**k); widths double per layer, capped at 512.
    for k, level in enumerate(out):
        width = min(64, 16 * 2 ** k)
        assert [f.shape[1] for f in level] == [width, 2 * width, 4 * width, 8 * width, 1]
    assert out[0][-1].shape == (2, 1, 11, 9)  # 64 x 48 -> 33, 17, 9 (s2) -> 10, 11 (s1)
    assert out[1][0].shape[-2:] == (17, 13)  # input pooled to 32 x 24, then Conv4 s2 p2
    flat = MultiscaleDiscriminator(5, ndf=16, n_layers=3, num_D=2, get_interm_feat=False)
    flat_out = flat(torch.randn(2, 5, 64, 48))
    assert [len(level) for level in flat_out] == [1, 1] and flat_out[0][0].shape[1] == 1


def test_nlayer_width_cap_and_input_check():
    d = NLayerDiscriminator(3, ndf=128, n_layers=4)
    assert [g[0].out_channels for g in d.layers] == [128, 256, 512, 512, 512, 1]
    with pytest.raises(ValueError, match="B x 3 x H x W"):
        d(torch.randn(1, 4, 32, 32))
    with pytest.raises(ValueError, match="norm"):
        NLayerDiscriminator(3, norm="layer")


def test_temporal_frame_indices_take_the_newest_frames_at_stride_n_frames_d_to_the_scale():
    assert temporal_frame_indices(3, 3, 0) == [0, 1, 2]
    assert temporal_frame_indices(5, 3, 0) == [2, 3, 4]
    assert temporal_frame_indices(6, 3, 1) is None
    assert temporal_frame_indices(7, 3, 1) == [0, 3, 6]
    assert temporal_frame_indices(10, 3, 1) == [3, 6, 9]
    assert temporal_frame_indices(19, 3, 2) == [0, 9, 18]
    assert temporal_frame_indices(9, 2, 3) == [0, 8]


def test_sample_temporal_frames_stacks_frames_oldest_first_then_flows_over_20():
    b, t, c, h, w = 2, 8, 3, 8, 12
    frames = torch.arange(t, dtype=torch.float32).view(1, t, 1, 1, 1).expand(b, t, c, h, w)
    flows = torch.randn(b, 2, 2, h, w)
    x = sample_temporal_frames(frames, flows, 3, 1)
    assert x.shape == (b, 3 * c + 4, h, w)
    assert x[:, :3 * c, 0, 0].tolist() == [[1, 1, 1, 4, 4, 4, 7, 7, 7]] * b
    torch.testing.assert_close(x[:, 9:], flows.reshape(b, 4, h, w) / 20)
    assert sample_temporal_frames(frames[:, :6], flows, 3, 1) is None
    with pytest.raises(ValueError, match="flows must be"):
        sample_temporal_frames(frames, flows[:, :1], 3, 1)
    d = TemporalDiscriminators(output_nc=c, n_frames_D=3, n_scales_temporal=2, ndf=8, num_D=2)
    out = d(d.sample(frames, flows, 1), 1)
    assert len(out) == 2 and out[0][-1].shape[:2] == (b, 1)
    with pytest.raises(ValueError, match="scale"):
        d.sample(frames, flows, 2)


def test_discriminator_compiles_fullgraph_in_channels_last_and_autocast():
    torch.manual_seed(0)
    d = MultiscaleDiscriminator(6, ndf=8, n_layers=2, num_D=2).eval()
    x = torch.randn(2, 6, 32, 32)
    with torch.no_grad():
        eager = d(x)
        compiled = torch.compile(d, fullgraph=True, backend="aot_eager")(x)
        cl = d.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last))
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = d(x)
    for a, b, c, e in zip(compiled, cl, low, eager):
        for fa, fb, fc, fe in zip(a, b, c, e):
            torch.testing.assert_close(fa, fe)
            torch.testing.assert_close(fb, fe, rtol=1e-4, atol=1e-5)
            assert fc.dtype == torch.bfloat16
            torch.testing.assert_close(fc.float(), fe, rtol=0.05, atol=0.05)
