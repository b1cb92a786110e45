"""The video loader example of docs/data.md runs as a plain script, exactly as written."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def docs_example() -> str:
    text = (REPO / "docs" / "data.md").read_text()
    section = text.split("## Video files", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.DOTALL).group(1)


# DALI hidden from every process (a sitecustomize on the path), as on a machine without it
HIDE_DALI = "import sys\nsys.modules['nvidia.dali'] = None  # `import nvidia.dali` raises ImportError\n"


@pytest.mark.parametrize("dali", ["as-installed", "hidden"])
def test_video_loader_example_runs_as_a_plain_script(carphone, tmp_path, dali):
    """Without DALI the PyAV loader decodes in worker processes, which a forkserver would start by
    re-running the script (it has no `if __name__ == "__main__":`); that must not break it."""
    (tmp_path / "example.py").write_text(docs_example())
    path = [str(REPO)]
    if dali == "hidden":
        (tmp_path / "site").mkdir()
        (tmp_path / "site" / "sitecustomize.py").write_text(HIDE_DALI)
        path.insert(0, str(tmp_path / "site"))
    done = subprocess.run([sys.executable, "example.py"], cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(path), "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Traceback" not in done.stderr
    # the script ran once: a worker that re-ran it would print again
    assert done.stdout.splitlines() == ["torch.Size([3, 8, 3, 128, 128])"]
