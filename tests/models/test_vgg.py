import logging

import pytest
import torch
import torch.nn.functional as F

from vid2vid_fast.models.losses import VGGLoss
from vid2vid_fast.models.vgg import LAYER_WEIGHTS, VGG19Features

# torchvision's vgg19().features: (index, in, out) of each conv; a ReLU follows each, max pools follow
# the convs at POOL_AFTER. relu1_1 .. relu5_1 are the ReLUs after the convs at TAPPED.
CONVS = [(0, 3, 64), (2, 64, 64), (5, 64, 128), (7, 128, 128), (10, 128, 256), (12, 256, 256), (14, 256, 256),
         (16, 256, 256), (19, 256, 512), (21, 512, 512), (23, 512, 512), (25, 512, 512), (28, 512, 512),
         (30, 512, 512), (32, 512, 512), (34, 512, 512)]
POOL_AFTER = (2, 7, 16, 25)
TAPPED = (0, 5, 10, 19, 28)


@pytest.fixture(scope="module")
def vgg_state():
    """A random VGG19 state dict with torchvision's keys: features.* (all 16 convs) plus classifier
    entries, which the loader must ignore."""
    g = torch.Generator().manual_seed(0)
    state = {}
    for idx, cin, cout in CONVS:
        state[f"features.{idx}.weight"] = torch.randn(cout, cin, 3, 3, generator=g) * (2 / (9 * cin)) ** 0.5
        state[f"features.{idx}.bias"] = torch.randn(cout, generator=g) * 0.1
    state["classifier.6.weight"] = torch.randn(10, 4, generator=g)
    return state


@pytest.fixture(scope="module")
def vgg_file(vgg_state, tmp_path_factory):
    path = tmp_path_factory.mktemp("vgg") / "vgg19.pth"
    torch.save(vgg_state, path)
    return path


def reference_taps(state, x):
    """relu1_1 .. relu5_1 computed directly from the state dict."""
    taps = []
    for idx, _, _ in CONVS:
        x = F.relu(F.conv2d(x, state[f"features.{idx}.weight"], state[f"features.{idx}.bias"], padding=1))
        if idx in TAPPED:
            taps.append(x)
        if idx == TAPPED[-1]:
            return taps
        if idx in POOL_AFTER:
            x = F.max_pool2d(x, 2)


def expected_loss(state, x, y):
    return sum(w * (a - b).abs().mean() for w, a, b in zip(LAYER_WEIGHTS, reference_taps(state, x),
                                                            reference_taps(state, y)))


def test_layer_weights_are_the_originals():
    assert LAYER_WEIGHTS == (1 / 32, 1 / 16, 1 / 8, 1 / 4, 1.0)


def test_features_from_a_full_state_dict(vgg_state, vgg_file):
    model = VGG19Features.from_file(vgg_file)
    x = torch.randn(2, 3, 16, 24)
    with torch.no_grad():
        got, want = model(x), reference_taps(vgg_state, x)
    assert [g.shape[1] for g in got] == [64, 128, 256, 512, 512]
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)
    assert not any(p.requires_grad for p in model.parameters())
    model.train()
    assert not model.training


def test_a_features_only_file_loads(vgg_state, tmp_path):
    path = tmp_path / "features.pth"
    # keys "N.weight", as saved from vgg19().features.state_dict()
    torch.save({k[len("features."):]: v for k, v in vgg_state.items() if k.startswith("features.")}, path)
    model = VGG19Features.from_file(path)
    torch.testing.assert_close(model.features[28].weight, vgg_state["features.28.weight"])


def test_torchvision_vgg19_weights_load_and_match(tmp_path):
    torchvision = pytest.importorskip("torchvision")
    torch.manual_seed(0)
    tv_features = torchvision.models.vgg.make_layers(torchvision.models.vgg.cfgs["E"]).eval()
    path = tmp_path / "tv.pth"
    torch.save({f"features.{k}": v for k, v in tv_features.state_dict().items()}, path)
    model = VGG19Features.from_file(path)
    x = torch.randn(1, 3, 32, 32)
    with torch.no_grad():
        got = model(x)
        want = []
        for i, layer in enumerate(tv_features[:30]):
            x = layer(x)
            if i in (1, 6, 11, 20, 29):
                want.append(x.clone())  # torchvision's ReLUs are in place
    for g, w in zip(got, want):
        torch.testing.assert_close(g, w)


def test_vgg_loss_value_and_gradients(vgg_state, vgg_file):
    loss_fn = VGGLoss(vgg_file)
    assert loss_fn.enabled
    x = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    y = (torch.rand(1, 3, 32, 32) * 2 - 1).requires_grad_()
    loss = loss_fn(x, y)
    with torch.no_grad():
        want = expected_loss(vgg_state, x, y)  # [-1, 1] fed as is, as the original does
    torch.testing.assert_close(loss, want)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert y.grad is None  # the target is detached, as in the original
    assert loss_fn(x, x).item() == 0.0


def test_vgg_loss_imagenet_normalisation_option(vgg_state, vgg_file):
    x, y = torch.rand(1, 3, 16, 16) * 2 - 1, torch.rand(1, 3, 16, 16) * 2 - 1
    mean = torch.tensor([0.485, 0.456, 0.406]).view(1, 3, 1, 1)
    std = torch.tensor([0.229, 0.224, 0.225]).view(1, 3, 1, 1)
    with torch.no_grad():
        got = VGGLoss(vgg_file, normalize_input=True)(x, y)
        want = expected_loss(vgg_state, ((x + 1) / 2 - mean) / std, ((y + 1) / 2 - mean) / std)
    torch.testing.assert_close(got, want)


def test_vgg_loss_halves_inputs_wider_than_1024(vgg_state, vgg_file):
    x, y = torch.rand(1, 3, 32, 1030) * 2 - 1, torch.rand(1, 3, 32, 1030) * 2 - 1
    with torch.no_grad():
        got = VGGLoss(vgg_file)(x, y)
        want = expected_loss(vgg_state, F.avg_pool2d(x, 2), F.avg_pool2d(y, 2))
    torch.testing.assert_close(got, want)


def test_vgg_loss_without_weights_is_disabled_and_says_so(caplog):
    with caplog.at_level(logging.WARNING, logger="vid2vid_fast"):
        loss_fn = VGGLoss()
    assert not loss_fn.enabled
    assert "VGG perceptual loss disabled" in caplog.text
    x = torch.rand(1, 3, 8, 8, requires_grad=True)
    assert loss_fn(x, torch.rand(1, 3, 8, 8)).item() == 0.0
    assert list(loss_fn.parameters()) == []


def test_wrong_weight_files_are_refused(vgg_state, tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        VGGLoss(tmp_path / "missing.pth")
    other = tmp_path / "other.pth"
    torch.save({"conv.weight": torch.zeros(1)}, other)
    with pytest.raises(ValueError, match="not a torchvision VGG19 state dict"):
        VGGLoss(other)
    wrong_shape = tmp_path / "wrong_shape.pth"
    state = dict(vgg_state)
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
