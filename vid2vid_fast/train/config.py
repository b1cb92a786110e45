"""The run configuration: one tree of dataclasses holding every option of a training run.

Defaults are the original vid2vid's (``train_options.py`` / ``base_options.py``), except the data
section, whose defaults describe this project's default task (edge map -> video on the bundled
footage). The same tree is

- saved as YAML next to every checkpoint (it fully describes the run),
- loaded from YAML (``--config run.yaml``), where unknown keys and badly typed values are errors,
- turned into command-line flags (``--ngf 64``): the flag names are the original's option names, so
  they are unique across sections, and every flag's ``--help`` text comes from the field's help.

Precedence, lowest first: defaults, ``--preset``, ``--config`` file, flags.
"""

import argparse
import dataclasses
import os
import typing
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vid2vid_fast.errors import UserError


class ConfigError(UserError, ValueError):
    """A configuration value, key or file is invalid; the message names it."""


def opt(default, help, *, choices=None, minimum=None, maximum=None):
    """A config field with its help text (shown by ``--help``) and its allowed values."""
    metadata = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass
class DataConfig:
    source: str = opt(
        "frames",
        "frames: image-sequence folders (dataroot, or the bundled footage as cached edge-map frames); videos: "
        "decode video files every epoch with the DALI or PyAV loader (--loader) and make edge maps on the fly",
        choices=["frames", "videos"],
    )
    task: str = opt(
        "edges",
        "what the labels are: edges (Canny edge maps), face (vid2vid's edge2face: face landmarks drawn as "
        "edges, Canny edges outside the face), pose (vid2vid's pose2body: body keypoints drawn as limbs); "
        "face and pose need mediapipe (pip install 'vid2vid-fast[labels]')",
        choices=["edges", "face", "pose"],
    )
    videos: list[str] = opt([], "video files for --source videos (empty: the bundled clips, transcoded once to VP9)")
    video_size: list[int] = opt([256, 512], "(height, width) of the clips of --source videos")
    dataroot: str = opt(
        "",
        "data set folder in vid2vid's layout ({phase}_A/<seq>/*, {phase}_B/<seq>/*); empty = the bundled "
        "edge-map -> video footage, built once into the cache",
    )
    phase: str = opt("train", "which {phase}_A / {phase}_B folders to read")
    label_nc: int = opt(0, "number of label classes (one-hot); 0 = the input is an image", minimum=0)
    input_nc: int = opt(1, "channels of an input image when label_nc is 0 (1 for edge maps)", choices=[1, 3])
    use_instance: bool = opt(False, "add an instance-boundary channel from {phase}_inst (needs label_nc > 0)")
    clips: list[str] = opt(
        ["bigbuckbunny.mp4", "bikes.mp4", "carphone_pristine.mp4"],
        "bundled clips that make the default data set (used when dataroot is empty)",
    )
    edge_height: int = opt(256, "height videos are decoded at before their labels are made", minimum=32)
    label_confidence: float = opt(
        0.5,
        "mediapipe's detection confidence for face and pose labels: lower finds small or blurred faces and "
        "people more often, and more false ones",
        minimum=0.0,
        maximum=1.0,
    )
    max_source_frames: int = opt(0, "use at most this many frames of each bundled clip (0 = all)", minimum=0)
    held_out_frames: int = opt(
        0,
        "keep the last N frames of every sequence out of training; generate and the metrics use them",
        minimum=0,
    )
    resize_or_crop: str = opt(
        "scale_width",
        "how frames are resized (vid2vid's --resize_or_crop)",
        choices=["scale_width", "scale_width_and_crop", "random_scale_width_and_crop", "resize_and_crop", "none"],
    )
    load_size: int = opt(512, "scale frames to this width (vid2vid's --loadSize)", minimum=32)
    fine_size: int = opt(512, "crop to this size (vid2vid's --fineSize)", minimum=32)
    no_flip: bool = opt(False, "do not flip clips horizontally")
    max_t_step: int = opt(1, "largest frame step drawn for a training clip", minimum=1)
    batch_size: int = opt(1, "clips per batch per process", minimum=1)
    num_workers: int = opt(2, "data loader worker processes per process (vid2vid's --nThreads)", minimum=0)


@dataclass
class ModelConfig:
    output_nc: int = opt(3, "channels of a generated frame", minimum=1)
    n_frames_G: int = opt(3, "frames the generator sees: the current label and n_frames_G - 1 previous", minimum=2)
    ngf: int = opt(128, "generator width at the coarsest scale", minimum=1)
    n_downsample_G: int = opt(3, "downsampling steps of the generator", minimum=1)
    n_blocks: int = opt(9, "residual blocks of the coarsest generator", minimum=1)
    n_blocks_local: int = opt(3, "residual blocks of each local (finer) generator", minimum=1)
    n_scales_spatial: int = opt(1, "spatial scales of the generator (coarse to fine)", minimum=1)
    norm: str = opt("batch", "normalisation layer", choices=["batch", "instance"])
    fg: bool = opt(False, "use the foreground model (street scenes)")
    fg_labels: list[int] = opt([], "label ids that are foreground (with --fg)")
    no_first_img: bool = opt(
        False, "generate the first frames too instead of starting from the real ones (needs no real start)"
    )
    ndf: int = opt(64, "discriminator width", minimum=1)
    n_layers_D: int = opt(3, "layers of each PatchGAN discriminator", minimum=1)
    num_D: int = opt(2, "image resolutions the discriminators see", minimum=1)
    n_frames_D: int = opt(3, "frames each temporal discriminator sees", minimum=2)
    n_scales_temporal: int = opt(2, "temporal scales (frame strides n_frames_D**s) of the temporal discriminator", minimum=1)


@dataclass
class LossConfig:
    lambda_feat: float = opt(10.0, "weight of the feature-matching and VGG losses", minimum=0.0)
    lambda_T: float = opt(10.0, "weight of the flow-warp and temporal-consistency losses", minimum=0.0)
    lambda_F: float = opt(10.0, "weight of the flow loss", minimum=0.0)
    vgg_weights: str = opt("", "file with ImageNet VGG19 weights for the perceptual loss; empty = no VGG loss")
    flow_source: str = opt(
        "classical", "where ground-truth flow comes from", choices=["classical", "raft"]
    )
    flow_checkpoint: str = opt("", "weights file of a learned flow source (--flow_source raft)")


@dataclass
class ScheduleConfig:
    niter: int = opt(10, "epochs at the starting learning rate", minimum=0)
    niter_decay: int = opt(10, "epochs of linear decay of the learning rate to zero after niter", minimum=0)
    lr: float = opt(2e-4, "starting learning rate (Adam)", minimum=0.0)
    beta1: float = opt(0.5, "Adam beta1", minimum=0.0, maximum=1.0)
    beta2: float = opt(0.999, "Adam beta2", minimum=0.0, maximum=1.0)
    n_frames_total: int = opt(30, "frames generated per clip at the start; doubles every niter_step epochs", minimum=1)
    max_frames_total: int = opt(0, "cap of the doubled n_frames_total (0 = no cap but the sequence length)", minimum=0)
    niter_step: int = opt(5, "epochs between doublings of n_frames_total", minimum=1)
    max_frames_per_gpu: int = opt(1, "frames generated per optimizer step (the chunk a clip is walked in)", minimum=1)
    niter_fix_global: int = opt(0, "epochs in which only the finest generator scale trains", minimum=0)
    epoch_length: int = opt(0, "clips per epoch (0 = every sequence of the data set once)", minimum=0)
    max_iters: int = opt(0, "stop after this many iterations in total (0 = run the whole schedule)", minimum=0)
    max_minutes: float = opt(
        0.0,
        "wall-clock budget of the training in minutes (0 = none): the speed is measured over the first "
        "iterations, then the schedule (learning-rate decay, clip-length doubling, niter_fix_global) is spread "
        "over the iterations that fit, by changing epoch_length; needs --source frames",
        minimum=0.0,
    )


@dataclass
class SpeedConfig:
    backend: str = opt(
        "auto", "flow-warp kernels: auto = the fused ones (on GPUs triton or cuda per op, from the dispatch "
        "table), reference = the plain PyTorch chain",
        choices=["auto", "reference", "cpu", "cuda", "triton"],
    )
    amp: str = opt(
        "auto", "mixed precision: auto = bf16 on GPUs that have it (else fp16), off on the CPU",
        choices=["auto", "off", "bf16", "fp16"],
    )
    compile: str = opt(
        "auto", "torch.compile the generator and discriminators (auto = on GPUs; on the CPU its compile time "
        "outweighs what a run of minutes saves)", choices=["auto", "on", "off"],
    )
    channels_last: str = opt("auto", "channels_last memory format (auto = on, GPU and CPU)", choices=["auto", "on", "off"])
    adam: str = opt(
        "auto", "Adam implementation: auto = fused (one kernel over all parameters), foreach, or default "
        "(torch's own choice: foreach on GPUs, a loop over the parameters on the CPU)",
        choices=["auto", "fused", "foreach", "default"],
    )
    loader: str = opt(
        "auto", "video decoding of --source videos: auto = NVIDIA DALI where it can decode every file, else PyAV",
        choices=["auto", "dali", "pyav"],
    )
    reference: bool = opt(
        False, "the reference configuration: fp32, eager, reference warp, NCHW, torch's default Adam, PyAV loader "
        "(overrides the above)"
    )


@dataclass
class RunConfig:
    name: str = opt("vid2vid", "run name; outputs go to <output_dir>/<name>")
    output_dir: str = opt("runs", "folder holding the runs")
    device: str = opt("auto", "auto = cuda when there is a GPU, else cpu", choices=["auto", "cpu", "cuda"])
    seed: int = opt(0, "random seed (the run is reproducible with the same seed)", minimum=0)
    num_threads: int = opt(
        0, "CPU threads torch uses per process (0 = torch's default; 1 is often faster on a busy machine)", minimum=0
    )
    save_latest_freq: int = opt(1000, "write a checkpoint every N iterations (and at exit)", minimum=1)
    print_freq: int = opt(100, "log losses (to <run>/losses.jsonl and TensorBoard) every N iterations", minimum=1)
    display_freq: int = opt(500, "log image samples to TensorBoard every N iterations", minimum=1)
    progress: bool = opt(True, "show a progress bar")
    tensorboard: bool = opt(True, "write TensorBoard logs when torch.utils.tensorboard imports")
    generate_frames: int = opt(0, "frames to synthesize per sequence at the end (0 = the held-out frames, or 60)", minimum=0)


@dataclass
class Config:
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    speed: SpeedConfig = field(default_factory=SpeedConfig)
    run: RunConfig = field(default_factory=RunConfig)


SECTIONS = [f.name for f in dataclasses.fields(Config)]

# Small enough that training plus generation on the bundled footage takes a few minutes on 2 CPU cores,
# large enough that the result resembles the real clip.
PRESETS = {
    "demo": {
        "data": {
            # vid2vid's edge2face task on one clip, so that a few minutes of training on 2 CPU cores all go
            # to it
            "task": "face",
            "clips": ["carphone_pristine.mp4"],
            # edges are found at about the training size and frames keep it (118x96, rounded to the
            # multiple of 32 128x96), so that thin edges are not blurred away by a second resize
            "edge_height": 96,
            "max_source_frames": 120,
            "held_out_frames": 24,
            "resize_or_crop": "none",
            "num_workers": 0,
        },
        "model": {"ngf": 32, "n_downsample_G": 2, "n_blocks": 4, "ndf": 32, "n_layers_D": 2, "num_D": 1,
                  "n_scales_temporal": 1},
        "schedule": {"niter": 4, "niter_decay": 4, "lr": 4e-4, "n_frames_total": 8, "niter_step": 2,
                     "max_frames_total": 16, "epoch_length": 16, "max_minutes": 5.0},
        "run": {"name": "demo", "save_latest_freq": 200, "print_freq": 20, "display_freq": 200},
    },
}
# vid2vid's pose2body task on the segments of the bundled bikes clip where a person is found, with the
# demo's model and schedule
PRESETS["pose"] = {
    **PRESETS["demo"],
    "data": {
        "task": "pose",
        "input_nc": 3,
        "clips": ["bikes.mp4"],
        "edge_height": 128,
        "max_source_frames": 250,
        "held_out_frames": 8,
        "resize_or_crop": "none",
        "no_flip": True,
        "num_workers": 0,
    },
    "run": {**PRESETS["demo"]["run"], "name": "pose"},
}


def _field_map(section_cls):
    return {f.name: f for f in dataclasses.fields(section_cls)}


def _section_classes():
    return {f.name: typing.get_type_hints(Config)[f.name] for f in dataclasses.fields(Config)}


def _check_value(where: str, f: dataclasses.Field, value, annotation):
    """``value`` converted to the field's type, or a ConfigError naming ``where``."""
    origin = typing.get_origin(annotation)
    if origin is list:
        (item_type,) = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where} must be a list of {item_type.__name__}, got {value!r}")
        return [_check_scalar(f"{where}[{i}]", item, item_type) for i, item in enumerate(value)]
    value = _check_scalar(where, value, annotation)
    meta = f.metadata
    if meta.get("choices") is not None and value not in meta["choices"]:
        raise ConfigError(f"{where} must be one of {meta['choices']}, got {value!r}")
    if meta.get("minimum") is not None and value < meta["minimum"]:
        raise ConfigError(f"{where} must be >= {meta['minimum']}, got {value!r}")
    if meta.get("maximum") is not None and value > meta["maximum"]:
        raise ConfigError(f"{where} must be <= {meta['maximum']}, got {value!r}")
    return value


def _check_scalar(where, value, expected):
    if expected is bool:
        if isinstance(value, bool):
            return value
    elif expected is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif expected is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif expected is str:
        if isinstance(value, str):
            return value
    raise ConfigError(f"{where} must be {expected.__name__}, got {value!r} ({type(value).__name__})")


def apply_overrides(config: Config, overrides: dict, source: str = "overrides") -> Config:
    """``config`` updated in place from a nested ``{section: {option: value}}`` dict (checked)."""
    if not isinstance(overrides, dict):
        raise ConfigError(f"{source}: expected a mapping of sections {SECTIONS}, got {type(overrides).__name__}")
    classes = _section_classes()
    for section, values in overrides.items():
        if section not in classes:
            raise ConfigError(f"{source}: unknown section {section!r}; expected one of {SECTIONS}")
        if values is None:
            continue
        if not isinstance(values, dict):
            raise ConfigError(f"{source}: section {section!r} must be a mapping, got {values!r}")
        fields = _field_map(classes[section])
        hints = typing.get_type_hints(classes[section])
        target = getattr(config, section)
        for key, value in values.items():
            if key not in fields:
                raise ConfigError(
                    f"{source}: unknown option {section}.{key}; options of {section}: {', '.join(fields)}"
                )
            setattr(target, key, _check_value(f"{source}: {section}.{key}", fields[key], value, hints[key]))
    validate(config)
    return config


def validate(config: Config) -> None:
    """Checks that involve more than one option."""
    data, model = config.data, config.model
    if data.use_instance and data.label_nc == 0:
        raise ConfigError("data.use_instance needs data.label_nc > 0")
    if "crop" in data.resize_or_crop and data.fine_size > data.load_size:
        raise ConfigError(f"data.fine_size ({data.fine_size}) must not exceed data.load_size ({data.load_size})")
    if model.fg and not model.fg_labels:
        raise ConfigError("model.fg needs model.fg_labels (the foreground label ids)")
    if model.fg and data.label_nc == 0:
        raise ConfigError("model.fg needs label maps (data.label_nc > 0)")
    if config.loss.flow_source == "raft" and not config.loss.flow_checkpoint:
        raise ConfigError("loss.flow_source 'raft' needs loss.flow_checkpoint (a weights file)")
    if data.task != "edges" and data.label_nc:
        raise ConfigError(f"data.task {data.task!r} makes label images: it needs data.label_nc 0")
    if data.task == "face" and data.input_nc != 1:
        raise ConfigError("data.task 'face' makes one-channel edge labels: it needs data.input_nc 1")
    if data.task == "pose" and data.input_nc != 3:
        raise ConfigError("data.task 'pose' draws keypoints in colour: it needs data.input_nc 3")
    if data.source == "videos" and data.task != "edges":
        raise ConfigError("data.source 'videos' makes edge-map labels on the fly: it needs data.task 'edges'")
    if data.source == "videos" and (data.label_nc or data.input_nc != 1):
        raise ConfigError("data.source 'videos' makes edge-map labels: it needs data.label_nc 0 and data.input_nc 1")
    if len(data.video_size) != 2 or min(data.video_size) < 32:
        raise ConfigError(f"data.video_size must be (height, width), both >= 32, got {data.video_size}")
    if config.schedule.max_minutes and data.source != "frames":
        raise ConfigError("schedule.max_minutes needs data.source 'frames' (its epoch length is what fits the budget)")
    if config.schedule.niter + config.schedule.niter_decay == 0:
        raise ConfigError("schedule.niter + schedule.niter_decay must be at least 1 epoch")


def to_dict(config: Config) -> dict:
    return dataclasses.asdict(config)


def from_dict(values: dict, source: str = "config") -> Config:
    return apply_overrides(Config(), values, source)


def make_config(preset: str | None = None, config_file=None, overrides: dict | None = None) -> Config:
    """Defaults, then a preset, then a YAML file, then ``overrides``, each checked."""
    config = Config()
    if preset is not None:
        if preset not in PRESETS:
            raise ConfigError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
        apply_overrides(config, PRESETS[preset], f"preset {preset}")
    if config_file is not None:
        apply_overrides(config, read_yaml(config_file), str(config_file))
    if overrides:
        apply_overrides(config, overrides, "command line")
    validate(config)
    return config


def read_yaml(path) -> dict:
    path = Path(path)
    try:
        text = path.read_text()
    except OSError as error:
        raise ConfigError(f"cannot read config file {path}: {error}") from error
    try:
        values = yaml.safe_load(text)
    except yaml.YAMLError as error:
        raise ConfigError(f"config file {path} is not valid YAML: {error}") from error
    return values or {}


def load_yaml(path) -> Config:
    """A Config from a YAML file written by ``save_yaml`` (or by hand; missing options keep defaults)."""
    return from_dict(read_yaml(path), str(path))


def dump_yaml(config: Config) -> str:
    return yaml.safe_dump(to_dict(config), sort_keys=False)


def save_yaml(config: Config, path) -> Path:
    """Write the config as YAML, atomically."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    tmp.write_text(dump_yaml(config))
    os.replace(tmp, path)
    return path


# ---------------------------------------------------------------- command-line flags


def _str_to_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def add_config_flags(parser: argparse.ArgumentParser) -> None:
    """One flag per option, named after it (``--ngf``), grouped by section; every default is None so
    that only the flags the user gave override the preset and the config file."""
    classes = _section_classes()
    seen = {}
    for section, cls in classes.items():
        group = parser.add_argument_group(f"{section} options")
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if f.name in seen:
                raise AssertionError(f"option {f.name} appears in sections {seen[f.name]} and {section}")
            seen[f.name] = section
            annotation, meta = hints[f.name], f.metadata
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            choices = f"; one of {', '.join(map(str, meta['choices']))}" if meta.get("choices") else ""
            help_text = f"{meta['help']} (default: {default!r}{choices})"
            kwargs = {"dest": f"{section}.{f.name}", "default": None, "help": help_text}
            if typing.get_origin(annotation) is list:
                (item_type,) = typing.get_args(annotation)
                group.add_argument(f"--{f.name}", nargs="*", type=item_type, metavar=item_type.__name__.upper(), **kwargs)
            elif annotation is bool:
                group.add_argument(
                    f"--{f.name}", nargs="?", const=True, type=_str_to_bool, metavar="BOOL", **kwargs
                )
            else:
                if meta.get("choices") is not None:
                    kwargs["choices"] = meta["choices"]
                group.add_argument(f"--{f.name}", type=annotation, metavar=annotation.__name__.upper(), **kwargs)


def overrides_from_args(args: argparse.Namespace) -> dict:
    """The flags the user gave, as ``{section: {option: value}}``."""
    overrides = {}
    for key, value in vars(args).items():
        if "." in key and value is not None:
            section, name = key.split(".", 1)
            overrides.setdefault(section, {})[name] = value
    return overrides


ARCHITECTURE_KEYS = {
    "data": ["label_nc", "input_nc", "use_instance"],
    # no_first_img changes how the first frames are made, not the parameters
    "model": [f.name for f in dataclasses.fields(ModelConfig) if f.name != "no_first_img"],
}


def architecture(config_dict: dict) -> dict:
    """The options that decide the shapes of the models' parameters (a checkpoint must match them)."""
    return {
        f"{section}.{key}": config_dict.get(section, {}).get(key)
        for section, keys in ARCHITECTURE_KEYS.items()
        for key in keys
    }
