"""End-to-end training benchmark: the same model on the same data, reference configuration vs fast
configuration, in one process, their iterations interleaved (reference, fast, fast, reference, ...), so
that both see the same load on a machine shared with other work.

An iteration is everything ``Trainer.train_chunk`` does (generator frames, ground-truth flow, image and
temporal discriminators, all losses, the G, D and temporal-D backward passes and optimizer steps); data
loading is not timed. Times are medians over the timed iterations, after untimed warm-up ones; the
iterations in which torch.compile compiled are never timed, their time is reported as compile time.
Besides the ratio of the medians, the median of the ratios of neighbouring iterations (one of each
configuration, run back to back) is given: on a machine whose load changes from second to second it
is the steadier of the two.
"""

import copy
import json
import os
import statistics
import tempfile
from pathlib import Path

import torch

from .config import Config, ConfigError
from .trainer import Trainer

CONFIGURATIONS = ("reference", "fast")


def _summary(trainer: Trainer, ran: int, iters: int, warmup: int) -> dict:
    """The trainer's summary after ``ran`` iterations, timed by the median of ``iters`` after ``warmup``."""
    # the iterations that compiled are warm-up too; they are not in iteration_times
    compiled = ran - len(trainer.iteration_times)
    times = trainer.iteration_times[max(0, warmup - compiled):][:iters]
    if len(times) < iters:
        raise ConfigError(
            f"{compiled} of {ran} iterations compiled, leaving fewer than --iters {iters} "
            f"timed after --warmup {warmup}: raise --warmup"
        )
    per_iter = statistics.median(times)
    summary = trainer.summary()
    summary.update(seconds_per_iteration=per_iter, iterations_per_second=1.0 / per_iter, timed_iterations=len(times),
                   iterations=ran, times=times)
    return summary


def bench_training(config: Config, iters: int = 20, warmup: int = 5, json_path=None) -> dict:
    """Time ``iters`` iterations (after ``warmup``) of the reference and of the fast configuration."""
    if iters < 1 or warmup < 0:
        raise ValueError(f"iters must be >= 1 and warmup >= 0, got {iters}, {warmup}")
    with tempfile.TemporaryDirectory(prefix="vid2vid-bench-") as scratch:
        trainers, steps, ran = {}, {}, dict.fromkeys(CONFIGURATIONS, 0)
        for name in CONFIGURATIONS:
            run = copy.deepcopy(config)
            run.speed.reference = name == "reference"
            run.schedule.max_minutes = 0.0
            run.run.output_dir, run.run.name = scratch, name
            run.run.tensorboard = False
            trainers[name] = Trainer(run, progress=False)
            steps[name] = trainers[name].measuring_iterations()
            if trainers[name].device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(trainers[name].device)
        # until both have iters timed iterations after the warm-up; each pair in alternating order
        for i in range(10 * (warmup + iters)):
            if all(len(t.iteration_times) >= warmup + iters for t in trainers.values()):
                break
            for name in CONFIGURATIONS if i % 2 == 0 else CONFIGURATIONS[::-1]:
                next(steps[name])
                ran[name] += 1
        results = {name: _summary(trainers[name], ran[name], iters, warmup) for name in CONFIGURATIONS}
    ratio = results["reference"]["seconds_per_iteration"] / results["fast"]["seconds_per_iteration"]
    paired = statistics.median(r / f for r, f in zip(results["reference"]["times"], results["fast"]["times"]))
    from vid2vid_fast.cli import speed_table

    table = (
        speed_table([(name, r) for name, r in results.items()])
        + f"\n\nspeedup (reference / fast): {ratio:.2f}x; median of neighbouring iterations' ratios: {paired:.2f}x"
        + f"\ntorch.compile time (not in s / iteration): {results['fast']['compile_seconds']:.1f} s"
    )
    out = {"reference": results["reference"], "fast": results["fast"], "speedup": ratio, "speedup_paired": paired,
           "table": table}
    if json_path:
        path = Path(json_path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
        tmp.write_text(json.dumps({k: v for k, v in out.items() if k != "table"}, indent=1))
        os.replace(tmp, path)
    return out
