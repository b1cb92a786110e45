"""Expected values for the model tests, obtained once by building the original NVIDIA/vid2vid classes
(models/networks.py at commit 2e6d137, run from a scratch folder outside this repository, on the meta
device) with the same options and counting their parameters. original_keys.json holds, from the same
run, the original state-dict key names and shapes of four small networks (args as passed to our
constructors)."""

import json
import os

# CompositeGenerator(input_nc, output_nc, prev_output_nc, ngf, n_downsampling, n_blocks, norm, use_fg_model)
GENERATOR_PARAMS = {
    "street_35x3": ((105, 3, 6, 128, 3, 9, "batch", False), 365372550),
    "street_fg_36x3": ((108, 3, 6, 128, 3, 9, "batch", True), 411335241),
    "small": ((12, 3, 6, 8, 2, 3, "batch", False), 144678),
    "small_instance": ((12, 3, 6, 8, 2, 3, "instance", False), 143590),
    "small_fg_deep": ((10, 3, 3, 16, 3, 4, "batch", True), 3119985),
    "edge_1ch_instance": ((3, 3, 6, 32, 3, 9, "instance", False), 22816102),
}

# CompositeLocalGenerator(input_nc, output_nc, prev_output_nc, ngf, n_downsampling, n_blocks_local, norm,
#                         use_fg_model, scale)
LOCAL_GENERATOR_PARAMS = {
    "street_s1": ((105, 3, 6, 64, 3, 3, "batch", False, 1), 2437446),
    "street_fg_s2": ((108, 3, 6, 32, 3, 3, "batch", True, 2), 859641),
    "small_instance_fg": ((12, 3, 6, 4, 2, 2, "instance", True, 1), 16437),
}

# MultiscaleDiscriminator(input_nc, ndf, n_layers, norm, num_D), get_interm_feat=True
DISCRIMINATOR_PARAMS = {
    "image_street_36+3": ((39, 64, 3, "batch", 2), 5606786),
    "temporal_default_3x3+2x2": ((13, 64, 3, "batch", 2), 5553538),
    "small_instance_3": ((7, 8, 2, "instance", 3), 225291),
    "wide_deep": ((7, 32, 5, "batch", 3), 29320419),
}


def original_keys():
    """{"G0" | "G1" | "D" | "D_flat": {"args": [...], "keys": [[name, shape], ...]}}."""
    with open(os.path.join(os.path.dirname(__file__), "original_keys.json")) as f:
        return json.load(f)
