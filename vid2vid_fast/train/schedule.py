"""vid2vid's training schedule, per epoch (epochs count from 1, as in the original's train.py).

The original changes its settings at the end of an epoch, so each takes effect from the next one:

- learning rate: constant for ``niter + 1`` epochs; after epoch ``e > niter`` it is set to
  ``lr * (1 - (e - niter) / niter_decay)``, so epoch ``niter + niter_decay`` trains at ``lr / niter_decay``;
- clip length: after each epoch that is a multiple of ``niter_step``, ``n_frames_total`` becomes
  ``n_frames_total * 2 ** (epoch // niter_step)`` (capped);
- ``niter_fix_global``: with several spatial scales, only the finest trains until the end of that epoch.
"""

from dataclasses import dataclass


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
