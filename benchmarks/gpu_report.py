"""One-shot GPU report: build, CUDA and Triton tests, compute-sanitizer, benchmarks, dispatch table.

    python3 benchmarks/gpu_report.py [--device cuda|cpu] [--quick] [--out DIR] [--skip-build] [--skip-tests]
                                     [--skip-sanitizer] [--no-compile] [--dispatch-table PATH] [--deadline-s S]

scripts/gpu_report.sh runs it on a fresh GPU machine with no network. In order:

1. build: the extension in place (`python setup.py build_ext --inplace`, CPU + CUDA kernels) against the
   torch already installed, with CUDA_HOME (default /usr/local/cuda), TORCH_CUDA_ARCH_LIST (default 9.0)
   and MAX_JOBS (default: the core count) from the environment. Nothing is installed.
2. tests: `pytest tests/ops -m cuda`, then every tests/**/test*triton*.py file (all their tests), the
   data tests left out; while they run, `compute-sanitizer --tool memcheck` runs
   benchmarks/gpu_sanitize_driver.py (every op forward and backward on every GPU backend, hostile flows).
3. benchmarks: each op forward (fwd), backward alone (bwd) and both (fwd+bwd), for every fused backend
   (triton, cuda; cpu on --device cpu), the eager reference chain (benchmarks/op_cases.py: what a vid2vid
   user runs today, grid_sample based) and torch.compile of that chain, in float32 and bfloat16, at
   1x3x512x1024, 4x3x512x1024 and 2x64x256x512. Times are medians of CUDA-event timings
   (triton.testing.do_bench, which also flushes the L2 cache between runs); on the CPU, medians of
   perf_counter timings. Peak memory is what one call allocates above what was allocated before it.
   A device-to-device copy gives the bandwidth ceiling. The benchmarks get the time the steps before them
   left of --deadline-s (default 420 s, so the whole run stays under 8 minutes); cases past it are listed
   as skipped, the target shape first so that the targets are measured.
4. output: Markdown, JSON, a PNG chart and the logs under --out (default benchmarks/results/), named
   {gpu or cpu}-{model}-{date}; the dispatch table (vid2vid_fast/ops/dispatch_table.json) regenerated from
   the fwd+bwd times (GPU only); everything copied to $OUT when that variable is set; a short table last.

Byte model: the fewest bytes an op must move through memory, each input read once and each output written
once, in the op's dtype. With N = B*C*H*W image elements and P = B*H*W pixels (flow 2P, weight and mask P):
    flow_warp       fwd 2N + 2P   bwd 3N + 4P   (bwd reads grad_out, img, flow; writes grad_img, grad_flow)
    warp_blend      fwd 3N + 3P   bwd 5N + 6P
    masked_warp_l1  fwd 2N + 3P   bwd 4N + 6P   (1-channel mask; the loss is a scalar)
and fwd+bwd is the sum. Achieved bandwidth = those bytes / median time; the copy moves 2 bytes (read +
write) per byte copied. The issue's targets: the fused forward at >= 70% of the copy bandwidth, and fused
warp_blend fwd+bwd >= 3x the eager reference and >= 1.5x torch.compile(reference) at 4x3x512x1024,
float32 and bfloat16.
"""

import argparse
import datetime
import glob
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS_DIR = REPO / "benchmarks" / "results"
CACHE_DIR = REPO / "build" / "gpu_report_cache"


def keep_caches_in_repo():
    """Compilers' caches go under build/ in the repository, so the run writes nothing outside it and $OUT."""
    for name, sub in (("TORCHINDUCTOR_CACHE_DIR", "inductor"), ("TRITON_CACHE_DIR", "triton"),
                      ("TORCH_EXTENSIONS_DIR", "torch_extensions"), ("MPLCONFIGDIR", "matplotlib")):
        os.environ.setdefault(name, str(CACHE_DIR / sub))


sys.path.insert(0, str(REPO))

import torch
from result_paths import unused_stem

FULL_SHAPES = ((1, 3, 512, 1024), (4, 3, 512, 1024), (2, 64, 256, 512))
QUICK_SHAPES = ((1, 3, 16, 32), (2, 3, 16, 32), (1, 8, 8, 16))
TARGET_INDEX = 1  # the shape the issue's targets are stated at (4x3x512x1024; its tiny stand-in in --quick)
DTYPES = (torch.float32, torch.bfloat16)
PASSES = ("fwd", "bwd", "fwd+bwd")
FUSED = ("triton", "cuda", "cpu")
BASELINES = ("eager", "compiled")
# Forward agreement with the op in float64 (op_cases.exact_forward, relative to the largest value) before anything is timed.
AGREEMENT = {torch.float32: 1e-4, torch.bfloat16: 3e-2}
TARGETS = {"vs_eager": 3.0, "vs_compiled": 1.5, "copy_fraction": 0.70}
# (N coefficient, P coefficient) of the byte model, per op and pass (see the module docstring).
BYTE_MODEL = {
    "flow_warp": {"fwd": (2, 2), "bwd": (3, 4)},
    "warp_blend": {"fwd": (3, 3), "bwd": (5, 6)},
    "masked_warp_l1": {"fwd": (2, 3), "bwd": (4, 6)},
}


def min_bytes(op, pass_, shape, element_size):
    b, c, h, w = shape
    n, p = b * c * h * w, b * h * w
    parts = ("fwd", "bwd") if pass_ == "fwd+bwd" else (pass_,)
    return sum(BYTE_MODEL[op][part][0] * n + BYTE_MODEL[op][part][1] * p for part in parts) * element_size


def shape_name(shape):
    return "x".join(map(str, shape))


def dtype_name(dtype):
    return str(dtype).removeprefix("torch.")


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def write_text_atomically(path, text):
    from ops_table import write_atomically

    write_atomically(Path(path), lambda f: f.write(text.encode()))


# ------------------------------------------------------------------------------------------- steps 1 and 2


def run_logged(cmd, log_path, timeout, env=None, cwd=REPO):
    """Runs cmd (an argument list), output to log_path; returns (exit code or 'timeout', seconds)."""
    begin = time.perf_counter()
    with open(log_path, "w") as log:
        log.write("$ " + " ".join(cmd) + "\n")
        log.flush()
        try:
            rc = subprocess.run(cmd, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=timeout,
                                check=False).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
        except OSError as e:
            log.write(f"could not run: {e}\n")
            rc = "not run"
    return rc, round(time.perf_counter() - begin, 1)


def child_env(**extra):
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    env.update(extra)
    return env


def build(log_path):
    cuda_home = os.environ.get("CUDA_HOME") or ("/usr/local/cuda" if Path("/usr/local/cuda").is_dir() else "")
    env = child_env(TORCH_CUDA_ARCH_LIST=os.environ.get("TORCH_CUDA_ARCH_LIST", "9.0"),
                    MAX_JOBS=os.environ.get("MAX_JOBS", str(os.cpu_count() or 4)))
    if cuda_home:
        env["CUDA_HOME"] = cuda_home
    rc, seconds = run_logged([sys.executable, "setup.py", "build_ext", "--inplace"], log_path, 420, env)
    return {"step": "build", "status": "ok" if rc == 0 else f"failed ({rc})", "seconds": seconds,
            "detail": f"CUDA_HOME={cuda_home or '(none)'} TORCH_CUDA_ARCH_LIST={env['TORCH_CUDA_ARCH_LIST']}",
            "log": log_path.name}


def junit_counts(xml_path):
    """(passed, failed, errors, skipped) from a pytest --junitxml file."""
    root = ET.parse(xml_path).getroot()
    suites = [root] if root.tag == "testsuite" else list(root)
    total = failed = errors = skipped = 0
    for s in suites:
        total += int(s.get("tests", 0))
        failed += int(s.get("failures", 0))
        errors += int(s.get("errors", 0))
        skipped += int(s.get("skipped", 0))
    return total - failed - errors - skipped, failed, errors, skipped


def pytest_step(name, targets, marker, log_path, timeout):
    xml = log_path.with_suffix(".xml")
    cmd = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider", f"--junitxml={xml}"]
    if marker:
        cmd += ["-m", marker]
    rc, seconds = run_logged(cmd, log_path, timeout, child_env())
    counts = "no results"
    if xml.exists():
        passed, failed, errors, skipped = junit_counts(xml)
        counts = f"{passed} passed, {failed} failed, {errors} errors, {skipped} skipped"
        xml.unlink()
    ok = rc == 0 or (rc == 5 and counts.startswith("0 passed"))  # 5: nothing collected
    return {"step": name, "status": ("ok" if ok else f"failed ({rc})") + f": {counts}", "seconds": seconds,
            "detail": " ".join(targets) + (f" -m '{marker}'" if marker else ""), "log": log_path.name}


def start_sanitizer(log_path):
    tool = shutil.which("compute-sanitizer") or "/usr/local/cuda/bin/compute-sanitizer"
    if not Path(tool).exists():
        return None, {"step": "compute-sanitizer memcheck", "status": "not run: compute-sanitizer not found",
                      "seconds": 0, "detail": "", "log": None}
    cmd = [tool, "--tool", "memcheck", "--error-exitcode", "99", "--print-limit", "20",
           sys.executable, str(REPO / "benchmarks" / "gpu_sanitize_driver.py")]
    log = open(log_path, "w")  # noqa: SIM115 (open while the process runs; finish_sanitizer closes it)
    log.write("$ " + " ".join(cmd) + "\n")
    log.flush()
    env = child_env(PYTORCH_NO_CUDA_MEMORY_CACHING="1")
    proc = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    return (proc, log, time.perf_counter()), None


def finish_sanitizer(started, log_path, timeout):
    proc, log, begin = started
    try:
        rc = proc.wait(timeout=max(1.0, timeout - (time.perf_counter() - begin)))
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        rc = "timeout"
    log.close()
    text = log_path.read_text(errors="replace")
    summary = re.findall(r"ERROR SUMMARY: (\d+) error", text)
    driver = re.findall(r"^driver: .*$", text, re.MULTILINE)
    ok = rc == 0 and summary and summary[-1] == "0"
    status = "ok" if ok else f"failed ({rc})"
    status += f": {summary[-1] if summary else '?'} memcheck errors; " + (driver[-1] if driver else "driver did not finish")
    return {"step": "compute-sanitizer memcheck", "status": status,
            "seconds": round(time.perf_counter() - begin, 1), "detail": "benchmarks/gpu_sanitize_driver.py",
            "log": log_path.name}


def triton_test_files():
    found = sorted({p for p in glob.glob(str(REPO / "tests" / "**" / "test*triton*.py"), recursive=True)}
                   | set(glob.glob(str(REPO / "tests" / "**" / "triton" / "test_*.py"), recursive=True)))
    return [os.path.relpath(p, REPO) for p in found]


# ------------------------------------------------------------------------------------------------ step 3


class Timer:
    """Median time of a step in milliseconds: triton.testing.do_bench on CUDA, perf_counter on the CPU."""

    def __init__(self, device, quick):
        self.device, self.quick = device, quick
        self.do_bench = None
        if device == "cuda":
            try:
                from triton.testing import do_bench

                self.do_bench = do_bench
            except ImportError:
                pass
        self.method = ("triton.testing.do_bench (CUDA events, L2 flushed, median)" if self.do_bench else
                       "CUDA events, median" if device == "cuda" else "time.perf_counter, median")

    def __call__(self, step):
        if self.do_bench is not None:
            warmup, rep = (5, 20) if self.quick else (25, 100)
            return float(self.do_bench(step, warmup=warmup, rep=rep, return_mode="median"))
        warmup, repeats = (1, 5) if self.quick else (5, 30)
        for _ in range(warmup):
            step()
        times = []
        for _ in range(repeats):
            if self.device == "cuda":
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                step()
                end.record()
                end.synchronize()
                times.append(start.elapsed_time(end))
            else:
                begin = time.perf_counter()
                step()
                times.append((time.perf_counter() - begin) * 1e3)
        return statistics.median(times)


def peak_mib(step, device):
    """MiB that one call of step allocates above what was allocated before it (None on the CPU)."""
    if device != "cuda":
        return None
    torch.cuda.synchronize()
    before = torch.cuda.memory_allocated()
    torch.cuda.reset_peak_memory_stats()
    step()
    torch.cuda.synchronize()
    return round((torch.cuda.max_memory_allocated() - before) / 2**20, 1)


def copy_bandwidth(device, timer, quick):
    """GB/s of a device-to-device copy, counting the bytes read and the bytes written."""
    nbytes = 2**24 if quick or device != "cuda" else 2**30
    src = torch.rand(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    ms = timer(lambda: dst.copy_(src))
    return {"bytes_copied": nbytes, "ms": ms, "gbps": 2 * nbytes / ms / 1e6}


def make_steps(fn, inputs, upstream):
    """The three passes of fn on inputs: {"fwd", "bwd", "fwd+bwd"} -> a no-argument callable. bwd replays
    the backward of one retained forward graph."""
    leaves = [t.detach().clone().requires_grad_(True) for t in inputs]

    def fwd():
        with torch.no_grad():
            return fn(*inputs)

    def fwd_bwd():
        return torch.autograd.grad(fn(*leaves), leaves, upstream)

    retained = {}

    def bwd():
        if "out" not in retained:
            retained["out"] = fn(*leaves)
        return torch.autograd.grad(retained["out"], leaves, upstream, retain_graph=True)

    return {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd_bwd}


def on_backend(op_fn, backend):
    return lambda *xs: op_fn(*xs, backend=backend)


def benchmark(device, impls, shapes, timer, budget_s, log):
    """Rows of {op, impl, dtype, shape, numel, pass, ms, bytes, gbps, peak_mib, rel_error, note}."""
    from op_cases import OPS, bind, exact_forward, forward_error, make_inputs, op_samplings

    compiled = {op: torch.compile(eager, dynamic=False) for op, (eager, _) in OPS.items()}
    begin = time.perf_counter()
    rows = []
    # The target shape first, so that a run cut short by the budget still has the numbers the targets need.
    order = [shapes[TARGET_INDEX]] + [s for i, s in enumerate(shapes) if i != TARGET_INDEX]
    for shape in order:
        for op, sampling in op_samplings():
            eager = bind(op, "reference", sampling, None)
            base = make_inputs(op, shape, "cpu", seed=0)
            for dtype in DTYPES:
                inputs = [t.to(device=device, dtype=dtype) for t in base]
                # What each impl should compute: the op on the same (rounded) inputs, in float64.
                truth = exact_forward(op, sampling, inputs)
                with torch.no_grad():
                    upstream = torch.randn_like(eager(*inputs))
                for impl in impls:
                    if impl == "compiled":
                        fn = lambda *xs, op=op, sampling=sampling: compiled[op](*xs, sampling)  # noqa: E731
                    else:
                        fn = bind(op, "reference" if impl == "eager" else "fused", sampling, impl)
                    common = {"op": op, "sampling": str(sampling), "impl": impl, "dtype": dtype_name(dtype),
                              "shape": list(shape),
                              "numel": shape[0] * shape[1] * shape[2] * shape[3]}
                    over = time.perf_counter() - begin > budget_s
                    error, note = None, None
                    if not over:
                        try:
                            with torch.no_grad():
                                error = forward_error(fn(*inputs), truth, sampling)
                            # A speedup of wrong results means nothing: a fused backend that disagrees is not
                            # timed. The baselines are timed regardless (in bfloat16 the eager chain adds the
                            # flow to the base grid in bfloat16, which is inaccurate on wide images); their
                            # error is in the JSON.
                            if impl in FUSED and not error <= AGREEMENT[dtype]:
                                note = f"WRONG: forward differs from the op (float64) by {error:.3g}"
                        except Exception as e:  # noqa: BLE001 (a failing impl is reported, the report goes on)
                            note = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                    for pass_ in PASSES:
                        row = dict(common, **{"pass": pass_, "ms": None, "bytes": None, "gbps": None,
                                              "peak_mib": None, "rel_error": error, "note": note})
                        if over:
                            row["note"] = f"skipped: the {budget_s:.0f} s benchmark budget was spent"
                        elif note is None:
                            try:
                                step = make_steps(fn, inputs, upstream)[pass_]
                                step()  # compiles what needs compiling, outside the timing
                                row["peak_mib"] = peak_mib(step, device)
                                row["ms"] = timer(step)
                                row["bytes"] = min_bytes(op, pass_, shape, dtype.itemsize)
                                row["gbps"] = row["bytes"] / row["ms"] / 1e6
                            except Exception as e:  # noqa: BLE001 (likewise)
                                row["note"] = f"error: {type(e).__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
                        rows.append(row)
                        shown = f"{row['ms']:9.3f} ms" if row["ms"] is not None else f"   -- {row['note']}"
                        log(f"{op:15s} {str(sampling):24s} {shape_name(shape):13s} {dtype_name(dtype):8s} {impl:8s} {pass_:7s} {shown}")
                    if device == "cuda":
                        torch.cuda.empty_cache()
    return rows


# ------------------------------------------------------------------------------------------------ step 4


def find(rows, **match):
    """The first row with the values of `match`; of the default sampling unless match names one."""
    from op_cases import DEFAULT_SAMPLING  # after the build step, like every import of the package here

    match.setdefault("sampling", str(DEFAULT_SAMPLING))
    for r in rows:
        if all(r[k] == v for k, v in match.items()):
            return r
    return None


def fused_impls(rows):
    return [i for i in FUSED if any(r["impl"] == i for r in rows)]


def targets(rows, copy, shape):
    """The issue's pass/fail lines, for every fused backend that ran, at `shape`."""
    lines = []
    for impl in fused_impls(rows):
        for dtype in DTYPES:
            d = dtype_name(dtype)
            mine = find(rows, op="warp_blend", impl=impl, dtype=d, shape=list(shape), **{"pass": "fwd+bwd"})
            for base, key in (("eager", "vs_eager"), ("compiled", "vs_compiled")):
                other = find(rows, op="warp_blend", impl=base, dtype=d, shape=list(shape), **{"pass": "fwd+bwd"})
                what = (f"warp_blend fwd+bwd {impl} vs {'torch.compile(reference)' if base == 'compiled' else 'eager reference'}"
                        f" {shape_name(shape)} {d}: need >= {TARGETS[key]:.1f}x")
                if mine is None or other is None or mine["ms"] is None or other["ms"] is None:
                    lines.append(f"N/A  {what}, not measured")
                else:
                    x = other["ms"] / mine["ms"]
                    lines.append(f"{'PASS' if x >= TARGETS[key] else 'FAIL'} {what}, got {x:.2f}x")
            for op in BYTE_MODEL:
                fwd = find(rows, op=op, impl=impl, dtype=d, shape=list(shape), **{"pass": "fwd"})
                what = f"{op} fwd {impl} {shape_name(shape)} {d}: need >= {TARGETS['copy_fraction']:.0%} of copy bandwidth"
                if fwd is None or fwd["gbps"] is None:
                    lines.append(f"N/A  {what}, not measured")
                else:
                    f = fwd["gbps"] / copy["gbps"]
                    lines.append(f"{'PASS' if f >= TARGETS['copy_fraction'] else 'FAIL'} {what}, got {f:.0%} "
                                 f"({fwd['gbps']:.0f} of {copy['gbps']:.0f} GB/s)")
    return lines


def ms_cell(row):
    if row is None:
        return "n/a"
    if row["ms"] is None:
        return "skipped" if (row["note"] or "").startswith("skipped") else "error" if "error" in (row["note"] or "") else "WRONG"
    return f"{row['ms']:.3f}"


def time_table(rows, impls, passes, shapes):
    fused = [i for i in impls if i in FUSED]
    from op_cases import op_samplings

    head = ("| op | sampling | shape | dtype | pass | " + " | ".join(impls)
            + " | best fused × eager | best fused × compiled |")
    lines = [head, "|" + "---|" * 5 + "---:|" * (len(impls) + 2)]
    for op, sampling in op_samplings():
        for shape in shapes:
            for dtype in DTYPES:
                for pass_ in passes:
                    cells = {i: find(rows, op=op, sampling=str(sampling), impl=i, dtype=dtype_name(dtype),
                                     shape=list(shape), **{"pass": pass_}) for i in impls}
                    times = [cells[i]["ms"] for i in fused if cells[i] and cells[i]["ms"] is not None]
                    best = min(times) if times else None
                    ratios = []
                    for base in ("eager", "compiled"):
                        r = cells.get(base)
                        ratios.append(f"{r['ms'] / best:.2f}" if best and r and r["ms"] is not None else "n/a")
                    lines.append(f"| {op} | {sampling} | {shape_name(shape)} | {dtype_name(dtype)} | {pass_} | "
                                 + " | ".join(ms_cell(cells[i]) for i in impls)
                                 + f" | {ratios[0]} | {ratios[1]} |")
    return "\n".join(lines)


def bandwidth_table(rows, copy):
    lines = ["| op | sampling | shape | dtype | impl | fwd GB/s | fwd % of copy | fwd+bwd GB/s | peak MiB fwd | "
             "peak MiB fwd+bwd |", "|---|---|---|---|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        if r["pass"] != "fwd":
            continue
        both = find(rows, op=r["op"], sampling=r["sampling"], impl=r["impl"], dtype=r["dtype"], shape=r["shape"],
                    **{"pass": "fwd+bwd"})

        def fmt(v, spec):
            return format(v, spec) if v is not None else "n/a"

        lines.append(f"| {r['op']} | {r['sampling']} | {shape_name(r['shape'])} | {r['dtype']} | {r['impl']} | {fmt(r['gbps'], '.0f')} | "
                     f"{fmt(r['gbps'] / copy['gbps'] * 100 if r['gbps'] else None, '.0f')} | "
                     f"{fmt(both and both['gbps'], '.0f')} | {fmt(r['peak_mib'], '.1f')} | {fmt(both and both['peak_mib'], '.1f')} |")
    return "\n".join(lines)


def markdown(report):
    m = report["machine"]
    lines = [f"# vid2vid_fast GPU report: {m.get('gpu') or m['cpu']} ({report['device']}), {report['date']}", ""]
    lines += [f"- {k}: {v}" for k, v in m.items()]
    lines += ["", "## Steps", "", "| step | status | seconds | detail | log |", "|---|---|---:|---|---|"]
    lines += [f"| {s['step']} | {s['status']} | {s['seconds']} | {s['detail']} | {s['log'] or ''} |" for s in report["steps"]]
    lines += ["", "## Targets", ""] + [f"- {line}" for line in report["targets"]]
    if report["notes"]:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in report["notes"]]
    copy = report["copy"]
    lines += [
        "", "## Method", "",
        (f"- timing: {report['timing']}; fused backends: {', '.join(report['fused']) or 'none'}; eager = the "
         "grid_sample chain of benchmarks/op_cases.py (what vid2vid runs); compiled = torch.compile(eager, "
         "dynamic=False); inputs from op_cases.make_inputs (smooth flows of a few pixels); every op with the default "
         "sampling (border-bilinear-corners), flow_warp also with op_cases.SAMPLINGS"),
        ("- passes: fwd under no_grad; bwd = torch.autograd.grad of one retained forward; fwd+bwd = both, "
         "gradients of every input"),
        (f"- copy bandwidth (device-to-device, read + write): {copy['gbps']:.0f} GB/s "
         f"({copy['bytes_copied'] / 2**20:.0f} MiB in {copy['ms']:.3f} ms)"),
        ("- byte model (fewest bytes, each input read once and each output written once, N = B*C*H*W, "
         "P = B*H*W): flow_warp fwd 2N+2P, bwd 3N+4P; warp_blend fwd 3N+3P, bwd 5N+6P; masked_warp_l1 fwd "
         "2N+3P, bwd 4N+6P; fwd+bwd the sum; times the dtype's size"),
        "", "## Forward + backward (ms, median)", "",
        time_table(report["rows"], report["impls"], ("fwd+bwd",), report["shapes"]),
        "", "## Every pass (ms, median)", "",
        time_table(report["rows"], report["impls"], PASSES, report["shapes"]),
        "", "## Bandwidth and memory", "",
        bandwidth_table(report["rows"], copy),
    ]
    problems = [r for r in report["rows"] if r["note"] and not r["note"].startswith("skipped")]
    if problems:
        lines += ["", "## Errors", ""]
        lines += [f"- {r['op']} {shape_name(r['shape'])} {r['dtype']} {r['impl']} {r['pass']}: {r['note']}" for r in problems]
    return "\n".join(lines) + "\n"


def short_table(report):
    """fwd+bwd only, one line per op, shape and dtype: what the terminal shows last."""
    impls = report["impls"]
    lines = [f"{'op':15s} {'shape':13s} {'dtype':8s} " + " ".join(f"{i:>9s}" for i in impls) + "  (fwd+bwd ms)"]
    for op in BYTE_MODEL:
        for shape in report["shapes"]:
            for dtype in DTYPES:
                cells = [ms_cell(find(report["rows"], op=op, impl=i, dtype=dtype_name(dtype), shape=list(shape),
                                      **{"pass": "fwd+bwd"})) for i in impls]
                lines.append(f"{op:15s} {shape_name(shape):13s} {dtype_name(dtype):8s} " + " ".join(f"{c:>9s}" for c in cells))
    return "\n".join(lines)


def plot(report, path):
    """Speedup of each fused backend and of torch.compile over the eager chain, fwd+bwd; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        report["notes"].append("matplotlib is not installed, so no chart was drawn")
        return None
    from ops_table import write_atomically

    impls = [i for i in report["impls"] if i != "eager"]
    groups = [(op, shape, dtype_name(d)) for op in BYTE_MODEL for shape in report["shapes"] for d in DTYPES]
    fig, ax = plt.subplots(figsize=(9, 0.28 * len(groups) * max(1, len(impls)) / 2 + 1.5))
    height = 0.8 / max(1, len(impls))
    for k, impl in enumerate(impls):
        speedups = []
        for op, shape, d in groups:
            mine = find(report["rows"], op=op, impl=impl, dtype=d, shape=list(shape), **{"pass": "fwd+bwd"})
            base = find(report["rows"], op=op, impl="eager", dtype=d, shape=list(shape), **{"pass": "fwd+bwd"})
            ok = mine and base and mine["ms"] and base["ms"]
            speedups.append(base["ms"] / mine["ms"] if ok else 0.0)
        ax.barh([g + k * height for g in range(len(groups))], speedups, height=height, label=impl)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.axvline(TARGETS["vs_eager"], color="gray", linewidth=0.8, linestyle="--")
    ax.set_yticks([g + 0.4 - height / 2 for g in range(len(groups))],
                  [f"{op} {shape_name(s)} {d}" for op, s, d in groups], fontsize=7)
    ax.invert_yaxis()
    ax.set_xlabel("fwd+bwd speedup over the eager grid_sample chain (×, higher is better; dashed: 3× target)")
    ax.set_title(f"vid2vid_fast, {report['machine'].get('gpu') or report['machine']['cpu']}, {report['date']}", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=110))
    plt.close(fig)
    return path


def machine_info(device):
    from ops_table import cpu_model

    info = {"cpu": cpu_model(), "cores": os.cpu_count(), "python": platform.python_version(), "torch": torch.__version__}
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = "not installed"
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        info["gpu"] = torch.cuda.get_device_name(0)
        info["gpu_memory_gib"] = round(props.total_memory / 2**30, 1)
        info["multiprocessors"] = props.multi_processor_count
        info["cuda"] = torch.version.cuda
        smi = shutil.which("nvidia-smi")
        if smi:
            out = subprocess.run([smi, "--query-gpu=driver_version,clocks.sm,clocks.mem", "--format=csv,noheader"],
                                 capture_output=True, text=True, timeout=30, check=False)
            info["driver, SM clock, memory clock"] = out.stdout.strip() or out.stderr.strip()
    return info


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda")
    parser.add_argument("--quick", action="store_true",
                        help=f"tiny shapes {', '.join(map(shape_name, QUICK_SHAPES))}, short timings, no torch.compile")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results folder (default {RESULTS_DIR})")
    parser.add_argument("--skip-build", action="store_true", help="use the extension as it is")
    parser.add_argument("--skip-tests", action="store_true")
    parser.add_argument("--skip-sanitizer", action="store_true")
    parser.add_argument("--no-compile", action="store_true", help="leave out torch.compile(reference)")
    parser.add_argument("--dispatch-table", type=Path, default=None,
                        help="where to write the regenerated dispatch table (default: the package's; GPU only)")
    parser.add_argument("--deadline-s", type=float, default=420,
                        help="the whole run's target in seconds (default 420): the benchmarks get what the steps "
                             "before them left, at least 60 s; cases past it are skipped and say so")
    args = parser.parse_args()
    keep_caches_in_repo()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda needs a GPU that torch can see; for a dry run use --device cpu --quick")
    on_gpu = args.device == "cuda"
    started = time.perf_counter()
    now = datetime.datetime.now().astimezone()
    args.out.mkdir(parents=True, exist_ok=True)

    def log(message):
        print(f"[{time.perf_counter() - started:6.1f} s] {message}", flush=True)

    hardware = torch.cuda.get_device_name(0).removeprefix("NVIDIA ") if on_gpu else None
    stem_name = (f"gpu-{slug(hardware)}" if on_gpu else "cpu") + f"-{now:%Y-%m-%d}" + ("-quick" if args.quick else "")
    stem = unused_stem(args.out, stem_name)  # a later run never overwrites an earlier one's report
    steps, notes = [], []

    if on_gpu and not args.skip_build:
        log("building the extension in place (setup.py build_ext --inplace)")
        steps.append(build(Path(f"{stem}-build.log")))
        log(f"build: {steps[-1]['status']} in {steps[-1]['seconds']} s")
    else:
        steps.append({"step": "build", "status": "skipped" + ("" if on_gpu else " (no GPU: the CPU run uses the "
                      "extension as it is)"), "seconds": 0, "detail": "", "log": None})

    # The build above is the one way this run builds: no minutes-long JIT build at import when it failed.
    os.environ.setdefault("VID2VID_FAST_NO_JIT", "1")
    import vid2vid_fast as v2v  # after the build, so that the fresh extension is the one loaded
    from vid2vid_fast.ops import backends, dispatch

    available = v2v.available_backends(args.device)
    notes.append(f"extension: {backends.EXTENSION_SOURCE}; backends on {args.device}: {', '.join(available)}")
    for name in ("triton", "cuda") if on_gpu else ("cpu",):
        if name not in available:
            notes.append(f"backend {name!r} is unavailable here, so its rows are left out")

    if on_gpu and not args.skip_tests:
        sanitizer = None
        if not args.skip_sanitizer:
            log("compute-sanitizer memcheck on benchmarks/gpu_sanitize_driver.py, in the background")
            sanitizer, refused = start_sanitizer(Path(f"{stem}-sanitizer.log"))
            if refused:
                steps.append(refused)
        files = triton_test_files()
        log("CUDA tests: pytest tests/ops -m cuda")
        ignore = [f"--ignore={f}" for f in files]  # run once, in the Triton step
        steps.append(pytest_step("CUDA tests", ["tests/ops", *ignore], "cuda", Path(f"{stem}-tests-cuda.log"), 240))
        log(f"CUDA tests: {steps[-1]['status']}")
        if files:
            log(f"Triton tests: pytest {' '.join(files)}")
            steps.append(pytest_step("Triton tests", files, None, Path(f"{stem}-tests-triton.log"), 240))
            log(f"Triton tests: {steps[-1]['status']}")
        else:
            steps.append({"step": "Triton tests", "status": "none found (tests/**/test*triton*.py)", "seconds": 0,
                          "detail": "", "log": None})
        if sanitizer:
            steps.append(finish_sanitizer(sanitizer, Path(f"{stem}-sanitizer.log"), 300))
            log(f"sanitizer: {steps[-1]['status']}")
    elif on_gpu and not args.skip_sanitizer:
        started_sanitizer, refused = start_sanitizer(Path(f"{stem}-sanitizer.log"))
        steps.append(refused or finish_sanitizer(started_sanitizer, Path(f"{stem}-sanitizer.log"), 300))
    else:
        why = "--skip-tests" if on_gpu else "no GPU"
        steps.append({"step": "CUDA and Triton tests, compute-sanitizer", "status": f"skipped ({why})",
                      "seconds": 0, "detail": "", "log": None})

    timer = Timer(args.device, args.quick)
    torch._dynamo.config.cache_size_limit = 64  # 3 shapes x 2 dtypes x (inference, training) per op
    if hasattr(torch._dynamo.config, "recompile_limit"):
        torch._dynamo.config.recompile_limit = 64
    shapes = QUICK_SHAPES if args.quick else FULL_SHAPES
    impls = [i for i in FUSED if i in available] + ["eager"]
    if args.quick or args.no_compile:
        notes.append("torch.compile(reference) left out (" + ("--quick" if args.quick else "--no-compile") + ")")
    else:
        impls.append("compiled")
    log("copy bandwidth")
    copy = copy_bandwidth(args.device, timer, args.quick)
    log(f"copy: {copy['gbps']:.0f} GB/s")
    budget = max(60.0, args.deadline_s - (time.perf_counter() - started) - 20)
    bench_begin = time.perf_counter()
    rows = benchmark(args.device, impls, shapes, timer, budget, log)
    steps.append({"step": "benchmarks", "status": f"{sum(r['ms'] is not None for r in rows)} of {len(rows)} cases timed",
                  "seconds": round(time.perf_counter() - bench_begin, 1), "detail": timer.method, "log": None})

    report = {
        "date": now.strftime("%Y-%m-%d %H:%M %Z"),
        "device": args.device,
        "quick": args.quick,
        "machine": machine_info(args.device),
        "timing": timer.method,
        "copy": copy,
        "shapes": list(shapes),
        "impls": impls,
        "fused": [i for i in impls if i in FUSED],
        "steps": steps,
        "notes": notes,
        "rows": rows,
        "byte_model": {op: {p: {"N": n, "P": q} for p, (n, q) in v.items()} for op, v in BYTE_MODEL.items()},
    }
    report["targets"] = targets(rows, copy, shapes[TARGET_INDEX])
    if args.quick or not on_gpu:
        report["targets"].insert(0, f"(the targets are stated for a GPU at 4x3x512x1024; this {args.device}"
                                    f"{' --quick' if args.quick else ''} run evaluates them at {shape_name(shapes[TARGET_INDEX])})")

    written = []
    if on_gpu:
        # backend="auto" is chosen per op, dtype and size from the default sampling's times.
        from op_cases import DEFAULT_SAMPLING

        default_rows = [r for r in rows if r["sampling"] == str(DEFAULT_SAMPLING)]
        table = dispatch.table_from_timings(default_rows, f"benchmarks/gpu_report.py on {report['machine']['gpu']}, {report['date']}")
        if table["choices"]:
            path = args.dispatch_table or dispatch.TABLE_PATH
            dispatch.write_table(table, path)
            dispatch.write_table(table, Path(f"{stem}-dispatch_table.json"))
            written.append(Path(f"{stem}-dispatch_table.json"))
            notes.append(f"dispatch table regenerated: {path}")
        else:
            notes.append("dispatch table not regenerated: no case ran on both triton and cuda")
    else:
        notes.append("dispatch table not regenerated (it is made from GPU timings)")

    report["seconds"] = round(time.perf_counter() - started, 1)
    notes.append(f"whole run: {report['seconds']} s")
    chart = plot(report, stem.with_suffix(".png"))
    write_text_atomically(stem.with_suffix(".md"), markdown(report))
    write_text_atomically(stem.with_suffix(".json"), json.dumps(report, indent=1) + "\n")
    written = [stem.with_suffix(".md"), stem.with_suffix(".json"), chart] + written
    written += [Path(args.out) / s["log"] for s in steps if s.get("log")]
    written = [p for p in written if p is not None and Path(p).exists()]

    out_env = os.environ.get("OUT")
    if out_env:
        # What the device machine sends back: at most 8 files, so the report's own files come first.
        for p in written[:8]:
            shutil.copy2(p, Path(out_env) / Path(p).name)
    print()
    for s in steps:
        print(f"{s['step']}: {s['status']} ({s['seconds']} s)")
    for line in report["targets"]:
        print(line)
    print("wrote " + ", ".join(str(p) for p in written) + (f" (copied to {out_env})" if out_env else ""))
    print()
    print(short_table(report))


if __name__ == "__main__":
    main()
