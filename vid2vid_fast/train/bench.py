"""End-to-end training benchmark: the same model on the same data, reference configuration vs fast
configuration, in one process, one after the other.

An iteration is everything ``Trainer.train_chunk`` does (generator frames, ground-truth flow, image and
temporal discriminators, all losses, the G, D and temporal-D backward passes and optimizer steps); data
loading is not timed. Times are medians over the timed iterations, after untimed warm-up ones; the
iterations in which torch.compile compiled are never timed, their time is reported as compile time.
"""

import copy
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch

from .config import Config
from .trainer import Trainer


def _run(config: Config, iters: int, warmup: int) -> dict:
    trainer = Trainer(config, progress=False)
    if trainer.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(trainer.device)
    trainer.train()
    # the iterations that compiled are warm-up too; they are not in iteration_times
    compiled = trainer.iteration - len(trainer.iteration_times)
    times = trainer.iteration_times[max(0, warmup - compiled):]
    if len(times) < iters:
        raise RuntimeError(
            f"the benchmark ran {trainer.iteration} iterations ({compiled} of them compiling), leaving fewer than "
            f"--iters {iters} timed after --warmup {warmup}: raise --warmup (or niter / epoch_length), or lower --iters"
        )
    per_iter = statistics.median(times)
    summary = trainer.summary()
    summary.update(seconds_per_iteration=per_iter, iterations_per_second=1.0 / per_iter, timed_iterations=len(times))
    return summary


def bench_training(config: Config, iters: int = 20, warmup: int = 5, json_path=None) -> dict:
    """Time ``iters`` iterations (after ``warmup``) of the reference and of the fast configuration."""
    if iters < 1 or warmup < 0:
        raise ValueError(f"iters must be >= 1 and warmup >= 0, got {iters}, {warmup}")
    results = {}
    with tempfile.TemporaryDirectory(prefix="vid2vid-bench-") as scratch:
        for name, reference in (("reference", True), ("fast", False)):
            run = copy.deepcopy(config)
            run.speed.reference = reference
            run.schedule.max_iters = warmup + iters
            run.schedule.max_minutes = 0.0  # a fixed number of iterations, not a budget
            run.run.output_dir, run.run.name = scratch, name
            run.run.save_latest_freq = 10**9
            run.run.tensorboard = False
            results[name] = _run(run, iters, warmup)
    ratio = results["reference"]["seconds_per_iteration"] / results["fast"]["seconds_per_iteration"]
    from vid2vid_fast.cli import speed_table

    table = (
        speed_table([(name, r) for name, r in results.items()])
        + f"\n\nspeedup (reference / fast): {ratio:.2f}x"
        + f"\ntorch.compile time (not in s / iteration): {results['fast']['compile_seconds']:.1f} s"
    )
    out = {"reference": results["reference"], "fast": results["fast"], "speedup": ratio, "table": table}
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps({k: v for k, v in out.items() if k != "table"}, indent=1))
        os.replace(tmp, path)
    return out
