import pytest
import torch

from model_cases import original_keys
from vid2vid_fast.models import (CompositeGenerator, CompositeLocalGenerator, MultiscaleDiscriminator,
                                 TemporalDiscriminators, Vid2VidGenerator, load_original_state_dict,
                                 read_original_checkpoint)

KEYS = original_keys()


def build(name):
    args = KEYS[name]["args"]
    if name == "G0":
        return CompositeGenerator(*args)
    if name == "G1":
        *args, scale = args
        return CompositeLocalGenerator(*args, scale=scale)
    *args, interm = args
    return MultiscaleDiscriminator(*args, get_interm_feat=interm)


def original_state_dict(name):
    """A state dict with the original's key names and shapes whose tensors are all distinct: tensor i
    holds i * 1000 + 0, 1, 2, ..."""
    state = {}
    for i, (key, shape) in enumerate(KEYS[name]["keys"]):
        n = 1
        for s in shape:
            n *= s
        dtype = torch.int64 if key.endswith("num_batches_tracked") else torch.float32
        state[key] = (torch.arange(n) + i * 1000).to(dtype).reshape(shape)
    return state


# Where an original key must land, written out by hand from the two codebases' layer lists.
SPOT_CHECKS = {
    "G0": {
        "model_down_seg.1.weight": lambda m: m.label_encoder[1].weight,
        "model_down_img.4.bias": lambda m: m.prev_encoder[4].bias,
        "model_down_seg.13.conv_block.5.weight": lambda m: m.label_encoder[13].body[5].weight,
        "model_res_flow.0.conv_block.2.running_mean": lambda m: m.flow_res[0].body[2].running_mean,
        "model_up_img.3.weight": lambda m: m.img_up[3].weight,
        "model_final_flow.1.weight": lambda m: m.flow_head[1].weight,
        "model_final_w.1.bias": lambda m: m.weight_head[1].bias,
        "indv_res.2.conv_block.6.running_var": lambda m: m.fg_res[2].body[6].running_var,
        "indv_final.1.weight": lambda m: m.fg_head[1].weight,
    },
    "G1": {
        "model_down_img.4.weight": lambda m: m.prev_encoder[4].weight,
        "model_up_img.1.conv_block.1.bias": lambda m: m.img_up[1].body[1].bias,
        "model_up_flow.2.weight": lambda m: m.flow_up[2].weight,
        "indv_up.2.weight": lambda m: m.fg_up[2].weight,
    },
    # num_D = 2: the original's scale0 is the coarse level (1), scale1 full resolution (0).
    "D": {
        "scale0_layer0.0.weight": lambda m: m.discriminators[1].layers[0][0].weight,
        "scale1_layer2.1.running_var": lambda m: m.discriminators[0].layers[2][1].running_var,
        "scale1_layer4.0.bias": lambda m: m.discriminators[0].layers[4][0].bias,
    },
    # flat Sequentials, num_D = 3, n_layers = 2: [conv, lrelu], [conv, norm, lrelu] x 2, [conv].
    "D_flat": {
        "layer0.2.weight": lambda m: m.discriminators[2].layers[1][0].weight,
        "layer2.6.running_var": lambda m: m.discriminators[0].layers[2][1].running_var,
        "layer1.8.bias": lambda m: m.discriminators[1].layers[3][0].bias,
    },
}


@pytest.mark.parametrize("name", sorted(KEYS))
def test_every_original_tensor_lands_in_its_place(name):
    module = build(name)
    state = original_state_dict(name)
    load_original_state_dict(module, state)
    ours = module.state_dict()
    assert len(ours) == len(state)
    # All tensors are distinct, so a bijection of values proves each one landed exactly once.
    ours_values = sorted(int(v.flatten()[0]) for v in ours.values())
    assert ours_values == sorted(int(v.flatten()[0]) for v in state.values())
    for key, where in SPOT_CHECKS[name].items():
        assert torch.equal(where(module), state[key].to(where(module).dtype)), key


def test_multi_network_modules_take_the_original_file_labels():
    g = Vid2VidGenerator(4, 3, 3, ngf=8, n_downsampling=3, n_blocks=3, n_blocks_local=2, n_scales_spatial=2,
                         norm="instance", use_fg_model=True, fg_labels=(0,))
    load_original_state_dict(g, {"G0": original_state_dict("G0"), "G1": original_state_dict("G1")})
    assert torch.equal(g.scales[1].img_up[1].body[1].bias, original_state_dict("G1")["model_up_img.1.conv_block.1.bias"])
    with pytest.raises(KeyError, match=r"G0.*G1"):
        load_original_state_dict(g, {"G0": original_state_dict("G0")})
    d = TemporalDiscriminators(output_nc=1, n_frames_D=2, n_scales_temporal=2, ndf=8, n_layers=3, num_D=2)
    assert d.input_nc == 4 and KEYS["D"]["args"][0] == 7
    with pytest.raises(ValueError, match=r"D_T0: .*shapes"):
        load_original_state_dict(d, {"D_T0": original_state_dict("D"), "D_T1": original_state_dict("D")})


def test_mismatches_are_listed_and_nothing_is_loaded():
    module = build("G0")
    before = {k: v.clone() for k, v in module.state_dict().items()}
    state = original_state_dict("G0")
    del state["model_final_w.1.bias"]
    state["model_final_x.1.bias"] = torch.zeros(1)
    with pytest.raises(KeyError, match=r"no counterpart.*model_final_x\.1\.bias"):
        load_original_state_dict(module, state)
    del state["model_final_x.1.bias"]
    with pytest.raises(KeyError, match=r"missing \['weight_head\.1\.bias'\]"):
        load_original_state_dict(module, state)
    without_fg = CompositeGenerator(*KEYS["G0"]["args"][:-1], use_fg_model=False)
    with pytest.raises(KeyError, match=r"unexpected \[.*'fg_down\.1\.weight'"):
        load_original_state_dict(without_fg, original_state_dict("G0"))
    wider = CompositeGenerator(12, 3, 6, 16, 3, 3, "instance", True)
    with pytest.raises(ValueError, match=r"label_encoder\.1\.weight: original \(8, 12, 7, 7\), ours \(16, 12, 7, 7\)"):
        load_original_state_dict(wider, original_state_dict("G0"))
    for k, v in module.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_pytorch_040_checkpoints_without_num_batches_tracked_and_dataparallel_prefixes_load():
    module = build("D")
    state = {"module." + k: v for k, v in original_state_dict("D").items() if not k.endswith("num_batches_tracked")}
    load_original_state_dict(module, state)
    assert torch.equal(module.discriminators[0].layers[1][1].running_mean,
                       state["module.scale1_layer1.1.running_mean"])


class NotATensor:
    pass


def test_read_original_checkpoint_uses_weights_only(tmp_path):
    path = tmp_path / "latest_net_D.pth"
    torch.save(original_state_dict("D"), path)
    load_original_state_dict(build("D"), read_original_checkpoint(str(path)))
    # PyTorch before 1.6 (the original's 0.4 included) wrote the legacy, non-zip format.
    legacy = tmp_path / "legacy_net_D.pth"
    torch.save(original_state_dict("D"), legacy, _use_new_zipfile_serialization=False)
    load_original_state_dict(build("D"), read_original_checkpoint(str(legacy)))
    bad = tmp_path / "pickled.pth"
    torch.save({"x": NotATensor()}, bad)
    with pytest.raises(ValueError, match="weights_only"):
        read_original_checkpoint(str(bad))
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        read_original_checkpoint(str(tmp_path / "missing.pth"))
