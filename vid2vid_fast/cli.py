"""The ``vid2vid-fast`` command (also ``python -m vid2vid_fast``).

    vid2vid-fast prepare   [options]           build the data set (the bundled footage by default)
    vid2vid-fast train     [options]           train, then synthesize the output videos
    vid2vid-fast generate  --run DIR           synthesize videos with a trained run
    vid2vid-fast bench     [options]           time training iterations, reference vs fast configuration

Every training option is a flag (``vid2vid-fast train --help`` lists them with their defaults); the
same options can come from a YAML file (``--config``) or a preset (``--preset demo``).
"""

import argparse
import logging
import sys
from pathlib import Path

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


def _config_source_flags(parser):
    parser.add_argument("--preset", choices=sorted(PRESETS),
                        help="start from a preset: 'demo' trains a small model on the bundled footage in minutes")
    parser.add_argument("--config", metavar="YAML", help="read options from a YAML file (as saved with every run)")


def _build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vid2vid-fast",
        description="Train and run vid2vid (video-to-video synthesis) with fused flow-warp kernels.",
    )
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"],
                        help="how much to log (default: INFO)")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    train = commands.add_parser(
        "train", help="train a model, then synthesize its output videos",
        description="Train vid2vid. Options: defaults < --preset < --config < flags. Outputs go to "
                    "<output_dir>/<name>: checkpoints/latest.pt, config.yaml, losses.jsonl, generated/. "
                    "Run under torchrun for several GPUs or nodes. SIGINT / SIGTERM write a checkpoint and stop.",
    )
    _config_source_flags(train)
    train.add_argument("--resume", nargs="?", const="", metavar="CHECKPOINT",
                       help="continue a run: a checkpoint file or run folder (default: this run's latest "
                            "checkpoint); its options are used, flags given here override them")
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
    generate.add_argument("--out", metavar="DIR", help="output folder (default: <run>/generated)")
    generate.add_argument("--frames", type=int, metavar="N", help="frames per sequence (default: the held-out ones, or 60)")
    generate.add_argument("--device", choices=["auto", "cpu", "cuda"], help="device (default: the run's)")
    generate.add_argument("--fps", type=float, default=25.0, help="frame rate of the videos (default: 25)")

    bench = commands.add_parser(
        "bench", help="time training iterations: reference vs fast configuration",
        description="Trains the same model on the same data twice in this process, in the reference "
                    "configuration (fp32, eager, reference warp, NCHW) and in the fast one (the speed "
                    "flags, auto by default), their iterations interleaved, and prints iterations/s, their "
                    "ratio, torch.compile time and peak GPU memory. Data loading is not timed.",
    )
    _config_source_flags(bench)
    bench.add_argument("--iters", type=int, default=20, help="timed iterations per configuration (default: 20)")
    bench.add_argument("--warmup", type=int, default=5, help="untimed iterations first (default: 5; torch.compile compiles here)")
    bench.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    add_config_flags(bench)

    prepare = commands.add_parser(
        "prepare", help="build the data set (edge maps of the bundled footage by default)",
        description="Decode the bundled clips (or check --dataroot), write frames and edge maps to the "
                    "cache, split off held-out frames, and print where the data set is.",
    )
    _config_source_flags(prepare)
    add_config_flags(prepare)
    return parser


def _config_from(args):
    return make_config(args.preset, args.config, overrides_from_args(args))


def _cmd_prepare(args) -> int:
    from .train.data import make_dataset, prepare_data

    config = _config_from(args)
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


def _resume_config(args):
    """The config a resumed run continues with: the checkpoint's, then --config, then flags."""
    from .train.checkpoint import CheckpointError, load_checkpoint

    if args.preset:
        raise ConfigError("--preset cannot be combined with --resume (the run's own options are used)")
    if args.resume:
        path = Path(args.resume)
    else:
        config = _config_from(args)
        path = Path(config.run.output_dir) / config.run.name
    if path.is_dir():
        path = path / "checkpoints" / "latest.pt"
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
            print(f"\n{stop}\ncontinue with: vid2vid-fast train --resume {stop.checkpoint_path}", file=sys.stderr)
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
        result = generate(trainer.checkpoint_path, config=config, device=trainer.device)
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
    result = generate(path, args.out, frames=args.frames, device=device, fps=args.fps)
    print(f"videos: {result['out_dir']}/<sequence>/{{synthesized,side_by_side,no_flow}}.mp4, grid.png")
    print(format_metrics(result))
    return 0


def _cmd_bench(args) -> int:
    from .train.bench import bench_training

    config = _config_from(args)
    results = bench_training(config, iters=args.iters, warmup=args.warmup, json_path=args.json)
    print(results["table"])
    return 0


def main(argv=None) -> int:
    parser = _build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=getattr(logging, args.log_level), format="%(message)s")
    from .train.checkpoint import CheckpointError

    commands = {"train": _cmd_train, "generate": _cmd_generate, "bench": _cmd_bench, "prepare": _cmd_prepare}
    try:
        return commands[args.command](args)
    except (ConfigError, CheckpointError, FileNotFoundError) as error:
        print(f"vid2vid-fast {args.command}: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
