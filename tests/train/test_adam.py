"""MemoryOrderAdam: torch's fused Adam on memory-order views makes the same update as torch's fused Adam
on the parameters themselves, with the same checkpoints, and copies no gradient."""

import copy

import pytest
import torch
from torch import nn
from torch.profiler import ProfilerActivity, profile

from vid2vid_fast.train.adam import MemoryOrderAdam, make_adam, memory_order

OPTIONS = dict(lr=1e-2, betas=(0.5, 0.999))


def channels_last_model(seed=0):
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Conv2d(5, 8, 3), nn.BatchNorm2d(8), nn.Conv2d(8, 1, 4), nn.ConvTranspose2d(1, 3, 3))
    return model.to(memory_format=torch.channels_last)


def train_steps(model, optimizer, steps, seed=1):
    torch.manual_seed(seed)
    for _ in range(steps):
        x = torch.randn(2, 5, 12, 11).contiguous(memory_format=torch.channels_last)
        optimizer.zero_grad(set_to_none=True)
        model(x).square().mean().backward()
        optimizer.step()


def test_memory_order_views_every_layout():
    t = torch.arange(2 * 3 * 4 * 5.0).reshape(2, 3, 4, 5)
    cl = t.contiguous(memory_format=torch.channels_last)
    assert memory_order(cl)._base is cl or memory_order(cl).data_ptr() == cl.data_ptr()
    assert torch.equal(memory_order(cl), t.permute(0, 2, 3, 1).reshape(-1))
    assert torch.equal(memory_order(t), t.reshape(-1))
    assert torch.equal(memory_order(torch.tensor(3.0)), torch.tensor([3.0]))


def test_the_update_is_torchs_fused_adam():
    plain, ours = channels_last_model(), channels_last_model()
    reference = torch.optim.Adam(plain.parameters(), fused=True, **OPTIONS)
    optimizer = make_adam(ours.parameters(), "fused", torch.device("cpu"), **OPTIONS)
    assert isinstance(optimizer, MemoryOrderAdam)
    train_steps(plain, reference, 4)
    train_steps(ours, optimizer, 4)
    for name, p in plain.named_parameters():
        q = ours.get_parameter(name)
        assert torch.equal(p, q), name
        assert q.stride() == p.stride() and q.grad is not None
    saved, expected = optimizer.state_dict(), reference.state_dict()
    assert saved["param_groups"] == expected["param_groups"]
    for index, state in expected["state"].items():
        for key, value in state.items():
            assert saved["state"][index][key].shape == value.shape, (index, key)
            assert torch.equal(saved["state"][index][key], value), (index, key)


@pytest.mark.parametrize("direction", ["plain to ours", "ours to plain"])
def test_checkpoints_move_between_implementations(direction):
    first, second = channels_last_model(), channels_last_model()
    plain = lambda m: torch.optim.Adam(m.parameters(), fused=True, **OPTIONS)  # noqa: E731
    ours = lambda m: MemoryOrderAdam(m.parameters(), fused=True, **OPTIONS)  # noqa: E731
    save, load = (plain, ours) if direction == "plain to ours" else (ours, plain)
    optimizer = save(first)
    train_steps(first, optimizer, 2)
    second.load_state_dict(first.state_dict())
    resumed = load(second)
    resumed.load_state_dict(copy.deepcopy(optimizer.state_dict()))
    train_steps(first, optimizer, 2, seed=5)
    train_steps(second, resumed, 2, seed=5)
    for p, q in zip(first.parameters(), second.parameters()):
        assert torch.equal(p, q)


def test_the_step_copies_no_gradient():
    model = channels_last_model()
    optimizer = MemoryOrderAdam(model.parameters(), fused=True, **OPTIONS)
    train_steps(model, optimizer, 1)
    model(torch.randn(2, 5, 12, 11).contiguous(memory_format=torch.channels_last)).sum().backward()
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        optimizer.step()
    # (the step counters are 0-d tensors read with .item(): those copies are not gradients)
    copies = [(e.name, e.input_shapes[0]) for e in prof.events()
              if e.name in ("aten::clone", "aten::copy_") and e.input_shapes[0]]
    assert copies == []


def test_zero_grad_clears_the_parameters_gradients():
    model = channels_last_model()
    optimizer = MemoryOrderAdam(model.parameters(), fused=True, **OPTIONS)
    train_steps(model, optimizer, 1)
    optimizer.zero_grad(set_to_none=False)
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters())
    optimizer.zero_grad()
    assert all(p.grad is None for p in model.parameters())
    assert all(v.grad is None for v in optimizer.param_groups[0]["params"])


def test_a_parameter_frozen_at_first_trains_once_unfrozen():
    plain, ours = channels_last_model(), channels_last_model()
    for model in (plain, ours):
        model[0].weight.requires_grad_(False)  # as the generator's coarse scales under niter_fix_global
    reference = torch.optim.Adam(plain.parameters(), fused=True, **OPTIONS)
    optimizer = MemoryOrderAdam(ours.parameters(), fused=True, **OPTIONS)
    train_steps(plain, reference, 1)
    train_steps(ours, optimizer, 1)
    for model in (plain, ours):
        model[0].weight.requires_grad_(True)
    train_steps(plain, reference, 2, seed=3)
    train_steps(ours, optimizer, 2, seed=3)
    assert not torch.equal(ours[0].weight, channels_last_model()[0].weight)
    for p, q in zip(plain.parameters(), ours.parameters()):
        assert torch.equal(p, q)


def test_gradient_scaling_keeps_torchs_adam():
    model = channels_last_model()
    cpu = torch.device("cpu")
    assert type(make_adam(model.parameters(), "fused", cpu, grad_scaling=True, **OPTIONS)) is torch.optim.Adam
    assert type(make_adam(model.parameters(), "default", cpu, **OPTIONS)) is torch.optim.Adam
