"""torch.library integration: opcheck, torch.compile(fullgraph=True) with no graph break, autocast."""

import pytest
import torch
import torch.nn.functional as F

import vid2vid_fast as v2v
from cases import OPS, compiled_backend_params, device_of, make_flow

pytestmark = pytest.mark.skipif(
    "cpu" not in v2v.available_backends("cpu"), reason="the compiled extension is not built"
)


@pytest.mark.parametrize("backend", compiled_backend_params())
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=str)
@pytest.mark.parametrize("layout", ["contiguous", "channels_last"])
def test_opcheck(op, backend, dtype, layout):
    make_inputs = OPS[op][0]
    torch.manual_seed(1)
    inputs = [t.requires_grad_(True) for t in make_inputs((2, 3, 5, 7), dtype, device_of(backend), layout)]
    namespace = torch.ops.vid2vid_fast_triton if backend == "triton" else torch.ops.vid2vid_fast
    forward = getattr(namespace, op).default
    torch.library.opcheck(forward, (*inputs, "zeros"))
    grad_out = torch.randn_like(forward(*inputs, "zeros"))
    backward = getattr(namespace, f"{op}_backward").default
    mask = [True] * len(inputs)
    detached = [t.detach() for t in inputs]
    torch.library.opcheck(backward, (grad_out, *detached, "border", mask))
    torch.library.opcheck(backward, (grad_out, *detached, "border", [False] + mask[1:]))


class CompositeStep(torch.nn.Module):
    """A vid2vid-like step: a conv predicts flow, weight and raw frame; warp_blend composites them with
    the previous frame; the flow-warp loss compares a warped real frame with the current one."""

    def __init__(self, channels=3):
        super().__init__()
        self.head = torch.nn.Conv2d(2 * channels, channels + 3, 3, padding=1)

    def forward(self, prev, real_prev, real, conf):
        out = self.head(torch.cat((prev, real), dim=1))
        raw = torch.tanh(out[:, :3])
        flow = out[:, 3:5] * 4
        weight = torch.sigmoid(out[:, 5:6])
        fake = v2v.warp_blend(prev, flow, raw, weight)
        loss = F.l1_loss(fake, real) + v2v.masked_warp_l1(real_prev, flow, real, conf)
        return fake, loss


def composite_inputs(device="cpu"):
    torch.manual_seed(4)
    prev, real_prev, real = (torch.rand(2, 3, 16, 20, device=device) * 2 - 1 for _ in range(3))
    conf = (torch.rand(2, 1, 16, 20, device=device) > 0.3).float()
    return prev, real_prev, real, conf


def test_compile_fullgraph_matches_eager():
    torch._dynamo.reset()
    model = CompositeStep()
    inputs = composite_inputs()
    fake, loss = model(*inputs)
    loss.backward()
    eager_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    compiled = torch.compile(model, fullgraph=True)
    cfake, closs = compiled(*inputs)
    closs.backward()
    assert torch.allclose(cfake, fake, atol=1e-5) and torch.allclose(closs, loss, atol=1e-5)
    for g, eg in zip((p.grad for p in model.parameters()), eager_grads):
        assert torch.allclose(g, eg, atol=1e-5, rtol=1e-4)
    explanation = torch._dynamo.explain(model)(*inputs)
    assert explanation.graph_break_count == 0 and explanation.graph_count == 1


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=str)
def test_autocast_runs_in_autocast_dtype(dtype):
    model = CompositeStep()
    inputs = composite_inputs()
    with torch.autocast("cpu", dtype=dtype):
        fake, loss = model(*inputs)
    assert fake.dtype == dtype
    loss.backward()
    assert all(p.grad is not None and p.grad.isfinite().all() for p in model.parameters())
    with torch.no_grad():
        ref_fake, _ = model(*inputs)
    assert (fake.float() - ref_fake).abs().max() < 0.1


def test_meta_tensors_give_shapes():
    img = torch.empty(2, 3, 8, 9, device="meta")
    flow = make_flow(2, 8, 9).to("meta")
    assert torch.ops.vid2vid_fast.flow_warp(img, flow, "border").shape == img.shape
    assert torch.ops.vid2vid_fast.masked_warp_l1(img, flow, img, img[:, :1], "border").shape == ()
