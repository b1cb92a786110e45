"""benchmarks/gpu_report.py end to end on the CPU (--device cpu --quick): the files it writes, the rows it
times, the targets it evaluates, the copy to $OUT, and its pytest step's counting."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SCRIPT = REPO / "benchmarks" / "gpu_report.py"
TABLE = REPO / "vid2vid_fast" / "ops" / "dispatch_table.json"


@pytest.fixture(scope="module")
def cpu_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("results")
    copies = tmp_path_factory.mktemp("out")
    table_before = TABLE.read_bytes()
    env = dict(os.environ, OUT=str(copies), PYTHONPATH=str(REPO))
    proc = subprocess.run([sys.executable, str(SCRIPT), "--device", "cpu", "--quick", "--out", str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert TABLE.read_bytes() == table_before, "a CPU run must leave the package's dispatch table alone"
    return out, copies, proc.stdout


def test_writes_markdown_json_and_chart_and_copies_them_to_out(cpu_run):
    out, copies, _ = cpu_run
    names = sorted(p.name for p in out.iterdir())
    stems = {n.rsplit(".", 1)[0] for n in names}
    assert len(stems) == 1 and stems.pop().startswith("cpu-") and all(n.split(".")[-1] in ("md", "json", "png")
                                                                    for n in names), names
    assert len(names) == 3, names
    assert sorted(p.name for p in copies.iterdir()) == names
    png = next(out.glob("*.png")).read_bytes()
    assert png.startswith(b"\x89PNG")
    assert not list(out.glob("*.tmp"))


def test_json_has_every_case_timed_with_the_byte_model(cpu_run):
    out, _, _ = cpu_run
    report = json.loads(next(out.glob("*.json")).read_text())
    rows = report["rows"]
    assert report["impls"] == ["cpu", "eager"]
    shapes = {tuple(s) for s in report["shapes"]}
    op_samplings = [(op, "border-bilinear-corners") for op in ("flow_warp", "warp_blend", "masked_warp_l1")] + [
        ("flow_warp", s) for s in ("zeros-bilinear-centers", "zeros-nearest-corners", "reflection-bilinear-corners")]
    expected = {(op, sampling, impl, dtype, shape, p) for op, sampling in op_samplings
                for impl in ("cpu", "eager") for dtype in ("float32", "bfloat16") for shape in shapes
                for p in ("fwd", "bwd", "fwd+bwd")}
    got = [(r["op"], r["sampling"], r["impl"], r["dtype"], tuple(r["shape"]), r["pass"]) for r in rows]
    assert set(got) == expected and len(got) == len(expected)
    for r in rows:
        assert r["ms"] is not None and r["ms"] > 0, r
        b, c, h, w = r["shape"]
        n, p = b * c * h * w, b * h * w
        element = 4 if r["dtype"] == "float32" else 2
        fwd = {"flow_warp": 2 * n + 2 * p, "warp_blend": 3 * n + 3 * p, "masked_warp_l1": 2 * n + 3 * p}[r["op"]]
        bwd = {"flow_warp": 3 * n + 4 * p, "warp_blend": 5 * n + 6 * p, "masked_warp_l1": 4 * n + 6 * p}[r["op"]]
        assert r["bytes"] == {"fwd": fwd, "bwd": bwd, "fwd+bwd": fwd + bwd}[r["pass"]] * element
        assert r["gbps"] == pytest.approx(r["bytes"] / r["ms"] / 1e6)
        if r["impl"] == "cpu":
            assert r["rel_error"] <= (1e-4 if r["dtype"] == "float32" else 3e-2)
    assert report["copy"]["gbps"] > 0


def test_markdown_and_terminal_show_the_targets_and_end_with_the_table(cpu_run):
    out, _, stdout = cpu_run
    md = next(out.glob("*.md")).read_text()
    for heading in ("## Steps", "## Targets", "## Method", "## Forward + backward", "## Bandwidth and memory"):
        assert heading in md
    verdicts = [line for line in stdout.splitlines() if line.startswith(("PASS", "FAIL", "N/A"))]
    # Per fused backend (cpu here) and dtype: two speedup lines and one bandwidth line per op.
    assert len(verdicts) == 2 * (2 + 3), verdicts
    assert sum("torch.compile" in v and v.startswith("N/A") for v in verdicts) == 2  # --quick leaves it out
    last = stdout.strip().splitlines()
    assert last[-19].split()[:3] == ["op", "shape", "dtype"]
    assert len(last[-18:]) == 18 and all(line.split()[0] in ("flow_warp", "warp_blend", "masked_warp_l1")
                                         for line in last[-18:])


def test_pytest_step_counts_results(tmp_path):
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        import gpu_report
    finally:
        sys.path.remove(str(REPO / "benchmarks"))
    step = gpu_report.pytest_step("dispatch tests", ["tests/ops/test_dispatch.py"], "not cuda",
                                  tmp_path / "log.txt", 300)
    assert step["status"].startswith("ok: ") and " 0 failed, 0 errors" in step["status"], step
    assert int(step["status"].split()[1]) >= 10
    assert "test_dispatch" in (tmp_path / "log.txt").read_text()
    failing = tmp_path / "test_gpu_report_failing_case.py"
    failing.write_text("def test_fails():\n    assert False\n\ndef test_passes():\n    pass\n")
    step = gpu_report.pytest_step("failing", [str(failing)], None, tmp_path / "log2.txt", 300)
    assert step["status"].startswith("failed (1): 1 passed, 1 failed"), step


def test_sanitizer_driver_runs_every_op_on_hostile_flows():
    """The driver compute-sanitizer runs on the GPU, here on the CPU kernels: every call must succeed."""
    proc = subprocess.run([sys.executable, str(REPO / "benchmarks" / "gpu_sanitize_driver.py"), "--device", "cpu"],
                          cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)), capture_output=True, text=True,
                          timeout=600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "driver: 576 forward+backward calls on cpu, 0 unexpected errors" in proc.stdout


def test_a_second_run_of_the_day_keeps_the_first_runs_files(tmp_path):
    """The reports' file names (benchmarks/result_paths.py): a name already taken gets -2, -3, ..."""
    sys.path.insert(0, str(REPO / "benchmarks"))
    try:
        from result_paths import unused_stem
    finally:
        sys.path.pop(0)
    assert unused_stem(tmp_path, "cpu-2026-12-01") == tmp_path / "cpu-2026-12-01"
    (tmp_path / "cpu-2026-12-01.md").write_text("first")
    (tmp_path / "cpu-2026-12-01-quick.md").write_text("a quick run: another name")
    assert unused_stem(tmp_path, "cpu-2026-12-01") == tmp_path / "cpu-2026-12-01-2"
    (tmp_path / "cpu-2026-12-01-2.json").write_text("second")
    assert unused_stem(tmp_path, "cpu-2026-12-01") == tmp_path / "cpu-2026-12-01-3"
    assert unused_stem(tmp_path, "cpu-2026-12-01-quick") == tmp_path / "cpu-2026-12-01-quick-2"
