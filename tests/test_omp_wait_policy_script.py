"""scripts/omp_wait_policy.sh, which scripts/demo.sh asks how OpenMP threads should wait: PASSIVE when other
processes keep the CPUs busy. Only the busy side is tested: whether this machine is idle while the tests
run is not known."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "omp_wait_policy.sh"


@pytest.mark.skipif(not os.access("/proc/stat", os.R_OK), reason="needs /proc/stat (Linux)")
def test_busy_cpus_make_threads_sleep():
    hogs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(os.cpu_count() or 1)]
    try:
        result = subprocess.run(["bash", str(SCRIPT)], capture_output=True, text=True, timeout=30, check=True)
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    assert result.stdout.strip() == "PASSIVE"
    assert "OMP_WAIT_POLICY=PASSIVE" in result.stderr and "CPUs busy" in result.stderr
