"""Progress reporting for long steps (transcoding, building label caches)."""

import sys


class Progress:
    """Progress of a long step: a tqdm bar when tqdm is installed, otherwise a plain line on stderr
    every 50 items."""

    def __init__(self, total, description, enabled):
        self.total, self.description, self.enabled, self.count, self.bar = (
            total,
            description,
            enabled,
            0,
            None,
        )

    def __enter__(self):
        if self.enabled:
            try:
                from tqdm import tqdm

                self.bar = tqdm(total=self.total, desc=self.description, unit="frame", leave=False)
            except ImportError:
                pass
        return self

    def update(self, n):
        self.count += n
        if self.bar is not None:
            self.bar.update(n)
        elif self.enabled and self.count % 50 == 0:
            print(
                f"\r{self.description}: {self.count}/{self.total or '?'} frames",
                end="",
                file=sys.stderr,
                flush=True,
            )

    def __exit__(self, *exc):
        if self.bar is not None:
            self.bar.close()
        elif self.enabled:
            print(f"\r{self.description}: {self.count} frames", file=sys.stderr, flush=True)
        return False
