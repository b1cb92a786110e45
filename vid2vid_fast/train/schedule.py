"""vid2vid's training schedule, per epoch (epochs count from 1, as in the original's train.py).

The original changes its settings at the end of an epoch, so each takes effect from the next one:

- learning rate: constant for ``niter + 1`` epochs; after epoch ``e > niter`` it is set to
  ``lr * (1 - (e - niter) / niter_decay)``, so epoch ``niter + niter_decay`` trains at ``lr / niter_decay``;
- clip length: after each epoch that is a multiple of ``niter_step``, ``n_frames_total`` becomes
  ``n_frames_total * 2 ** (epoch // niter_step)`` (capped);
- ``niter_fix_global``: with several spatial scales, only the finest trains until the end of that epoch.

A run with a wall-clock budget (``max_minutes``) keeps this schedule and changes only how many clips an
epoch holds: ``IterationBudget`` records the iteration count that fits the budget at the measured speed
and the epoch length that spreads the schedule over that count (the last epoch may be cut short).
"""

import math
from dataclasses import dataclass

# Of the time left after measuring, the share the fitted iterations may take: the speed measured over
# a few iterations varies by a few percent over a run, and the final checkpoint takes a moment.
BUDGET_SAFETY = 0.95


@dataclass(frozen=True)
class Schedule:
    lr: float = 2e-4
    niter: int = 10
    niter_decay: int = 10
    n_frames_total: int = 30
    niter_step: int = 5
    max_frames_total: int = 0  # 0: no cap here (the data set caps a clip at its sequence length)
    niter_fix_global: int = 0
    n_scales_spatial: int = 1

    def __post_init__(self):
        if self.niter < 0 or self.niter_decay < 0 or self.niter + self.niter_decay < 1:
            raise ValueError(
                f"niter and niter_decay must be >= 0 with at least one epoch, got {self.niter}, {self.niter_decay}"
            )
        if self.niter_step < 1 or self.n_frames_total < 1:
            raise ValueError(f"niter_step and n_frames_total must be >= 1, got {self.niter_step}, {self.n_frames_total}")

    @classmethod
    def from_config(cls, config) -> "Schedule":
        s = config.schedule
        return cls(
            lr=s.lr,
            niter=s.niter,
            niter_decay=s.niter_decay,
            n_frames_total=s.n_frames_total,
            niter_step=s.niter_step,
            max_frames_total=s.max_frames_total,
            niter_fix_global=s.niter_fix_global,
            n_scales_spatial=config.model.n_scales_spatial,
        )

    @property
    def total_epochs(self) -> int:
        return self.niter + self.niter_decay

    def _check(self, epoch):
        if not 1 <= epoch <= self.total_epochs:
            raise ValueError(f"epoch must be in [1, {self.total_epochs}], got {epoch}")

    def lr_at(self, epoch: int) -> float:
        """Learning rate used while training epoch ``epoch``."""
        self._check(epoch)
        finished = epoch - 1
        if finished <= self.niter:
            return self.lr
        return self.lr * (1.0 - (finished - self.niter) / self.niter_decay)

    def n_frames_total_at(self, epoch: int) -> int:
        """Frames generated per clip in epoch ``epoch``."""
        self._check(epoch)
        frames = self.n_frames_total * 2 ** ((epoch - 1) // self.niter_step)
        if self.max_frames_total:
            frames = min(frames, max(self.max_frames_total, self.n_frames_total))
        return frames

    def train_all_scales_at(self, epoch: int) -> bool:
        """False while only the finest generator scale trains (niter_fix_global)."""
        self._check(epoch)
        return self.n_scales_spatial == 1 or self.niter_fix_global == 0 or epoch > self.niter_fix_global


@dataclass(frozen=True)
class IterationBudget:
    """The schedule of a run with a wall-clock budget, fixed once after measuring its speed (and kept in
    its checkpoints, so that a resumed run continues the same schedule)."""

    minutes: float
    seconds_per_iteration: float  # measured over the first iterations, compilation excluded
    iterations: int  # the run stops here
    epoch_length: int  # clips per epoch, so that the schedule's epochs span ``iterations``

    @classmethod
    def fit(cls, minutes: float, elapsed: float, seconds_per_iteration: float, epoch_length: int,
            schedule_iterations: int, max_iters: int = 0) -> "IterationBudget":
        """The budget of ``minutes`` with ``elapsed`` seconds already spent, at ``seconds_per_iteration``;
        ``schedule_iterations`` is what the whole schedule takes with ``epoch_length`` clips per epoch
        (iterations grow in proportion to it), ``max_iters`` (0 = none) caps the count."""
        if minutes <= 0 or seconds_per_iteration <= 0 or epoch_length < 1 or schedule_iterations < 1:
            raise ValueError(
                f"a budget needs minutes, seconds_per_iteration, epoch_length and schedule_iterations > 0, got "
                f"{minutes}, {seconds_per_iteration}, {epoch_length}, {schedule_iterations}"
            )
        left = max(0.0, minutes * 60 - elapsed)
        iterations = max(1, int(left * BUDGET_SAFETY / seconds_per_iteration))
        if max_iters:
            iterations = min(iterations, max_iters)
        # the smallest epoch length whose schedule is at least ``iterations`` long; the run stops there
        fitted = max(1, math.ceil(iterations * epoch_length / schedule_iterations))
        return cls(float(minutes), float(seconds_per_iteration), iterations, fitted)
