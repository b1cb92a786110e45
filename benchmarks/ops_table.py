"""Times each fused op against the eager grid_sample chain, side by side, and writes a Markdown table.

    python benchmarks/ops_table.py [--quick] [--cold] [--device cpu|cuda] [--repeats N] [--warmup N] [--out DIR]

For every op, shape and pass (forward, forward + backward) of op_cases.py, the reference chain and the fused op
run alternately, one repetition each in turn, so that a change in machine load affects both; each time is the
median of the repetitions after the warm-up. Each timed run follows an untimed run of the same step, so that
its caches hold its own data (warm), or with --cold a sweep through a buffer larger than the caches. Threads
are torch's default. The table is printed and written, with the raw times as JSON and a bar chart of the
speedups as PNG (when matplotlib is installed), to {out}/{device}-{gpu name, or cpu name and the build of the CPU
kernels}-{date}[-cold].{md,json,png}.
"""

import argparse
import datetime
import json
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

import vid2vid_fast as v2v
from result_paths import unused_stem
from op_cases import PASSES, SHAPES, bind, exact_forward, forward_error, make_inputs, make_step, op_samplings, shape_name

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine(device):
    info = {
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "python": platform.python_version(),
        "hostname": platform.node(),
        # Other work on the machine slows both columns unevenly (OpenMP threads wait for busy cores).
        "load_average": round(os.getloadavg()[0], 2) if hasattr(os, "getloadavg") else None,
    }
    if device == "cpu":
        # Which build of the CPU kernels ran (VID2VID_FAST_CPU_ISA picks one; the default is the best one).
        info["cpu_isa"] = torch.ops.vid2vid_fast.cpu_isa()
        # What the processor itself offers (AVX512, AVX2, ...), as torch reads it: an avx2 build can run on
        # an AVX-512 processor, and the table must say which it was.
        info["processor_isa"] = torch.backends.cpu.get_cpu_capability()
    if device == "cuda":
        info["gpu"] = torch.cuda.get_device_name()
        info["cuda"] = torch.version.cuda
    return info


def slug(text):
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "unknown"


def timer(device):
    """A function that runs step once and returns its time in milliseconds."""
    if device == "cuda":
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)

        def time_cuda(step):
            start.record()
            step()
            end.record()
            end.synchronize()
            return start.elapsed_time(end)
        return time_cuda

    def time_cpu(step):
        begin = time.perf_counter()
        step()
        return (time.perf_counter() - begin) * 1e3
    return time_cpu


def check_agreement(op, shape, sampling, inputs, backend):
    """A speedup of wrong results means nothing: the fused op and the eager chain must both compute the op
    (op_cases.exact_forward) to float32 rounding; nearest sampling lets the eager chain pick the other pixel
    at a tie, so its error is not checked there."""
    exact = exact_forward(op, sampling, inputs)
    with torch.no_grad():
        outputs = {impl: bind(op, impl, sampling, backend)(*inputs) for impl in ("fused", "reference")}
    for impl, out in outputs.items():
        error = forward_error(out, exact, sampling)
        if not error <= 1e-4 and not (impl == "reference" and sampling.mode == "nearest"):
            sys.exit(f"error: {op} {shape_name(shape)} {sampling}: the {impl} output differs from the op's "
                     f"(relative error {error:.3g})")


def time_case(op, shape, pass_, sampling, device, repeats, warmup, cold=None):
    inputs = make_inputs(op, shape, device)
    if pass_ == PASSES[0]:
        check_agreement(op, shape, sampling, inputs, device)
    steps = {impl: make_step(op, impl, pass_, inputs, device, sampling) for impl in ("reference", "fused")}
    measure = timer(device)
    for _ in range(warmup):
        for step in steps.values():
            measure(step)
    times = {"reference": [], "fused": []}
    for i in range(repeats):
        order = ("reference", "fused") if i % 2 == 0 else ("fused", "reference")
        for impl in order:
            # Each timed run follows an untimed run of the same step (warm: its own inputs in cache, as when
            # a training step has just produced them), or a sweep through a buffer larger than the caches
            # (cold). Timing straight after the other implementation would charge each with evicting the
            # other's data, which penalises the smaller footprint.
            if cold is None:
                steps[impl]()
            else:
                cold.mul_(1.0)
            times[impl].append(measure(steps[impl]))
    reference_ms, fused_ms = statistics.median(times["reference"]), statistics.median(times["fused"])
    return {
        "op": op,
        "shape": list(shape),
        "sampling": str(sampling),
        "pass": pass_,
        "reference_ms": reference_ms,
        "fused_ms": fused_ms,
        "speedup": reference_ms / fused_ms,
        "reference_ms_all": times["reference"],
        "fused_ms_all": times["fused"],
    }


def markdown(report):
    m = report["machine"]
    hardware = (f"{m['gpu']} (CUDA {m['cuda']}), host CPU {m['cpu']}" if "gpu" in m
                else f"{m['cpu']} ({m.get('processor_isa', 'ISA not recorded')}), {m['cpu_isa']} build of the kernels")
    before = ("an untimed run of the same step (warm caches)" if report["caches"] == "warm"
              else "a sweep through a 256 MB buffer (cold caches)")
    lines = [
        f"# vid2vid_fast: fused ops vs the eager grid_sample chain ({report['device']})",
        "",
        f"- date: {report['date']}",
        f"- machine: {hardware}; {m['cores']} cores, {m['threads']} torch threads; torch {m['torch']}, "
        f"Python {m['python']}; load average {m['load_average']} at the start",
        f"- method: median of {report['repeats']} repetitions after {report['warmup']} warm-up, reference and "
        f"fused alternating; each timed run follows {before}; float32, smooth flows of a few pixels "
        "(op_cases.smooth_flow); fwd+bwd computes the gradients of every input",
        "- sampling: padding-mode-align (corners: align_corners=True, centers: False); the default is "
        "border-bilinear-corners",
        "- reference: `reference.grid_sample_warp` plus the blend / loss arithmetic in eager PyTorch; fused: "
        f"`backend=\"{report['device']}\"`",
        "",
        "| op | sampling | shape | pass | reference ms | fused ms | speedup × |",
        "|---|---|---|---|---:|---:|---:|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['op']} | {r['sampling']} | {shape_name(r['shape'])} | {r['pass']} | {r['reference_ms']:.3f} | "
            f"{r['fused_ms']:.3f} | {r['speedup']:.2f} |"
        )
    return "\n".join(lines) + "\n"


def write_atomically(path, write):
    """Calls write(file) on a temporary file beside path, then renames it to path: never a half-written file."""
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
        os.chmod(temporary, 0o644)  # mkstemp makes it private
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise


def plot(report, path):
    """A bar chart of the speedups, or None (and a note) when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("note: matplotlib is not installed, so no chart was drawn (pip install matplotlib)")
        return None
    results = report["results"]
    labels = [f"{r['op']} {r['sampling']} {shape_name(r['shape'])} {r['pass']}" for r in results]
    speedups = [r["speedup"] for r in results]
    colors = ["tab:blue" if r["pass"] == "fwd" else "tab:orange" for r in results]
    fig, ax = plt.subplots(figsize=(8, 0.3 * len(results) + 1.2))
    ax.barh(range(len(results)), speedups, color=colors)
    ax.axvline(1.0, color="black", linewidth=0.8)
    ax.set_yticks(range(len(results)), labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("speedup over the eager grid_sample chain (×, higher is better)")
    ax.set_title(f"vid2vid_fast fused ops, {report['device']}, {report['date']}", fontsize=10)
    fig.tight_layout()
    write_atomically(path, lambda f: fig.savefig(f, format="png", dpi=120))
    plt.close(fig)
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--quick", action="store_true", help="fewer repetitions (5 after 1 warm-up)")
    parser.add_argument("--repeats", type=int, help="timed repetitions per case (default 50, --quick 5)")
    parser.add_argument("--warmup", type=int, help="untimed repetitions first (default 5, --quick 1)")
    parser.add_argument("--cold", action="store_true",
                        help="time each run after sweeping a 256 MB buffer (cold caches) rather than after a run "
                             "of the same step (warm)")
    parser.add_argument("--out", type=Path, default=RESULTS_DIR, help=f"results folder (default {RESULTS_DIR})")
    args = parser.parse_args()
    repeats = args.repeats or (5 if args.quick else 50)
    warmup = args.warmup if args.warmup is not None else (1 if args.quick else 5)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: --device cuda needs a CUDA GPU, and torch sees none")
    if args.device not in v2v.available_backends(args.device):
        sys.exit(f"error: the extension has no {args.device} kernels to time (available: "
                 f"{v2v.available_backends(args.device)}); build it with scripts/setup.sh")

    now = datetime.datetime.now().astimezone()
    report = {
        "date": now.strftime("%Y-%m-%d %H:%M %Z"),
        "device": args.device,
        "machine": machine(args.device),
        "repeats": repeats,
        "warmup": warmup,
        "caches": "cold" if args.cold else "warm",
        "results": [],
    }
    # Larger than any processor's last-level cache; on the GPU, than its L2.
    cold = torch.zeros(64 * 2**20, device=args.device) if args.cold else None
    cases = [(op, sampling, shape, pass_) for op, sampling in op_samplings() for shape in SHAPES for pass_ in PASSES]
    print(f"timing {len(cases)} cases on {args.device}: {repeats} repetitions after {warmup} warm-up each", flush=True)
    for i, (op, sampling, shape, pass_) in enumerate(cases, 1):
        r = time_case(op, shape, pass_, sampling, args.device, repeats, warmup, cold)
        report["results"].append(r)
        print(f"[{i:2d}/{len(cases)}] {op:15s} {str(sampling):24s} {shape_name(shape):12s} {pass_:8s} "
              f"reference {r['reference_ms']:9.3f} ms"
              f"  fused {r['fused_ms']:9.3f} ms  {r['speedup']:6.2f}×", flush=True)

    table = markdown(report)
    print()
    print(table)
    args.out.mkdir(parents=True, exist_ok=True)
    m = report["machine"]
    hardware = m.get("gpu") or f"{m['cpu']} {m['cpu_isa']}"
    # A --quick run gets its own name; a second run of the same day gets -2, -3, ...: none replaces another.
    stem = unused_stem(args.out, f"{args.device}-{slug(hardware)}-{now:%Y-%m-%d}{'-cold' if args.cold else ''}"
                       f"{'-quick' if args.quick else ''}")
    write_atomically(stem.with_suffix(".md"), lambda f: f.write(table.encode()))
    write_atomically(stem.with_suffix(".json"), lambda f: f.write(json.dumps(report, indent=1).encode() + b"\n"))
    written = [stem.with_suffix(".md"), stem.with_suffix(".json"), plot(report, stem.with_suffix(".png"))]
    print("wrote " + ", ".join(str(p) for p in written if p is not None))


if __name__ == "__main__":
    main()
