import pytest
import torch

from model_cases import GENERATOR_PARAMS, LOCAL_GENERATOR_PARAMS
from vid2vid_fast import flow_warp
from vid2vid_fast.models import CompositeGenerator, CompositeLocalGenerator, GeneratorOutput, Vid2VidGenerator

LABEL_NC, T_G = 4, 3


def count(module):
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("name", sorted(GENERATOR_PARAMS))
def test_composite_generator_parameter_count_equals_original(name):
    args, expected = GENERATOR_PARAMS[name]
    with torch.device("meta"):
        assert count(CompositeGenerator(*args)) == expected


@pytest.mark.parametrize("name", sorted(LOCAL_GENERATOR_PARAMS))
def test_local_generator_parameter_count_equals_original(name):
    *args, scale = LOCAL_GENERATOR_PARAMS[name][0]
    with torch.device("meta"):
        assert count(CompositeLocalGenerator(*args, scale=scale)) == LOCAL_GENERATOR_PARAMS[name][1]


def test_two_scale_street_generator_is_the_original_g0_plus_g1():
    with torch.device("meta"):
        g = Vid2VidGenerator(35, n_scales_spatial=2)
    assert count(g) == GENERATOR_PARAMS["street_35x3"][1] + LOCAL_GENERATOR_PARAMS["street_s1"][1]
    assert g.scales[1].flow_multiplier == 40.0


def small_generator(n_scales=1, fg=False, norm="batch", **kw):
    torch.manual_seed(0)
    g = Vid2VidGenerator(LABEL_NC, 3, T_G, ngf=8, n_downsampling=2, n_blocks=2, n_blocks_local=1,
                         n_scales_spatial=n_scales, norm=norm, use_fg_model=fg, fg_labels=(1, 2) if fg else (),
                         **kw)
    return g.eval()


def inputs(b=2, h=64, w=64, seed=1):
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, LABEL_NC, (b, T_G, 1, h, w), generator=g)
    labels = torch.zeros(b, T_G, LABEL_NC, h, w).scatter_(2, idx, 1.0).reshape(b, -1, h, w)
    prev = torch.rand(b, (T_G - 1) * 3, h, w, generator=g) * 2 - 1
    return labels, prev


@pytest.mark.parametrize("n_scales,fg,norm", [(1, False, "batch"), (2, True, "instance")])
def test_output_shapes_and_ranges(n_scales, fg, norm):
    g = small_generator(n_scales, fg, norm)
    labels, prev = inputs()
    with torch.no_grad():
        out = g(labels, prev)
    assert isinstance(out, GeneratorOutput)
    assert out.img_final.shape == out.img_raw.shape == (2, 3, 64, 64)
    assert out.flow.shape == (2, 2, 64, 64) and out.weight.shape == (2, 1, 64, 64)
    assert out.img_feat.shape == out.flow_feat.shape == (2, 8 // 2 ** (n_scales - 1), 64, 64)
    assert out.img_raw.abs().max() <= 1 and out.img_final.abs().max() <= 1
    assert 0 <= out.weight.min() and out.weight.max() <= 1
    assert [p.shape[-1] for p in out.img_final_pyramid] == [64 // 2 ** i for i in range(n_scales)]
    assert torch.equal(out.img_final_pyramid[0], out.img_final)
    assert (out.img_fg is not None) == fg and (out.mask is not None) == fg


def test_composite_step_is_warp_blend_of_raw_and_last_previous_frame():
    g = small_generator()
    labels, prev = inputs()
    with torch.no_grad():
        out = g(labels, prev)
    warped = flow_warp(prev[:, 3:], out.flow, backend="reference")
    expected = out.img_raw * out.weight + warped * (1 - out.weight)
    torch.testing.assert_close(out.img_final, expected, rtol=1e-5, atol=2e-5)


def test_foreground_model_pastes_its_image_inside_the_mask():
    g = small_generator(fg=True)
    labels, prev = inputs()
    with torch.no_grad():
        out = g(labels, prev)
    newest = labels[:, (T_G - 1) * LABEL_NC:]
    torch.testing.assert_close(out.mask, (newest[:, 1:2] + newest[:, 2:3]).clamp(0, 1))
    inside = out.mask.expand_as(out.img_final).bool()
    torch.testing.assert_close(out.img_final[inside], out.img_fg[inside])
    torch.testing.assert_close(out.img_raw[inside], out.img_fg[inside])
    warped = flow_warp(prev[:, 3:], out.flow, backend="reference")
    outside = ~inside
    torch.testing.assert_close(out.img_final[outside],
                               (out.img_raw * out.weight + warped * (1 - out.weight))[outside], rtol=1e-5, atol=2e-5)


def test_first_frame_without_previous_frames_is_raw_only():
    g = small_generator(n_scales=2)
    labels, prev = inputs()
    with torch.no_grad():
        out = g(labels, None)
        zeros = g(labels, torch.zeros_like(prev))
    assert out.flow is None and out.weight is None and out.flow_feat is None
    assert torch.equal(out.img_final, out.img_raw)
    # The previous-frame encoder sees zeros, as the original's no_first_img does.
    torch.testing.assert_close(out.img_raw, zeros.img_raw)
    with torch.no_grad():
        given = g(labels, prev, use_raw_only=True)
        warped = g(labels, prev)
    assert given.flow is None and torch.equal(given.img_final, given.img_raw)
    torch.testing.assert_close(given.img_raw, warped.img_raw)
    with pytest.raises(ValueError, match="use_raw_only=False needs prev_images"):
        g(labels, None, use_raw_only=False)


def test_prev_images_per_scale_equal_the_pooled_tensor():
    g = small_generator(n_scales=2)
    labels, prev = inputs()
    with torch.no_grad():
        a = g(labels, prev)
        b = g(labels, g.pyramid(prev))
        c = g(labels, [prev, torch.zeros(2, 6, 32, 32)])
    assert torch.equal(a.img_final, b.img_final)
    assert not torch.equal(a.img_final, c.img_final)


def test_gradients_reach_every_parameter_and_freezing_keeps_only_the_finest():
    g = small_generator(n_scales=2, fg=True).train()
    labels, prev = inputs(h=32, w=32)
    out = g(labels, prev)
    (out.img_final.mean() + out.flow.mean()).backward()
    # A coarser scale feeds the next one its features, not its images: its heads get no gradient (as in
    # the original, whose losses see only the finest scale's outputs).
    no_grad = {n for n, p in g.named_parameters() if p.grad is None}
    assert no_grad == {f"scales.0.{h}.1.{w}" for h in ("img_head", "flow_head", "weight_head", "fg_head")
                       for w in ("weight", "bias")}
    g.zero_grad(set_to_none=True)
    g.freeze_coarse_scales()
    g(labels, prev).img_final.mean().backward()
    assert all(p.grad is None for p in g.scales[0].parameters())
    assert all(p.grad is not None for p in g.scales[1].img_up.parameters())
    g.freeze_coarse_scales(False)
    assert all(p.requires_grad for p in g.parameters())


@pytest.mark.parametrize("heads", ["stacked", "phased"])
@pytest.mark.parametrize("memory_format", [torch.contiguous_format, torch.channels_last])
def test_head_forms_compute_the_same_outputs_and_gradients(heads, memory_format):
    # in float64: a convolution's bias before a norm layer has a gradient of rounding noise only
    apart = small_generator(n_scales=2, fg=True).train().to(torch.float64, memory_format=memory_format)
    fused = small_generator(n_scales=2, fg=True, heads=heads).train().to(torch.float64, memory_format=memory_format)
    head_calls = []
    for scale in fused.scales:
        phased_only = (scale.img_head, scale.fg_head) if heads == "phased" else ()
        for head in (scale.flow_head, scale.weight_head, *phased_only):
            head.register_forward_hook(lambda *args: head_calls.append(args))
    labels, prev = (t.to(torch.float64, memory_format=memory_format) for t in inputs(h=32, w=32))
    outputs = []
    for g in (apart, fused):
        out = g(labels, prev)
        (out.img_final.square().mean() + out.flow.mean() + out.weight.mean()).backward()
        outputs.append(out)
    assert head_calls == []  # the fused path ran, not the head modules
    for name in ("img_final", "img_raw", "flow", "weight", "img_fg"):
        torch.testing.assert_close(getattr(outputs[1], name), getattr(outputs[0], name), rtol=1e-10, atol=1e-12)
    for (name, p), q in zip(apart.named_parameters(), fused.parameters()):
        assert (p.grad is None) == (q.grad is None), name
        if p.grad is not None:
            assert q.grad.stride() == p.grad.stride(), name
            torch.testing.assert_close(q.grad, p.grad, rtol=1e-9, atol=1e-12, msg=name)


def test_heads_must_be_a_known_form():
    with pytest.raises(ValueError, match="heads must be one of"):
        small_generator(heads="fused")


def test_torch_compile_fullgraph_channels_last_and_autocast():
    g = small_generator(n_scales=2, fg=True)
    labels, prev = inputs(h=32, w=64)
    with torch.no_grad():
        eager = g(labels, prev)
        compiled = torch.compile(g, fullgraph=True, backend="aot_eager")(labels, prev)
        torch.testing.assert_close(compiled.img_final, eager.img_final)
        g_cl = g.to(memory_format=torch.channels_last)
        cl = g_cl(labels.to(memory_format=torch.channels_last), prev.to(memory_format=torch.channels_last))
        torch.testing.assert_close(cl.img_final, eager.img_final, rtol=1e-4, atol=1e-5)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            low = g(labels, prev)
    assert low.img_final.dtype == torch.bfloat16 and torch.isfinite(low.img_final.float()).all()
    assert (low.img_final.float() - eager.img_final).abs().max() < 0.1


def test_bad_arguments_raise_clear_errors():
    labels, prev = inputs(h=32, w=32)
    g = small_generator()
    with pytest.raises(ValueError, match="labels must be"):
        g(labels[:, 1:], prev)
    with pytest.raises(ValueError, match=r"multiples of 2\*\*\(n_downsampling \+ n_scales_spatial - 1\) = 4"):
        g(labels[..., :30], prev[..., :30])
    with pytest.raises(ValueError, match="prev_images must be"):
        g(labels, prev[:, 3:])
    with pytest.raises(ValueError, match="norm"):
        CompositeGenerator(12, 3, 6, 8, 2, 2, norm="group")
    with pytest.raises(ValueError, match="fg_labels"):
        Vid2VidGenerator(LABEL_NC, use_fg_model=True)
    with pytest.raises(ValueError, match="fg_labels"):
        Vid2VidGenerator(LABEL_NC, use_fg_model=True, fg_labels=(LABEL_NC,))
    local = CompositeLocalGenerator(12, 3, 6, 4, 2, 1)
    with pytest.raises(ValueError, match="coarse"):
        local(labels, prev)
    fg = CompositeGenerator(12, 3, 6, 8, 2, 1, use_fg_model=True)
    with pytest.raises(ValueError, match="mask"):
        fg(labels, prev)
