import pytest
import torch
import torch.nn.functional as F

from vid2vid_fast import flow_warp
from vid2vid_fast.models.flow_source import (
    ClassicalFlow,
    FlowSource,
    RAFTFlow,
    flow_confidence,
    make_flow_source,
)

pytest.importorskip("cv2")


def texture(batch, height, width, seed=0):
    """A smooth random RGB texture in [-1, 1] with detail at two scales (something flow can lock on)."""
    g = torch.Generator().manual_seed(seed)
    coarse = F.interpolate(torch.randn(batch, 3, height // 4, width // 4, generator=g), size=(height, width),
                           mode="bicubic", align_corners=False)
    fine = F.interpolate(torch.randn(batch, 3, height // 2, width // 2, generator=g), size=(height, width),
                         mode="bilinear", align_corners=False)
    return (coarse + 0.3 * fine).clamp(-1, 1)


def test_flow_confidence_threshold_on_squared_channel_sum():
    prev = torch.zeros(1, 3, 1, 3)
    cur = prev.clone()
    cur[..., 1] = 0.1  # Σ_c 0.1² = 0.03 >= 0.02: unreliable
    cur[..., 2] = 0.05  # Σ_c 0.05² = 0.0075 < 0.02: reliable
    conf = flow_confidence(cur, prev, torch.zeros(1, 2, 1, 3))
    torch.testing.assert_close(conf, torch.tensor([[[[1.0, 0.0, 1.0]]]]))
    # the warp is applied: a one-pixel shift of a ramp is matched exactly
    ramp = torch.arange(4.0).view(1, 1, 1, 4).expand(1, 3, 1, 4) / 4
    flow = torch.zeros(1, 2, 1, 4)
    flow[:, 0] = 1
    conf = flow_confidence(ramp[..., [1, 2, 3, 3]], ramp, flow)
    assert conf.min().item() == 1.0
    unwarped = flow_confidence(ramp[..., [1, 2, 3, 3]], ramp, torch.zeros(1, 2, 1, 4))
    torch.testing.assert_close(unwarped, torch.tensor([[[[0.0, 0.0, 0.0, 1.0]]]]))  # 3 · 0.25² = 0.1875


@pytest.mark.parametrize("shift", [(1.7, -2.3), (-0.4, 3.6)])
def test_classical_flow_recovers_a_known_translation(shift):
    prev = texture(2, 96, 128)
    true_flow = torch.tensor(shift).view(1, 2, 1, 1).expand(2, 2, 96, 128).contiguous()
    cur = flow_warp(prev, true_flow)  # cur(x) = prev(x + shift): the contract's direction
    flow, conf = ClassicalFlow()(cur, prev)
    assert flow.shape == (2, 2, 96, 128) and conf.shape == (2, 1, 96, 128)
    assert flow.dtype == cur.dtype and not flow.requires_grad
    with torch.autocast("cpu", dtype=torch.bfloat16):
        torch.testing.assert_close(ClassicalFlow()(cur, prev), (flow, conf))  # autocast does not apply
    inner = (flow - true_flow)[:, :, 8:-8, 8:-8]  # borders see content that left the frame
    assert inner.abs().max().item() < 0.25
    assert set(conf.unique().tolist()) <= {0.0, 1.0}
    assert conf[:, :, 8:-8, 8:-8].mean().item() > 0.95


def test_flow_source_accepts_sequences_and_checks_inputs():
    src = ClassicalFlow(preset="ultrafast", workers=2)
    frames = texture(6, 32, 40).view(2, 3, 3, 32, 40)
    flow, conf = src(frames[:, 1:], frames[:, :-1])
    assert flow.shape == (2, 2, 2, 32, 40) and conf.shape == (2, 2, 1, 32, 40)
    one_flow, _ = src(frames[1, 2:], frames[1, 1:2])
    torch.testing.assert_close(flow[1, 1], one_flow[0])
    with pytest.raises(ValueError, match="image_prev must have the shape"):
        src(frames[0, 1:], frames[0, :1])
    with pytest.raises(ValueError, match=r"image_t must be a \(B, 3, H, W\)"):
        src(torch.zeros(1, 1, 8, 8), torch.zeros(1, 1, 8, 8))
    with pytest.raises(ValueError, match="preset"):
        ClassicalFlow(preset="slow")
    with pytest.raises(ValueError, match="workers"):
        ClassicalFlow(workers=0)


def real_frames(name, first, count):
    """`count` consecutive RGB frames of a bundled clip as (count, 3, H, W) in [-1, 1]."""
    av = pytest.importorskip("av")
    from vid2vid_fast.data import bundled_clip

    try:
        path = bundled_clip(name)
    except FileNotFoundError as error:
        pytest.skip(str(error))
    frames = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= first:
                frames.append(torch.from_numpy(frame.to_ndarray(format="rgb24")).permute(2, 0, 1))
            if len(frames) == count:
                break
    return torch.stack(frames).float() / 127.5 - 1


def test_classical_flow_on_real_footage():
    # bikes.mp4 frames 60-63: a fast pan (with a zero flow only 79% of pixels pass the conf test)
    frames = real_frames("bikes.mp4", 60, 4)
    cur, prev = frames[1:], frames[:-1]
    flow, conf = ClassicalFlow()(cur, prev)
    without = (cur - prev).abs().mean().item()
    with_flow = (cur - flow_warp(prev, flow)).abs().mean().item()
    assert with_flow < 0.35 * without  # measured: 0.017 vs 0.075
    assert conf.mean().item() > 0.93  # measured: 0.972 (zero flow: 0.788)
    # smooth regions (small local gradient, 46% of the pixels) are reliably matched
    gx = (cur[..., :, 1:] - cur[..., :, :-1]).abs().sum(1)[..., :-1, :]
    gy = (cur[..., 1:, :] - cur[..., :-1, :]).abs().sum(1)[..., :, :-1]
    smooth = (gx + gy) < 0.05
    assert smooth.float().mean().item() > 0.2
    assert conf[:, 0, :-1, :-1][smooth].mean().item() > 0.97  # measured: 0.992 (zero flow: 0.875)


@pytest.fixture(scope="module")
def raft_small_file(tmp_path_factory):
    optical_flow = pytest.importorskip("torchvision.models.optical_flow")
    torch.manual_seed(0)
    model = optical_flow.raft_small(weights=None, progress=False).eval()
    path = tmp_path_factory.mktemp("raft") / "raft_small.pth"
    torch.save(model.state_dict(), path)
    return path, model


def test_raft_flow_loads_a_checkpoint_and_keeps_the_direction_contract(raft_small_file):
    path, model = raft_small_file
    src = RAFTFlow(path, num_flow_updates=2)
    assert src.size == "small"
    src.train()
    assert not src.model.training
    frames = texture(2, 122, 126)  # not a multiple of 8: padded (to 128, RAFT's minimum) and cropped back
    cur, prev = frames[:1], frames[1:]
    flow, conf = src(cur, prev)
    assert flow.shape == (1, 2, 122, 126) and conf.shape == (1, 1, 122, 126)
    assert set(conf.unique().tolist()) <= {0.0, 1.0}
    pad = (0, 2, 0, 6)
    with torch.no_grad():
        forward = model(F.pad(cur, pad, mode="replicate"), F.pad(prev, pad, mode="replicate"), num_flow_updates=2)
        backward = model(F.pad(prev, pad, mode="replicate"), F.pad(cur, pad, mode="replicate"), num_flow_updates=2)
    # RAFT(img1, img2) gives img1(x) ≈ img2(x + f): frame t must be img1
    torch.testing.assert_close(flow, forward[-1][..., :122, :126])
    assert not torch.allclose(flow, backward[-1][..., :122, :126])


def test_raft_flow_tells_large_from_small_and_refuses_wrong_files(raft_small_file, tmp_path):
    optical_flow = pytest.importorskip("torchvision.models.optical_flow")
    large = tmp_path / "raft_large.pth"
    torch.save(optical_flow.raft_large(weights=None, progress=False).state_dict(), large)
    assert RAFTFlow(large).size == "large"
    model = raft_small_file[1]
    broken = tmp_path / "broken.pth"
    state = model.state_dict()
    del state["update_block.flow_head.conv2.weight"]
    torch.save(state, broken)
    with pytest.raises(ValueError, match="does not match torchvision's raft_small"):
        RAFTFlow(broken)
    with pytest.raises(FileNotFoundError, match="RAFT checkpoint file"):
        RAFTFlow(tmp_path / "missing.pth")


def test_make_flow_source(raft_small_file):
    assert isinstance(make_flow_source("classical"), ClassicalFlow)
    src = make_flow_source("raft", raft_small_file[0])
    assert isinstance(src, RAFTFlow) and isinstance(src, FlowSource)
    with pytest.raises(ValueError, match="needs checkpoint"):
        make_flow_source("raft")
    with pytest.raises(ValueError, match="takes no checkpoint"):
        make_flow_source("classical", raft_small_file[0])
    with pytest.raises(ValueError, match="flow source must be one of"):
        make_flow_source("flownet3")


@pytest.mark.cuda
def test_flow_sources_on_gpu_tensors(raft_small_file):
    frames = texture(2, 128, 128).cuda()
    flow, conf = ClassicalFlow()(frames[:1], frames[1:])
    assert flow.device == conf.device == frames.device
    src = RAFTFlow(raft_small_file[0], num_flow_updates=2)
    with pytest.raises(ValueError, match="use .to"):
        src(frames[:1], frames[1:])
    flow, conf = src.cuda()(frames[:1], frames[1:])
    assert flow.shape == (1, 2, 128, 128) and conf.device == frames.device


def test_a_flow_source_must_implement_estimate():
    class NoEstimate(FlowSource):
        pass

    with pytest.raises(TypeError, match="estimate"):
        NoEstimate()

    class Zero(FlowSource):
        def estimate(self, image_t, image_prev):
            return image_t.new_zeros(image_t.shape[0], 2, *image_t.shape[2:])

    image = torch.rand(1, 3, 4, 5) * 2 - 1
    flow, conf = Zero()(image, image)
    assert flow.abs().max() == 0 and conf.min() == 1  # identical frames, zero flow: every pixel reliable
