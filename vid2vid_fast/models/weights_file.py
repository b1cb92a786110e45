"""Reading files of weights the user names (never downloaded), safely: ``torch.load(weights_only=True)``
only, with errors that name the file and say why it was not loaded."""

import os
import re

import torch

from vid2vid_fast.errors import MissingFileError, UserError


class WeightsFileError(UserError, ValueError):
    """A weights or checkpoint file cannot be loaded safely, or does not hold what was expected."""


# torch's weights_only unpickler refuses a pickle that names a function or class to import or call
# with one of these messages (their wording differs between torch releases); other refusals mean the
# bytes are not a pickle at all.
_REFUSED_CODE = re.compile(r"unsupported global|call reduce|can only (build|create)", re.IGNORECASE)
# lines of torch's message that are advice, not the reason
_ADVICE = ("Weights only load failed", "Please file an issue", "Check the documentation", "Re-running")


def read_weights_only(path, what, map_location="cpu"):
    """``torch.load(path, weights_only=True)``. ``what`` says what the file is in errors ("VGG19
    weights", "checkpoint"). A missing file raises ``MissingFileError``; a file that only full unpickling
    could load (it would import or call code) is refused as such; an unreadable one names the reason."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise MissingFileError(f"{what} file {path} does not exist")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as error:  # noqa: BLE001 - torch raises many types for a damaged or unsafe file
        text = str(error)
        if _REFUSED_CODE.search(text):
            named = re.search(r"GLOBAL (\S+)", text)
            raise WeightsFileError(
                f"{what} file {path} refused: loading it would execute code (pickle"
                f"{f': it refers to {named.group(1)}' if named else ''}); torch.load(weights_only=True) "
                "reads only tensors and plain containers"
            ) from error
        reasons = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith(_ADVICE)]
        reason = reasons[0] if reasons else type(error).__name__
        raise WeightsFileError(f"{what} file {path} cannot be read (truncated or corrupt?): {reason}") from error


def load_weights_file(path, what):
    """The state dict (name -> tensor) stored in `path`, read onto the CPU; a checkpoint dict holding
    it under "state_dict" is unwrapped. `what` says what the file is in errors (e.g. "VGG19 weights")."""
    state = read_weights_only(path, what)
    if isinstance(state, dict) and isinstance(state.get("state_dict"), dict):
        state = state["state_dict"]
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsFileError(
            f"{what} file {path} must hold a non-empty state dict of tensors, got {type(state).__name__}"
        )
    return state
