import json
import os
import subprocess
import sys
from pathlib import Path

from train_helpers import make_sequences

from vid2vid_fast.train.checkpoint import load_checkpoint

REPO = Path(__file__).resolve().parents[2]


def test_two_process_gloo_ddp(tmp_path):
    data = make_sequences(tmp_path / "data")
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
               str(Path(__file__).parent / "ddp_worker.py"), str(data), str(tmp_path / "runs")]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads((tmp_path / "runs" / "ddp_result.json").read_text())
    assert result["iteration"] == 4
    # the ranks read different clips and still hold the same weights: gradients were averaged
    assert result["clips"][0] != result["clips"][1]
    assert result["same_weights"]
    payload = load_checkpoint(result["checkpoint"])
    assert payload["progress"]["world_size"] == 2
    assert len(payload["rng"]) == 2 and len(payload["carry"]) == 2
    assert not payload["rng"][0]["torch"].equal(payload["rng"][1]["torch"])
