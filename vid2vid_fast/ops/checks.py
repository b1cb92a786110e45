"""Argument checks shared by every backend: each error names the argument and what was expected."""

import torch


def _check_float_4d(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(f"{name} must be a 4-d tensor (B, C, H, W), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got {t.dtype}")


def check_like(t, name, like, like_name, channels=None):
    """t must be (B, channels or C, H, W) like `like`, with its dtype and device."""
    _check_float_4d(t, name)
    b, c, h, w = like.shape
    allowed = (c,) if channels is None else channels
    if t.shape[0] != b or t.shape[2:] != like.shape[2:] or t.shape[1] not in allowed:
        want = " or ".join(f"({b}, {k}, {h}, {w})" for k in allowed)
        raise ValueError(f"{name} must have shape {want} to match {like_name}, got {tuple(t.shape)}")
    _check_same_kind(t, name, like, like_name)


def check_op_inputs(spec, tensors):
    """The public functions' checks of an op's inputs (ops/spec.py): every tensor is (B, channels, H, W) with
    the sampled image's H, W, dtype and device, where a batch of 1 broadcasts over the others' batch. Returns
    that batch."""
    for t, spec_input in zip(tensors, spec.inputs):
        _check_float_4d(t, spec_input.name)
    img, img_name = tensors[0], spec.inputs[0].name
    batches = {t.shape[0] for t in tensors} - {1}
    if len(batches) > 1:
        found = ", ".join(f"{i.name} {t.shape[0]}" for t, i in zip(tensors, spec.inputs))
        raise ValueError(f"the batch sizes must be equal, or 1 to broadcast; got {found}")
    batch = batches.pop() if batches else 1
    _, c, h, w = img.shape
    for t, spec_input in zip(tensors[1:], spec.inputs[1:]):
        allowed = spec_input.allowed_channels(c)
        if t.shape[1] not in allowed or t.shape[2:] != img.shape[2:]:
            if spec_input.channels == "flow" and t.shape[1] != 2:
                raise ValueError(f"flow must have 2 channels (dx, dy), got shape {tuple(t.shape)}")
            want = " or ".join(f"({t.shape[0]}, {k}, {h}, {w})" for k in allowed)
            raise ValueError(f"{spec_input.name} must have shape {want} to match {img_name} {tuple(img.shape)}, "
                             f"got {tuple(t.shape)}")
        _check_same_kind(t, spec_input.name, img, img_name)
    return batch


def _check_same_kind(t, name, like, like_name):
    if t.device != like.device:
        raise ValueError(f"{name} is on {t.device} but {like_name} is on {like.device}")
    if t.dtype != like.dtype:
        raise TypeError(f"{name} has dtype {t.dtype} but {like_name} has {like.dtype}; they must match")


def autocast_inputs(*tensors):
    """Under torch.autocast, runs the op in the autocast dtype (inputs of mixed precision are cast down;
    nothing is cast up)."""
    first = tensors[0]
    if not isinstance(first, torch.Tensor) or first.device.type not in ("cpu", "cuda"):
        return tensors
    if not torch.is_autocast_enabled(first.device.type):
        return tensors
    dtype = torch.get_autocast_dtype(first.device.type)
    return tuple(
        t.to(dtype) if isinstance(t, torch.Tensor) and t.dtype == torch.float32 else t for t in tensors
    )
