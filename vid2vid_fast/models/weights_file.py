"""Reading a pretrained network's weights from a file the user names (never downloaded)."""

import os

import torch


def load_weights_file(path, what):
    """The state dict (name -> tensor) stored in `path`, read with torch.load(weights_only=True) onto
    the CPU; a checkpoint dict holding it under "state_dict" is unwrapped. `what` names the file in
    errors (e.g. "VGG19 weights")."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"{what} file {path!r} does not exist")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise ValueError(
            f"{what} file {path!r} could not be read as a plain state dict with "
            f"torch.load(weights_only=True): {e}"
        ) from e
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise ValueError(
            f"{what} file {path!r} must hold a non-empty state dict of tensors, got {type(state).__name__}"
        )
    return state
