import pytest
import torch

from vid2vid_fast.models.losses import (
    LossTerm,
    LossTotals,
    LossWeights,
    discriminator_loss,
    feature_matching_loss,
    flow_loss,
    flow_warp_loss,
    gan_loss,
    loss_terms,
    masked_l1,
    temporal_consistency_loss,
    weight_loss,
)
from vid2vid_fast.ops import available_backends


def t(values):
    """A (1, 1, 1, N) tensor from a list (or nested lists for more channels)."""
    x = torch.tensor(values, dtype=torch.float32)
    while x.dim() < 4:
        x = x.unsqueeze(0)
    return x


def test_loss_weights_are_the_original_defaults():
    w = LossWeights()
    assert (w.lambda_feat, w.lambda_T, w.lambda_F, w.lambda_W) == (10.0, 10.0, 10.0, 1.0)
    assert [w.flow_weight(s) for s in (1, 2, 3)] == [10.0, 5.0, 2.5]
    with pytest.raises(ValueError, match="n_scales_spatial"):
        w.flow_weight(0)


def test_gan_loss_is_lsgan_summed_over_scales_on_last_outputs():
    feat = t([5.0, -7.0])  # intermediate outputs must not count
    p0 = t([0.5, 2.0]).requires_grad_()
    p1 = t([-1.0]).requires_grad_()
    preds = [[feat, p0], [feat, p1]]
    # real: mean((0.5-1)², (2-1)²) + (-1-1)² = 0.625 + 4
    assert gan_loss(preds, True).item() == pytest.approx(4.625)
    # fake: mean(0.5², 2²) + 1 = 2.125 + 1
    assert gan_loss(preds, False).item() == pytest.approx(3.125)
    gan_loss(preds, True).backward()
    torch.testing.assert_close(p0.grad, t([2 * (0.5 - 1) / 2, 2 * (2 - 1) / 2]))
    torch.testing.assert_close(p1.grad, t([2 * (-1 - 1)]))
    # one NLayerDiscriminator's outputs count as one scale
    assert gan_loss([feat, p0], True).item() == pytest.approx(0.625)


def test_discriminator_loss_is_half_real_plus_fake():
    real = [[t([0.5, 2.0])]]
    fake = [[t([1.0, 0.0])]]
    # real: (0.25 + 1) / 2 = 0.625; fake: (1 + 0) / 2 = 0.5
    assert discriminator_loss(real, fake).item() == pytest.approx(0.5 * (0.625 + 0.5))


def test_feature_matching_weights_and_detached_real():
    fake0 = [t([1.0, 2.0]).requires_grad_(), t([0.0]).requires_grad_(), t([9.0])]
    fake1 = [t([3.0]).requires_grad_(), t([9.0])]
    real0 = [t([0.0, 0.0]).requires_grad_(), t([-2.0]).requires_grad_(), t([-9.0])]
    real1 = [t([1.0]).requires_grad_(), t([-9.0])]
    # weight (1/num_D)·(4/(n_layers_D+1)) = 0.5 · 1; L1 terms 1.5, 2, 2 (the predictions are skipped)
    loss = feature_matching_loss([fake0, fake1], [real0, real1], num_D=2, n_layers_D=3)
    assert loss.item() == pytest.approx(0.5 * (1.5 + 2.0 + 2.0))
    loss.backward()
    assert all(r.grad is None for r in real0 + real1)
    torch.testing.assert_close(fake0[0].grad, t([0.25, 0.25]))
    # only the first num_D scales count; n_layers_D = 1 gives feature weight 2
    loss = feature_matching_loss([fake0, fake1], [real0, real1], num_D=1, n_layers_D=1)
    assert loss.item() == pytest.approx(1.0 * 2.0 * (1.5 + 2.0))


def test_feature_matching_rejects_mismatched_outputs():
    with pytest.raises(ValueError, match="scales"):
        feature_matching_loss([[t([1.0])], [t([1.0])]], [[t([1.0])]], num_D=2, n_layers_D=3)
    with pytest.raises(TypeError, match="fake_preds"):
        feature_matching_loss(t([1.0]), [[t([1.0])]], num_D=1, n_layers_D=3)


def test_masked_l1_hand_values():
    a = t([[[1.0, 2.0]], [[3.0, -4.0]]])  # (1, 2, 1, 2)
    b = t([[[0.0, 0.0]], [[1.0, 1.0]]])
    mask = t([1.0, 0.0])  # (1, 1, 1, 2), broadcast over channels
    # |1-0|, 0, |3-1|, 0 over 4 elements
    assert masked_l1(a, b, mask).item() == pytest.approx((1 + 2) / 4)
    full_mask = torch.ones(1, 2, 1, 2)
    assert masked_l1(a, b, full_mask).item() == pytest.approx((1 + 2 + 2 + 5) / 4)
    with pytest.raises(ValueError, match="mask must have shape"):
        masked_l1(a, b, torch.ones(1, 1, 2, 2))
    with pytest.raises(ValueError, match="b must have the shape"):
        masked_l1(a, b[:, :1], mask)


def test_flow_loss_hand_value_and_gradient_only_to_flow():
    flow = t([[[1.0, -1.0]], [[0.5, 2.0]]]).requires_grad_()
    flow_gt = t([[[0.0, 0.0]], [[0.0, 0.0]]]).requires_grad_()
    conf = t([1.0, 1.0])
    loss = flow_loss(flow, flow_gt, conf)
    assert loss.item() == pytest.approx((1 + 1 + 0.5 + 2) / 4)
    loss.backward()
    assert flow_gt.grad is None
    torch.testing.assert_close(flow.grad, t([[[0.25, -0.25]], [[0.25, 0.25]]]))


BACKENDS = available_backends("cpu")


@pytest.mark.parametrize("backend", BACKENDS)
def test_flow_warp_loss_hand_value(backend):
    real_prev = t([0.0, 1.0, 2.0, 3.0])
    real = t([1.0, 2.0, 3.0, 0.0])
    flow = torch.zeros(1, 2, 1, 4)
    flow[:, 0] = 0.5  # sample half a pixel to the right: warp = [0.5, 1.5, 2.5, 3] (border)
    flow.requires_grad_()
    conf = t([1.0, 1.0, 1.0, 1.0])
    loss = flow_warp_loss(real_prev, flow, real, conf, backend=backend)
    assert loss.item() == pytest.approx((0.5 + 0.5 + 0.5 + 3.0) / 4)
    loss.backward()
    # d warp / d dx = 1 on the ramp, sign(warp - real) = -1; the last sample is clamped: no gradient
    torch.testing.assert_close(flow.grad[:, 0], torch.tensor([[[-0.25, -0.25, -0.25, 0.0]]]))
    conf = t([1.0, 1.0, 1.0, 0.0])
    assert flow_warp_loss(real_prev, flow, real, conf, backend=backend).item() == pytest.approx(1.5 / 4)


@pytest.mark.parametrize("backend", BACKENDS)
def test_temporal_consistency_loss_hand_value_and_gradient_only_to_fake(backend):
    fake_prev = t([0.0, 2.0, 4.0]).requires_grad_()
    fake = t([1.0, 1.0, 5.0]).requires_grad_()
    flow_gt = torch.full((1, 2, 1, 3), 0.0)
    flow_gt[:, 0] = 0.5  # warp = [1, 3, 4] (border)
    conf = t([1.0, 1.0, 0.0])
    loss = temporal_consistency_loss(fake, fake_prev, flow_gt, conf, backend=backend)
    # |1-1|, |1-3|, masked out, over 3 elements
    assert loss.item() == pytest.approx(2.0 / 3)
    loss.backward()
    assert fake_prev.grad is None
    torch.testing.assert_close(fake.grad, t([0.0, -1.0 / 3, 0.0]))


def test_weight_loss_hand_value():
    weight = t([0.2, 0.8, 0.4]).requires_grad_()
    conf = t([1.0, 0.0, 1.0])
    loss = weight_loss(weight, conf)
    assert loss.item() == pytest.approx((0.2 + 0.4) / 3)
    loss.backward()
    torch.testing.assert_close(weight.grad, t([1 / 3, 0.0, 1 / 3]))


def test_loss_totals_sum_each_owners_weighted_terms():
    terms = loss_terms(LossWeights(lambda_feat=3.0), n_scales_spatial=1, n_scales_temporal=2)
    terms["G_Extra"] = LossTerm("G", 2.0)  # a new term: registered, so it counts
    losses = LossTotals(terms)
    losses.add("G_GAN", torch.tensor(1.0))
    losses.add("G_GAN_Feat", torch.tensor(1.0))  # x lambda_feat
    losses.add("G_Extra", torch.tensor(0.25))
    losses.add("D_real", torch.tensor(4.0))  # x 0.5
    losses.add("D_T_1", torch.tensor(5.0))
    assert losses.total("G").item() == 1.0 + 3.0 + 0.5
    assert losses.total("D").item() == 2.0
    assert losses.total("D_T_1").item() == 5.0
    assert losses.owners() == ["G", "D", "D_T_1"]
    with pytest.raises(KeyError, match="no loss term of 'D_T_0'"):
        losses.total("D_T_0")


def test_an_unregistered_or_repeated_loss_term_is_an_error():
    losses = LossTotals(loss_terms(LossWeights(), 1, 1))
    with pytest.raises(KeyError, match="loss term 'Perceptual' is not registered"):
        losses.add("Perceptual", torch.tensor(1.0))
    with pytest.raises(KeyError, match="G_T_GAN_1' is not registered"):  # only one temporal scale
        losses.add("G_T_GAN_1", torch.tensor(1.0))
    losses.add("G_GAN", torch.tensor(1.0))
    with pytest.raises(KeyError, match="added twice"):
        losses.add("G_GAN", torch.tensor(1.0))
