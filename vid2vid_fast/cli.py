"""The ``vid2vid-fast`` command (also ``python -m vid2vid_fast``).

    vid2vid-fast prepare   [options]           build the data set (the bundled footage by default, or
                                               --task edges|face|pose --videos V [V ...] --output DIR)
    vid2vid-fast train     [options]           train, then synthesize the output videos
    vid2vid-fast generate  --run DIR           synthesize videos with a trained run (--video FILE:
                                               re-render another video from its labels)
    vid2vid-fast bench     [options]           time training iterations, reference vs fast configuration

Every training option is a flag (``vid2vid-fast train --help`` lists them with their defaults); the
same options can come from a YAML file (``--config``) or a preset (``--preset demo``).

A user error (a bad option, file, folder or data; see ``vid2vid_fast.errors``) prints one line and
exits with status 2; ``--debug`` or ``VID2VID_FAST_DEBUG=1`` adds its traceback.
"""

import argparse
import logging
import math
import os
import sys
import traceback
from pathlib import Path

from .errors import UserError
from .train.config import (
    PRESETS,
    ConfigError,
    add_config_flags,
    apply_overrides,
    from_dict,
    make_config,
    overrides_from_args,
    read_yaml,
)

log = logging.getLogger("vid2vid_fast")


class _Parser(argparse.ArgumentParser):
    """argparse, with its errors on one line (the usage is one ``--help`` away)."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _whole_number(minimum: int):
    """An argparse type: a whole number >= ``minimum``."""

    def parse(text):
        value = int(text) if text.strip().lstrip("+-").isdigit() else None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected a whole number >= {minimum}, got {text!r}")
        return value

    return parse


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not 0 < value < math.inf:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text!r}")
    return value


def _debug_flag(parser, default):
    parser.add_argument("--debug", action="store_true", default=default,
                        help="show the traceback of an error (also: VID2VID_FAST_DEBUG=1)")


def _config_source_flags(parser):
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="start from a preset: 'demo' trains a small model on the bundled footage in minutes")
    parser.add_argument("--config", metavar="YAML", help="read options from a YAML file (as saved with every run)")


def _build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="vid2vid-fast",
        description="Train and run vid2vid (video-to-video synthesis) with fused flow-warp kernels.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="how much to log (default: INFO)")
    _debug_flag(parser, default=False)
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a model, then synthesize its output videos",
        description="Train vid2vid. Options: defaults < --preset < --config < flags. Outputs go to "
                    "<output_dir>/<name>: checkpoints/latest.pt, config.yaml, losses.jsonl, generated/. "
                    "A run folder belongs to one run: when <output_dir>/<name> already holds a checkpoint, "
                    "a new run goes to <name>-2 (or -3, ...) and says so; --resume continues a run in its "
                    "own folder. Run under torchrun for several GPUs or nodes. SIGINT / SIGTERM write a "
                    "checkpoint and stop.",
    )
    _config_source_flags(train)
    train.add_argument("--resume", nargs="?", const="", metavar="CHECKPOINT",
                       help="continue a run in its folder: a run folder or its checkpoint file (default: "
                            "<output_dir>/<name>); its options are used, flags given here override them")
    train.add_argument("--no-generate", action="store_true", help="do not synthesize videos after training")
    add_config_flags(train)

    generate = commands.add_parser(
        "generate", help="synthesize videos with a trained run",
        description="Synthesize every sequence (the held-out frames when the run kept some) and write "
                    "synthesized.mp4, side_by_side.mp4 (label | synthesized | real), no_flow.mp4, grid.png "
                    "and metrics.json (PSNR, SSIM, warp error).",
    )
    source = generate.add_mutually_exclusive_group(required=True)
    source.add_argument("--run", metavar="DIR", help="a run folder (uses its checkpoints/latest.pt)")
    source.add_argument("--checkpoint", metavar="FILE", help="a checkpoint file")
    generate.add_argument("--video", metavar="FILE",
                          help="motion transfer: make the run's kind of labels (--task) from this video and "
                               "synthesize it; writes synthesized.mp4 and label_and_synthesized.mp4 to "
                               "<run>/transfer/<video name>/<sequence>/")
    generate.add_argument("--label_confidence", type=float, metavar="FLOAT",
                          help="with --video: mediapipe's detection confidence (default: the run's)")
    generate.add_argument("--out", metavar="DIR", help="output folder (default: <run>/generated)")
    generate.add_argument("--frames", type=_whole_number(1), metavar="N", help="frames per sequence (default: the held-out ones, or 60)")
    generate.add_argument("--device", choices=["auto", "cpu", "cuda"], help="device (default: the run's)")
    generate.add_argument("--fps", type=_positive_float, help="frame rate of the videos (default: 25, or --video's)")

    bench = commands.add_parser(
        "bench", help="time training iterations: reference vs fast configuration",
        description="Trains the same model on the same data twice in this process, in the reference "
                    "configuration (fp32, eager, reference warp, NCHW) and in the fast one (the speed "
                    "flags, auto by default), their iterations interleaved, and prints iterations/s, their "
                    "ratio, torch.compile time and peak GPU memory. Data loading is not timed.",
    )
    _config_source_flags(bench)
    bench.add_argument("--iters", type=_whole_number(1), default=20, help="timed iterations per configuration (default: 20)")
    bench.add_argument("--warmup", type=_whole_number(0), default=5, help="untimed iterations first (default: 5; torch.compile compiles here)")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    add_config_flags(bench)

    prepare = commands.add_parser(
        "prepare", help="build the data set (edge maps of the bundled footage by default)",
        description="Decode the bundled clips (or check --dataroot), write frames and labels of --task to the "
                    "cache, split off held-out frames, and print where the data set is. With --output: make the "
                    "--task labels of --videos (default: the bundled clips) into that folder, in vid2vid's "
                    "layout, to train on with --dataroot.",
    )
    prepare.add_argument("--output", metavar="DIR",
                         help="write the labels of --videos (or the bundled clips) for --task into DIR")
    _config_source_flags(prepare)
    add_config_flags(prepare)
    for command in commands.choices.values():
        _debug_flag(command, default=argparse.SUPPRESS)  # the flag works before or after the command
    return parser


def _config_from(args):
    return make_config(args.preset, args.config, overrides_from_args(args))


def _cmd_prepare(args) -> int:
    from .train.data import make_dataset, prepare_data

    config = _config_from(args)
    if args.output:
        return _prepare_labels(config, Path(args.output))
    if config.data.source == "videos":
        from .train.video_source import prepare_videos

        for video in prepare_videos(config):
            print(f"video: {video}")
        return 0
    root, train_phase, test_phase = prepare_data(config)
    dataset = make_dataset(config, root, train_phase)
    print(f"data set: {root} (phase {train_phase}{f', held-out phase {test_phase}' if test_phase else ''})")
    for name, paths in zip(dataset.names, dataset.paths):
        print(f"  {name}: {len(paths['B'])} training frames")
    return 0


def _prepare_labels(config, output: Path) -> int:
    from .data import bundled_clips
    from .data.labels import build_label_dataset

    data = config.data
    videos = data.videos or bundled_clips(data.clips)
    build_label_dataset(videos, output, data.task, data.phase, height=data.edge_height,
                        max_frames=data.max_source_frames or None, min_confidence=data.label_confidence)
    print(f"data set: {output} (task {data.task}, phase {data.phase})")
    print(f"train on it with: vid2vid-fast train --task {data.task} --dataroot {output}"
          + (" --input_nc 3" if data.task == "pose" else "") + f" --edge_height {data.edge_height}")
    return 0


def _resume_config(args):
    """The config a resumed run continues with: the checkpoint's, then --config, then flags."""
    from .train.checkpoint import CheckpointError, load_checkpoint
    from .train.run_folder import checkpoint_file

    if args.preset:
        raise ConfigError("--preset cannot be combined with --resume (the run's own options are used)")
    if args.resume:
        moved = [f"--{key}" for key in ("output_dir", "name") if key in overrides_from_args(args).get("run", {})]
        if moved:
            raise ConfigError(f"{' and '.join(moved)} cannot be combined with --resume {args.resume}: the run "
                              "continues in its own folder (copy the folder to continue it elsewhere)")
        path = Path(args.resume)
    else:
        config = _config_from(args)
        path = Path(config.run.output_dir) / config.run.name
    path = checkpoint_file(path)
    if not path.is_file():
        raise CheckpointError(f"--resume: no checkpoint at {path}")
    config = from_dict(load_checkpoint(path)["config"], f"config in {path}")
    if args.config:
        apply_overrides(config, read_yaml(args.config), args.config)
    apply_overrides(config, overrides_from_args(args), "command line")
    return config, path


def _cmd_train(args) -> int:
    from .train.distributed import shutdown_distributed
    from .train.generate import format_metrics, generate
    from .train.trainer import NonFiniteLossError, Trainer, TrainingInterrupted

    if args.resume is not None:
        config, resume = _resume_config(args)
    else:
        config, resume = _config_from(args), None
    trainer = Trainer(config, resume=resume)
    run = trainer.run_dir
    try:
        summary = trainer.train()
    except TrainingInterrupted as stop:
        if trainer.dist.is_main:
            print(f"\n{stop}\ncontinue with: vid2vid-fast train --resume {run}", file=sys.stderr)
        shutdown_distributed(trainer.dist)
        return 128 + int(stop.signum)
    except NonFiniteLossError as error:
        print(f"\nerror: {error}", file=sys.stderr)
        shutdown_distributed(trainer.dist)
        return 1
    shutdown_distributed(trainer.dist)
    if not trainer.dist.is_main:
        return 0
    print(f"\ntrained {summary['iterations']} iterations; checkpoint: {trainer.checkpoint_path}")
    print(f"config: {run / 'config.yaml'}")
    print(speed_table([("train", summary)]))
    if not args.no_generate:
        result = generate(trainer.checkpoint_path, config=trainer.config, device=trainer.device)
        print(f"\nvideos: {result['out_dir']}/<sequence>/{{synthesized,side_by_side,no_flow}}.mp4, grid.png")
        print(format_metrics(result))
    return 0


def speed_table(rows) -> str:
    lines = ["| run | device | configuration | s / iteration | iterations / s | peak GPU memory |",
             "|---|---|---|---|---|---|"]
    for name, s in rows:
        peak = f"{s['peak_memory_bytes'] / 2**20:.0f} MiB" if s.get("peak_memory_bytes") else "-"
        lines.append(f"| {name} | {s['device']} | {s['speed']} | {s['seconds_per_iteration']:.3f} | "
                     f"{s['iterations_per_second']:.2f} | {peak} |")
    return "\n".join(lines)


def _cmd_generate(args) -> int:
    from .train.generate import format_metrics, generate
    from .train.speed import resolve_device

    path = Path(args.checkpoint) if args.checkpoint else Path(args.run) / "checkpoints" / "latest.pt"
    device = resolve_device(args.device) if args.device else None
    if args.video:
        from .train.generate import transfer

        result = transfer(path, args.video, args.out, device=device, fps=args.fps,
                          label_confidence=args.label_confidence)
        for name, outputs in result["sequences"].items():
            print(f"{name}: {outputs['frames']} frames -> {outputs['synthesized']}, {outputs['label_and_synthesized']}")
        print(f"{result['task']} labels: {result['labelling_frames_per_second']:.1f} frames/s; "
              f"synthesis: {result['synthesis_frames_per_second']:.1f} frames/s")
        return 0
    result = generate(path, args.out, frames=args.frames, device=device, fps=args.fps or 25.0)
    print(f"videos: {result['out_dir']}/<sequence>/{{synthesized,side_by_side,no_flow}}.mp4, grid.png")
    print(format_metrics(result))
    return 0


def _cmd_bench(args) -> int:
    from .train.bench import bench_training

    config = _config_from(args)
    results = bench_training(config, iters=args.iters, warmup=args.warmup, json_path=args.json)
    print(results["table"])
    return 0


def _message(error: UserError) -> str:
    """The error's message on one line. An error raised in a DataLoader worker process reaches this
    process with the worker's whole traceback as its message; its last line holds the message."""
    text = str(error).strip()
    if text.startswith("Caught ") and "\nOriginal Traceback" in text:
        last = text.splitlines()[-1]
        text = last.split(": ", 1)[-1] + " (in a data loader worker)"
    return " ".join(text.split())


def main(argv=None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(message)s")
    debug = args.debug or os.environ.get("VID2VID_FAST_DEBUG", "") not in ("", "0")

    commands = {"train": _cmd_train, "generate": _cmd_generate, "bench": _cmd_bench, "prepare": _cmd_prepare}
    try:
        return commands[args.command](args)
    except UserError as error:
        if debug:
            traceback.print_exc()
        print(f"vid2vid-fast {args.command}: error: {_message(error)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"vid2vid-fast {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
