import argparse

import pytest

from vid2vid_fast.train.config import (
    Config,
    ConfigError,
    add_config_flags,
    architecture,
    dump_yaml,
    load_yaml,
    make_config,
    overrides_from_args,
    save_yaml,
    to_dict,
)


def test_defaults_are_the_originals():
    c = Config()
    assert (c.model.ngf, c.model.ndf, c.model.n_blocks, c.model.n_blocks_local, c.model.n_downsample_G) == (128, 64, 9, 3, 3)
    assert (c.model.n_frames_G, c.model.n_frames_D, c.model.n_scales_temporal, c.model.num_D, c.model.n_layers_D) == (3, 3, 2, 2, 3)
    assert (c.loss.lambda_feat, c.loss.lambda_T, c.loss.lambda_F) == (10.0, 10.0, 10.0)
    s = c.schedule
    assert (s.lr, s.beta1, s.niter, s.niter_decay, s.n_frames_total, s.niter_step, s.max_frames_per_gpu) == (2e-4, 0.5, 10, 10, 30, 5, 1)


def test_yaml_round_trip(tmp_path):
    c = make_config("demo", overrides={"model": {"ngf": 8}, "data": {"clips": ["bikes.mp4"]}})
    path = save_yaml(c, tmp_path / "run.yaml")
    assert load_yaml(path) == c
    assert to_dict(load_yaml(path))["model"]["ngf"] == 8


@pytest.mark.parametrize(
    "text, message",
    [
        ("model:\n  ngff: 3\n", "unknown option model.ngff"),
        ("modle:\n  ngf: 3\n", "unknown section 'modle'"),
        ("model:\n  ngf: three\n", "model.ngf must be int"),
        ("model:\n  ngf: 0\n", "model.ngf must be >= 1"),
        ("model:\n  norm: group\n", "model.norm must be one of"),
        ("run:\n  progress: 1\n", "run.progress must be bool"),
        ("data:\n  clips: bikes.mp4\n", "data.clips must be a list"),
        ("model: [1, 2]\n", "section 'model' must be a mapping"),
        ("model: {ngf: [\n", "not valid YAML"),
        ("data:\n  use_instance: true\n", "use_instance needs data.label_nc > 0"),
    ],
)
def test_bad_yaml_is_an_error(tmp_path, text, message):
    path = tmp_path / "bad.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=message):
        load_yaml(path)


def test_flags_override_file_and_preset(tmp_path):
    path = save_yaml(make_config(overrides={"model": {"ngf": 32, "ndf": 24}}), tmp_path / "c.yaml")
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    args = parser.parse_args(["--ngf", "16", "--no_flip", "--clips", "a.mp4", "b.mp4", "--progress", "false"])
    c = make_config("demo", path, overrides_from_args(args))
    assert c.model.ngf == 16 and c.model.ndf == 24  # flag beats file, file beats preset
    assert c.data.no_flip is True and c.data.clips == ["a.mp4", "b.mp4"] and c.run.progress is False


def test_every_flag_has_help():
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    flags = [a for a in parser._actions if a.dest.count(".") == 1]
    assert len(flags) == sum(len(section) for section in to_dict(Config()).values())
    assert all(a.help and "(default:" in a.help for a in flags)


def test_bad_flag_value_is_an_error(capsys):
    parser = argparse.ArgumentParser()
    add_config_flags(parser)
    with pytest.raises(SystemExit):
        parser.parse_args(["--norm", "group"])
    with pytest.raises(ConfigError, match="unknown preset"):
        make_config("tiny")


def test_architecture_ignores_training_options():
    a, b = to_dict(Config()), to_dict(make_config(overrides={"schedule": {"lr": 1.0}, "model": {"no_first_img": True}}))
    assert architecture(a) == architecture(b)
    c = to_dict(make_config(overrides={"model": {"ngf": 4}}))
    assert architecture(a) != architecture(c)
    assert "ngf: 128" in dump_yaml(Config())
