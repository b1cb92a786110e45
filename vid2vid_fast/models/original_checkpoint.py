"""Loading state dicts saved by the original NVIDIA/vid2vid code into our modules.

The original saved one file per network (`<epoch>_net_G0.pth`, `_G1`, ..., `_D.pth`, `_D_T0.pth`, ...),
each the plain state_dict of one network. Our modules keep the original layer order inside every
nn.Sequential, so translating a key is renaming its prefix (and, for the discriminators, mapping the
original's per-scale names onto pyramid levels).
"""

import re
from collections.abc import Mapping

import torch

from .discriminator import MultiscaleDiscriminator, NLayerDiscriminator, TemporalDiscriminators
from .generator import CompositeGenerator, CompositeLocalGenerator, Vid2VidGenerator
from .weights_file import read_weights_only

# Original attribute name -> ours, for CompositeGenerator and CompositeLocalGenerator.
_GENERATOR_PREFIXES = {
    "model_down_seg": "label_encoder",
    "model_down_img": "prev_encoder",
    "model_res_img": "img_res",
    "model_up_img": "img_up",
    "model_final_img": "img_head",
    "model_res_flow": "flow_res",
    "model_up_flow": "flow_up",
    "model_final_flow": "flow_head",
    "model_final_w": "weight_head",
    "indv_down": "fg_down",
    "indv_res": "fg_res",
    "indv_up": "fg_up",
    "indv_final": "fg_head",
}
# Checkpoints from PyTorch 0.4.0 predate BatchNorm's num_batches_tracked buffer; ours keeps its value.
_OPTIONAL_SUFFIX = ".num_batches_tracked"


def _generator_key(key):
    head, dot, rest = key.partition(".")
    if head not in _GENERATOR_PREFIXES or not dot:
        return None
    return _GENERATOR_PREFIXES[head] + "." + rest.replace(".conv_block.", ".body.")


def _flat_index_map(netD):
    """The original's non-interm PatchGAN is one flat Sequential: flat index -> (group, index in group)."""
    flat = {}
    for group_index, group in enumerate(netD.layers):
        for inner in range(len(group)):
            flat[len(flat)] = (group_index, inner)
    return flat


def _nlayer_key(key, netD, prefix=""):
    match = re.fullmatch(r"model(\d+)\.(\d+)\.(.+)", key)
    if match and netD.get_interm_feat:
        group, inner, rest = match.groups()
        return f"{prefix}layers.{group}.{inner}.{rest}"
    match = re.fullmatch(r"model\.(\d+)\.(.+)", key)
    if match and not netD.get_interm_feat:
        position = _flat_index_map(netD).get(int(match.group(1)))
        if position is None:
            return None
        return f"{prefix}layers.{position[0]}.{position[1]}.{match.group(2)}"
    return None


def _multiscale_key(key, netD):
    # The original's sub-D "scale i" runs at pyramid level num_D - 1 - i.
    num_D = netD.num_D
    match = re.fullmatch(r"scale(\d+)_layer(\d+)\.(.+)", key)
    if match and netD.get_interm_feat:
        scale, group, rest = match.groups()
        if int(scale) >= num_D:
            return None
        level = num_D - 1 - int(scale)
        return _nlayer_key(f"model{group}.{rest}", netD.discriminators[level], f"discriminators.{level}.")
    match = re.fullmatch(r"layer(\d+)\.(.+)", key)
    if match and not netD.get_interm_feat:
        scale, rest = match.groups()
        if int(scale) >= num_D:
            return None
        level = num_D - 1 - int(scale)
        return _nlayer_key(f"model.{rest}", netD.discriminators[level], f"discriminators.{level}.")
    return None


def _translator(module):
    if isinstance(module, (CompositeGenerator, CompositeLocalGenerator)):
        return _generator_key
    if isinstance(module, MultiscaleDiscriminator):
        return lambda key: _multiscale_key(key, module)
    if isinstance(module, NLayerDiscriminator):
        return lambda key: _nlayer_key(key, module)
    return None


def _check_tensors(state_dict, what):
    if not isinstance(state_dict, Mapping):
        raise TypeError(f"{what} must be a state dict (a mapping of names to tensors), got "
                        f"{type(state_dict).__name__}")
    for key, value in state_dict.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{what}[{key!r}] must be a tensor, got {type(value).__name__}")


def translate_original_state_dict(module, state_dict):
    """Returns state_dict with the original's key names renamed to module's (values unchanged). Raises
    KeyError naming every original key that has no place in module."""
    translate = _translator(module)
    if translate is None:
        raise TypeError("module must be a CompositeGenerator, CompositeLocalGenerator, NLayerDiscriminator or "
                        f"MultiscaleDiscriminator for a single original state dict, got {type(module).__name__}")
    _check_tensors(state_dict, "state_dict")
    translated, unknown = {}, []
    for key, value in state_dict.items():
        # A state dict saved from a DataParallel wrapper carries this prefix on every key.
        ours = translate(key[len("module."):] if key.startswith("module.") else key)
        if ours is None:
            unknown.append(key)
        else:
            translated[ours] = value
    if unknown:
        raise KeyError(f"original state dict has {len(unknown)} key(s) with no counterpart in "
                       f"{type(module).__name__}: {sorted(unknown)}")
    return translated


def _load_one(module, state_dict):
    translated = translate_original_state_dict(module, state_dict)
    own = module.state_dict()
    missing = [k for k in own if k not in translated and not k.endswith(_OPTIONAL_SUFFIX)]
    unexpected = [k for k in translated if k not in own]
    if missing or unexpected:
        raise KeyError(f"original state dict does not fit {type(module).__name__} (built with other options?): "
                       f"missing {sorted(missing)}; unexpected {sorted(unexpected)}")
    wrong = [f"{k}: original {tuple(v.shape)}, ours {tuple(own[k].shape)}"
             for k, v in translated.items() if v.shape != own[k].shape]
    if wrong:
        raise ValueError(f"original state dict shapes do not fit {type(module).__name__} (built with other "
                         f"options?): {wrong}")
    for key in own:
        translated.setdefault(key, own[key])
    module.load_state_dict(translated, strict=True)


def _load_group(module, state_dicts, children, label):
    if not isinstance(state_dicts, Mapping):
        raise TypeError(f"for a {type(module).__name__}, state_dict must map the original network names "
                        f"({label}0, {label}1, ...) to their state dicts, got {type(state_dicts).__name__}")
    names = [f"{label}{i}" for i in range(len(children))]
    if sorted(state_dicts) != sorted(names):
        raise KeyError(f"{type(module).__name__} needs exactly the original networks {names}, got "
                       f"{sorted(state_dicts)}")
    for name, child in zip(names, children):
        try:
            _load_one(child, state_dicts[name])
        except (KeyError, ValueError, TypeError) as error:
            raise type(error)(f"{name}: {error.args[0]}") from None


def load_original_state_dict(module, state_dict):
    """Loads weights saved by the original vid2vid into module, in place; returns module.

    module: a CompositeGenerator / CompositeLocalGenerator (state_dict = one `net_G<s>` file),
    NLayerDiscriminator / MultiscaleDiscriminator (one `net_D` or `net_D_T<s>` file), Vid2VidGenerator
    (state_dict = {"G0": ..., "G1": ...}, one per spatial scale) or TemporalDiscriminators
    ({"D_T0": ..., "D_T1": ...}). Raises KeyError listing missing and unexpected keys, ValueError for
    shape mismatches; nothing is loaded unless everything fits (for the single-network modules).
    """
    if isinstance(module, Vid2VidGenerator):
        _load_group(module, state_dict, list(module.scales), "G")
    elif isinstance(module, TemporalDiscriminators):
        _load_group(module, state_dict, list(module.scales), "D_T")
    else:
        _load_one(module, state_dict)
    return module


def read_original_checkpoint(path):
    """Reads one original `.pth` file (a plain state dict) safely, with torch.load(weights_only=True)."""
    state_dict = read_weights_only(path, "original vid2vid checkpoint")
    _check_tensors(state_dict, path)
    return state_dict
