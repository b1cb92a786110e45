"""Which GPU backend backend="auto" runs: triton or cuda, per op, dtype and size class, from a measured table.

The table (dispatch_table.json beside this file, shipped with the package) is written by the GPU report
(benchmarks/gpu_report.py, run by scripts/gpu_report.sh on a GPU machine): for every op, dtype and size
class it names the backend whose forward + backward was faster there. Size classes go by the number of
elements of the op's image tensor (img, prev or src: B*C*H*W):

    small   numel <  2**21  (up to 1x3x512x1024 frames)
    medium  numel <  2**23  (up to 4x3x512x1024)
    large   numel >= 2**23  (for example 2x64x256x512 feature maps)

Without an entry for the case, or when the table's choice is unavailable, "cuda" is picked when it is
available, else "triton". The table is read once at import, so that torch.compile traces a plain dict.
"""

import json
import os
import tempfile
import warnings
from pathlib import Path

TABLE_PATH = Path(__file__).resolve().with_name("dispatch_table.json")
TABLE_FORMAT = 1
OPS = ("flow_warp", "warp_blend", "masked_warp_l1")
GPU_BACKENDS = ("cuda", "triton")  # in order of preference without a table entry
# (name, exclusive upper bound of numel); the last class has no bound.
SIZE_CLASSES = (("small", 2**21), ("medium", 2**23), ("large", None))
# The pass whose time decides: training runs forward and backward.
DECIDING_PASS = "fwd+bwd"


def size_class(numel):
    """The size class name of an image tensor with `numel` elements."""
    if numel < 0:
        raise ValueError(f"numel must be >= 0, got {numel}")
    for name, bound in SIZE_CLASSES:
        if bound is None or numel < bound:
            return name
    raise AssertionError("unreachable: the last size class has no bound")


def dtype_name(dtype):
    """'float32' for torch.float32; a string is returned as it is."""
    return dtype if isinstance(dtype, str) else str(dtype).removeprefix("torch.")


def empty_table(source="no GPU measurements yet"):
    return {
        "format": TABLE_FORMAT,
        "source": source,
        "size_classes": {name: bound for name, bound in SIZE_CLASSES},
        "deciding_pass": DECIDING_PASS,
        "choices": {},
    }


def check_table(table, where):
    """Raises ValueError, naming `where`, unless `table` is a dispatch table this code can read."""
    if not isinstance(table, dict) or table.get("format") != TABLE_FORMAT:
        raise ValueError(f"{where}: expected a dispatch table of format {TABLE_FORMAT}, got "
                         f"{table.get('format') if isinstance(table, dict) else type(table).__name__!r}")
    want = {name: bound for name, bound in SIZE_CLASSES}
    if table.get("size_classes") != want:
        raise ValueError(f"{where}: size_classes {table.get('size_classes')} differ from this code's {want}; "
                         "regenerate the table with benchmarks/gpu_report.py")
    choices = table.get("choices")
    if not isinstance(choices, dict):
        raise ValueError(f"{where}: 'choices' must be an object op -> dtype -> size class -> backend")
    for op, by_dtype in choices.items():
        if op not in OPS or not isinstance(by_dtype, dict):
            raise ValueError(f"{where}: unknown op {op!r} in choices (expected one of {OPS})")
        for dtype, by_class in by_dtype.items():
            if not isinstance(by_class, dict):
                raise ValueError(f"{where}: choices[{op!r}][{dtype!r}] must be an object size class -> backend")
            for cls, backend in by_class.items():
                if cls not in want or backend not in GPU_BACKENDS:
                    raise ValueError(f"{where}: choices[{op!r}][{dtype!r}] has {cls!r}: {backend!r}; expected a "
                                     f"size class of {tuple(want)} and a backend of {GPU_BACKENDS}")


def load_table(path=TABLE_PATH):
    """Reads and checks a table. A missing file (a packaging mistake) gives the defaults, with a warning."""
    try:
        with open(path, encoding="utf-8") as f:
            table = json.load(f)
    except FileNotFoundError:
        warnings.warn(f"vid2vid_fast: the dispatch table {path} is missing, so backend='auto' on CUDA picks "
                      "'cuda' when available, else 'triton'", RuntimeWarning, stacklevel=2)
        return empty_table(f"{path} is missing")
    check_table(table, str(path))
    return table


TABLE = load_table()


def pick_gpu_backend(op, dtype, numel, available, table=None):
    """The backend to run `op` on CUDA tensors of `dtype` whose image has `numel` elements.

    available: the backends that can run (vid2vid_fast.available_backends("cuda")). Returns the table's
    choice when it is available, else "cuda", else "triton", else available[0] (the reference).
    table: a table dict (default: the package's table, read at import).
    """
    if op not in OPS:
        raise ValueError(f"op must be one of {OPS}, got {op!r}")
    available = list(available)
    if not available:
        raise ValueError("available must name at least one backend, got none")
    table = TABLE if table is None else table
    chosen = table["choices"].get(op, {}).get(dtype_name(dtype), {}).get(size_class(numel))
    if chosen in available:
        return chosen
    for backend in GPU_BACKENDS:
        if backend in available:
            return backend
    return available[0]


def table_from_timings(rows, source):
    """A table from benchmark rows, dicts with keys op, dtype, numel, impl (backend), pass and ms (None when
    the case failed), as benchmarks/gpu_report.py writes them. For each (op, dtype, size class) the backend
    with the smaller total DECIDING_PASS time over the sizes that both backends ran is chosen; cases that
    only one backend ran give no entry (the default then applies)."""
    times = {}  # (op, dtype, class) -> {numel: {backend: ms}}
    for r in rows:
        if r["pass"] != DECIDING_PASS or r["impl"] not in GPU_BACKENDS or r.get("ms") is None:
            continue
        key = (r["op"], dtype_name(r["dtype"]), size_class(r["numel"]))
        times.setdefault(key, {}).setdefault(r["numel"], {})[r["impl"]] = r["ms"]
    table = empty_table(source)
    for (op, dtype, cls), by_numel in sorted(times.items()):
        both = [t for t in by_numel.values() if all(b in t for b in GPU_BACKENDS)]
        if not both:
            continue
        totals = {b: sum(t[b] for t in both) for b in GPU_BACKENDS}
        best = min(GPU_BACKENDS, key=lambda b: totals[b])  # ties go to the first, "cuda"
        table["choices"].setdefault(op, {}).setdefault(dtype, {})[cls] = best
    check_table(table, "the new table")
    return table


def write_table(table, path=TABLE_PATH):
    """Writes `table` to path atomically (temporary file beside it, then rename)."""
    check_table(table, "the table to write")
    path = Path(path)
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(table, f, indent=1, sort_keys=True)
            f.write("\n")
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
