"""Argument checks shared by every backend: each error names the argument and what was expected."""

import torch

PADDING_MODES = ("border", "zeros")


def check_padding_mode(padding_mode):
    if padding_mode not in PADDING_MODES:
        raise ValueError(f"padding_mode must be one of {PADDING_MODES}, got {padding_mode!r}")


def _check_float_4d(t, name):
    if not isinstance(t, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
    if t.dim() != 4:
        raise ValueError(f"{name} must be a 4-d tensor (B, C, H, W), got shape {tuple(t.shape)}")
    if not t.is_floating_point():
        raise TypeError(f"{name} must be a floating point tensor, got {t.dtype}")


def check_image_and_flow(img, flow, img_name):
    _check_float_4d(img, img_name)
    _check_float_4d(flow, "flow")
    if flow.shape[1] != 2:
        raise ValueError(f"flow must have 2 channels (dx, dy), got shape {tuple(flow.shape)}")
    b, _, h, w = img.shape
    if (flow.shape[0], flow.shape[2], flow.shape[3]) != (b, h, w):
        raise ValueError(
            f"flow must have shape ({b}, 2, {h}, {w}) to match {img_name} {tuple(img.shape)}, "
            f"got {tuple(flow.shape)}"
        )
    _check_same_kind(flow, "flow", img, img_name)


def check_like(t, name, like, like_name, channels=None):
    """t must be (B, channels or C, H, W) like `like`, with its dtype and device."""
    _check_float_4d(t, name)
    b, c, h, w = like.shape
    allowed = (c,) if channels is None else channels
    if t.shape[0] != b or t.shape[2:] != like.shape[2:] or t.shape[1] not in allowed:
        want = " or ".join(f"({b}, {k}, {h}, {w})" for k in allowed)
        raise ValueError(f"{name} must have shape {want} to match {like_name}, got {tuple(t.shape)}")
    _check_same_kind(t, name, like, like_name)


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
