"""The optimizers of a run: torch.optim.Adam in the implementation the speed switches chose.

torch's fused Adam on the CPU copies every gradient that is not contiguous (its kernel wrapper calls
``grad.contiguous()``), although its kernel only reads parameters, gradients and moments element by element
through their data pointers, which is right for any layout they share. The fast configuration keeps the
convolution weights channels_last, so that copy (a transposition) ran for most of the parameters at every
step and took more time than the update itself. ``MemoryOrderAdam`` hands the fused kernel each tensor as
a 1-D view of its elements in memory order instead: the same update of the same elements, with no copy.
"""

import torch


def memory_order(t: torch.Tensor) -> torch.Tensor:
    """A dense tensor as a 1-D view of its elements in the order they lie in memory."""
    dims = sorted(range(t.dim()), key=t.stride, reverse=True)
    return t.permute(dims).view(-1)


def _like(param: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``values`` (``param``'s elements in memory order, or in ``param``'s shape) in ``param``'s shape and
    layout."""
    out = torch.empty_like(param, dtype=values.dtype, device=values.device)
    (memory_order(out) if values.dim() == 1 else out).copy_(values)
    return out


class MemoryOrderAdam(torch.optim.Adam):
    """torch.optim.Adam over memory-order views of ``params`` (a list of dense tensors, one parameter
    group). ``step`` first gives each view its parameter's gradient (as a view too), so a GradScaler's
    ``unscale_``, which runs before, would not see them: use torch.optim.Adam with gradient scaling.
    ``state_dict`` and ``load_state_dict`` use the moments in each parameter's own shape, as
    torch.optim.Adam does, so checkpoints are the same for both."""

    def __init__(self, params, **options):
        self.owners = list(params)
        super().__init__([memory_order(p.detach()) for p in self.owners], **options)

    @torch.no_grad()
    def step(self, closure=None):
        for owner, view in zip(self.owners, self.param_groups[0]["params"]):
            grad = owner.grad
            if grad is not None and grad.stride() != owner.stride():
                grad = _like(owner, grad)  # autograd gives the parameter's strides; a hand-set one may not
            view.grad = None if grad is None else memory_order(grad)
        return super().step(closure)

    def zero_grad(self, set_to_none: bool = True):
        super().zero_grad(set_to_none)
        for owner in self.owners:
            if owner.grad is not None:
                if set_to_none:
                    owner.grad = None
                else:
                    owner.grad.zero_()

    def state_dict(self):
        state = super().state_dict()
        # the live state's dicts are in there: replace them, do not change them
        state["state"] = {
            index: {key: _like(self.owners[index], value) if key != "step" and torch.is_tensor(value) else value
                    for key, value in per_param.items()}
            for index, per_param in state["state"].items()
        }
        return state

    def load_state_dict(self, state_dict):
        state = dict(state_dict)
        state["state"] = {
            index: {key: memory_order(_like(self.owners[index], value))
                    if key != "step" and torch.is_tensor(value) else value
                    for key, value in per_param.items()}
            for index, per_param in state_dict["state"].items()
        }
        super().load_state_dict(state)


def make_adam(params, implementation: str, device: torch.device, grad_scaling: bool = False,
              **options) -> torch.optim.Adam:
    """Adam over ``params`` in ``implementation`` ("fused", "foreach" or "default": torch's own choice);
    ``grad_scaling``: a GradScaler will unscale the gradients before each step."""
    if implementation == "fused" and device.type == "cpu" and not grad_scaling:
        return MemoryOrderAdam(params, fused=True, **options)
    choice = {"fused": {"fused": True}, "foreach": {"foreach": True}, "default": {}}[implementation]
    return torch.optim.Adam(params, **choice, **options)
