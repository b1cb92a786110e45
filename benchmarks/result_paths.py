"""Where a benchmark run writes its files, so that no run overwrites an earlier run's results."""

from pathlib import Path


def unused_stem(folder, name):
    """folder / name, or the first of folder / name-2, name-3, ... that no file of folder has as its stem
    (name.md, name.json, ...): a second run of the same day keeps the first run's results."""
    folder = Path(folder)
    candidate, k = name, 1
    while any(folder.glob(f"{candidate}.*")):
        k += 1
        candidate = f"{name}-{k}"
    return folder / candidate
