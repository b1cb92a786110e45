import logging

import pytest
import torch
import torch.nn.functional as F

from vid2vid_fast.models.losses import VGGLoss
from vid2vid_fast.models.vgg import LAYER_WEIGHTS, VGG19Features

torchvision = pytest.importorskip("torchvision")

TAPS = (1, 6, 11, 20, 29)  # relu1_1 .. relu5_1 in torchvision's vgg19().features


@pytest.fixture(scope="module")
def tv_features():
    """torchvision's VGG19 feature stack, randomly initialised (no download)."""
    torch.manual_seed(0)
    features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"])
    return features.eval()


@pytest.fixture(scope="module")
def vgg_file(tv_features, tmp_path_factory):
    """A file shaped like torchvision's vgg19().state_dict(): features.* (all 16 convs) plus classifier
    entries, which the loader must ignore."""
    state = {f"features.{k}": v for k, v in tv_features.state_dict().items()}
    state["classifier.6.weight"] = torch.randn(10, 4)
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(state, path)
    return path


def tv_taps(features, x):
    out = []
    for i, layer in enumerate(features):
        x = layer(x)
        if i in TAPS:
            out.append(x.clone())  # torchvision's ReLUs are in place
        if i == TAPS[-1]:
            return out


def expected_loss(features, x, y):
    return sum(w * (a - b).abs().mean() for w, a, b in zip(LAYER_WEIGHTS, tv_taps(features, x), tv_taps(features, y)))


def test_layer_weights_are_the_originals():
    assert LAYER_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def test_features_match_torchvision_from_a_full_state_dict(tv_features, vgg_file):
    model = VGG19Features.from_file(vgg_file)
    x = torch.randn(2, 3, 32, 48)
    with torch.no_grad():
        got, want = model(x), tv_taps(tv_features, x)
    assert [g.shape[1] for g in got] == [64, 128, 256, 512, 512]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training


def test_a_features_only_file_loads(tv_features, tmp_path):
    path = tmp_path / "features.pth"
    torch.save(tv_features.state_dict(), path)  # keys "N.weight", as vgg19().features.state_dict()
    model = VGG19Features.from_file(path)
    torch.testing.assert_close(model.features[28].weight, tv_features[28].weight)


def test_vgg_loss_value_and_gradients(tv_features, vgg_file):
    loss_fn = VGGLoss(vgg_file)
    assert loss_fn.enabled
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    y = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    loss = loss_fn(x, y)
    with torch.no_grad():
        want = expected_loss(tv_features, x, y)  # [-1, 1] fed as is, as the original does
    torch.testing.assert_close(loss, want)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert y.grad is None  # the target is detached, as in the original
    assert loss_fn(x, x).item() == 0.0


def test_vgg_loss_imagenet_normalisation_option(tv_features, vgg_file):
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        got = VGGLoss(vgg_file, normalize_input=True)(x, y)
        want = expected_loss(tv_features, ((x + 1) / 2 - mean) / std, ((y + 1) / 2 - mean) / std)
    torch.testing.assert_close(got, want)


def test_vgg_loss_halves_inputs_wider_than_1024(tv_features, vgg_file):
    x, y = torch.rand(1, 3, 32, 1030) * 2 - 1, torch.rand(1, 3, 32, 1030) * 2 - 1
    with torch.no_grad():
        got = VGGLoss(vgg_file)(x, y)
        want = expected_loss(tv_features, F.avg_pool2d(x, 2), F.avg_pool2d(y, 2))
    torch.testing.assert_close(got, want)


def test_vgg_loss_without_weights_is_disabled_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="vid2vid_fast"):
        loss_fn = VGGLoss()
    assert not loss_fn.enabled
    assert "VGG perceptual loss disabled" in caplog.text
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    assert loss_fn(x, torch.rand(1, 3, 8, 8)).item() == 0.0
    assert list(loss_fn.parameters()) == []


def test_wrong_weight_files_are_refused(tv_features, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VGGLoss(tmp_path / "missing.pth")
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not a torchvision VGG19 state dict"):
        VGGLoss(other)
    wrong_shape = tmp_path / "wrong_shape.pth"
    state = {f"features.{k}": v for k, v in tv_features.state_dict().items()}
    state["features.19.weight"] = torch.zeros(512, 512, 3, 3)  # VGG16's conv4_2 sits at this index
    torch.save(state, wrong_shape)
    with pytest.raises(ValueError, match="has shape"):
        VGGLoss(wrong_shape)
    pickled = tmp_path / "pickled.pth"
    torch.save({"weights": logging.getLogger("x")}, pickled)  # needs full unpickling
    with pytest.raises(ValueError, match="weights_only"):
        VGGLoss(pickled)


def test_vgg_loss_checks_its_inputs(vgg_file):
    loss_fn = VGGLoss(vgg_file)
    with pytest.raises(ValueError, match="x must be a"):
        loss_fn(torch.rand(1, 1, 8, 8), torch.rand(1, 1, 8, 8))
    with pytest.raises(ValueError, match="y must have the shape"):
        loss_fn(torch.rand(1, 3, 8, 8), torch.rand(1, 3, 8, 9))
