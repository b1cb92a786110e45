"""scripts/setup.sh decides when to rebuild the extension from its build stamp. Run here in a scratch copy
of the repository whose .venv/bin/python is a stand-in that records each build instead of compiling."""

import os
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

FAKE_PYTHON = """#!/usr/bin/env bash
# answers setup.sh's question for the CUDA toolkit; 'pip install ... -e .' is a build
if [ "$1" = "-c" ]; then echo "$FAKE_TOOLKIT"; exit 0; fi
case " $* " in *" -e . "*) echo "${VID2VID_FAST_CPU_ONLY:-0}" >> builds.log; touch vid2vid_fast/_C.fake.so;; esac
"""


def make_checkout(root: Path) -> Path:
    (root / "scripts").mkdir(parents=True)
    shutil.copy(REPO / "scripts" / "setup.sh", root / "scripts" / "setup.sh")
    for name in ("setup.py", "pyproject.toml"):
        (root / name).write_text("")
    (root / "csrc").mkdir()
    (root / "csrc" / "ops.cpp").write_text("int x;\n")
    (root / "vid2vid_fast" / "ops").mkdir(parents=True)
    (root / "vid2vid_fast" / "ops" / "build_flags.py").write_text("")
    python = root / ".venv" / "bin" / "python"
    python.parent.mkdir(parents=True)
    python.write_text(FAKE_PYTHON)
    python.chmod(0o755)
    nvcc = root / "toolkit" / "bin" / "nvcc"
    nvcc.parent.mkdir(parents=True)
    nvcc.write_text("")
    nvcc.chmod(0o755)
    return root


def setup(root: Path, cpu_only: str | None) -> list[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("VID2VID_FAST_CPU_ONLY", "CUDA_HOME", "CI")}
    env.update(FAKE_TOOLKIT=str(root / "toolkit"), CUDA_HOME=str(root / "toolkit"))
    if cpu_only is not None:
        env["VID2VID_FAST_CPU_ONLY"] = cpu_only
    subprocess.run(["bash", "scripts/setup.sh"], cwd=root, env=env, check=True, capture_output=True, timeout=60)
    log = root / "builds.log"
    return log.read_text().split() if log.exists() else []


def test_build_stamp(tmp_path):
    root = make_checkout(tmp_path)
    assert setup(root, "1") == ["1"]  # the demo on a machine without a GPU: CPU kernels only
    assert setup(root, "1") == ["1"]  # unchanged: no rebuild
    assert setup(root, None) == ["1", "0"]  # the tests want the CUDA kernels too
    assert setup(root, "1") == ["1", "0"]  # that build serves the demo as well
    assert setup(root, None) == ["1", "0"]
    (root / "csrc" / "ops.cpp").write_text("int y;\n")
    assert setup(root, "1") == ["1", "0", "1"]  # a source changed
    assert setup(root, None) == ["1", "0", "1", "0"]  # a CPU-only build does not serve the tests
    (root / "vid2vid_fast" / "ops" / "build_flags.py").write_text("FLAGS = []\n")
    assert setup(root, None) == ["1", "0", "1", "0", "0"]  # the compiler flags changed
