import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from test_trainer import states_equal
from train_helpers import make_sequences, tiny_config

from vid2vid_fast.cli import main
from vid2vid_fast.train.checkpoint import load_checkpoint
from vid2vid_fast.train.config import Config, load_yaml, save_yaml, to_dict
from vid2vid_fast.train.trainer import Trainer

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_sequences(tmp_path_factory.mktemp("seqs"), frames=12)


def run_cli(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "vid2vid_fast", *map(str, args)], env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def test_help_explains_every_option():
    done = run_cli("train", "--help")
    assert done.returncode == 0
    for section in to_dict(Config()).values():
        for option in section:
            assert f"--{option}" in done.stdout, option
    for command in ("generate", "bench", "prepare"):
        assert run_cli(command, "--help").returncode == 0


def test_train_then_generate(data, tmp_path, capsys):
    config = save_yaml(tiny_config(data, tmp_path, data={"held_out_frames": 4}), tmp_path / "tiny.yaml")
    assert main(["train", "--config", str(config), "--niter_decay", "0"]) == 0
    out = capsys.readouterr().out
    assert "iterations / s" in out and "PSNR" in out
    run = tmp_path / "tiny"
    for seq in ("seq0", "seq1"):
        for name in ("synthesized.mp4", "side_by_side.mp4", "no_flow.mp4", "grid.png"):
            assert (run / "generated" / seq / name).stat().st_size > 0
    metrics = json.loads((run / "generated" / "metrics.json").read_text())
    assert metrics["sequences"]["seq0"]["frames"] == 4 and metrics["sequences"]["seq0"]["held_out"]
    assert (run / "config.yaml").is_file()
    assert main(["generate", "--run", str(run), "--out", str(tmp_path / "gen"), "--frames", "2"]) == 0
    assert json.loads((tmp_path / "gen" / "metrics.json").read_text())["sequences"]["seq1"]["frames"] == 2


def test_errors_are_clear(data, tmp_path, capsys):
    assert main(["train", "--dataroot", str(data), "--ngf", "0"]) == 2
    assert "model.ngf must be >= 1" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["train", "--no-such-flag"])
    assert main(["train", "--resume", str(tmp_path / "nothing.pt")]) == 2
    assert "no checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"\0" * 100)
    assert main(["train", "--resume", str(bad)]) == 2
    assert "cannot be read" in capsys.readouterr().err
    assert main(["train", "--dataroot", str(tmp_path / "missing")]) == 2


def test_prepare(data, capsys):
    assert main(["prepare", "--dataroot", str(data)]) == 0
    assert "seq0: 12 training frames" in capsys.readouterr().out


def test_sigterm_then_resume_equals_an_uninterrupted_run(data, tmp_path):
    # a long schedule, so that the signal surely arrives before the run ends, even on a fast machine
    long = {"niter": 20, "niter_decay": 20}
    config = tiny_config(data, tmp_path / "killed", run={"print_freq": 1}, schedule=long)
    path = save_yaml(config, tmp_path / "tiny.yaml")
    process = subprocess.Popen(
        [sys.executable, "-m", "vid2vid_fast", "train", "--config", str(path), "--no-generate"],
        env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    losses = tmp_path / "killed" / "tiny" / "losses.jsonl"
    deadline = time.time() + 120
    while time.time() < deadline and (not losses.exists() or len(losses.read_text().splitlines()) < 3):
        assert process.poll() is None, process.stderr.read()[-3000:]
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=120)
    assert process.returncode == 128 + signal.SIGTERM, err[-3000:]
    assert "interrupted by SIGTERM" in err and "--resume" in err
    checkpoint = tmp_path / "killed" / "tiny" / "checkpoints" / "latest.pt"
    stopped_at = load_checkpoint(checkpoint)["progress"]["iteration"]
    assert stopped_at >= 3
    end = stopped_at + 3
    resumed = Trainer(tiny_config(data, tmp_path / "killed", schedule={**long, "max_iters": end}), resume=checkpoint)
    assert resumed.iteration == stopped_at < resumed.total_iterations()
    resumed.train()
    full = Trainer(tiny_config(data, tmp_path / "full", schedule={**long, "max_iters": end}))
    full.train()
    states_equal(full, resumed)


def test_a_second_fresh_run_keeps_the_first(data, tmp_path, caplog):
    config = save_yaml(tiny_config(data, tmp_path, run={"print_freq": 1}), tmp_path / "tiny.yaml")
    assert main(["train", "--config", str(config), "--no-generate", "--max_iters", "2"]) == 0
    first = tmp_path / "tiny"
    checkpoint, losses = (first / "checkpoints" / "latest.pt").read_bytes(), (first / "losses.jsonl").read_text()
    assert main(["train", "--config", str(config), "--no-generate", "--max_iters", "3"]) == 0
    assert (first / "checkpoints" / "latest.pt").read_bytes() == checkpoint
    assert (first / "losses.jsonl").read_text() == losses
    second = tmp_path / "tiny-2"
    assert f"{first} holds another run's checkpoint; this run writes to {second} instead" in caplog.text
    assert load_checkpoint(second / "checkpoints" / "latest.pt")["config"]["run"]["name"] == "tiny-2"
    assert len((second / "losses.jsonl").read_text().splitlines()) == 3


def test_resuming_a_copy_never_touches_the_original(data, tmp_path):
    config = save_yaml(tiny_config(data, tmp_path), tmp_path / "tiny.yaml")
    assert main(["train", "--config", str(config), "--no-generate", "--max_iters", "2", "--name", "original"]) == 0
    original, copy = tmp_path / "original", tmp_path / "elsewhere" / "copy"
    shutil.copytree(original, copy)
    files = {path: path.read_bytes() for path in original.rglob("*") if path.is_file()}
    assert main(["train", "--resume", str(copy), "--max_iters", "4", "--generate_frames", "2"]) == 0
    assert {path: path.read_bytes() for path in original.rglob("*") if path.is_file()} == files
    assert load_checkpoint(copy / "checkpoints" / "latest.pt")["progress"]["iteration"] == 4
    assert (copy / "generated" / "metrics.json").is_file() and not (original / "generated").exists()
    saved = load_yaml(copy / "config.yaml").run
    assert (saved.output_dir, saved.name) == (str(copy.parent), "copy")


def test_kill_9_then_resume_leaves_no_temporary_file_and_logs_each_iteration_once(data, tmp_path):
    long = {"niter": 20, "niter_decay": 20}
    config = tiny_config(data, tmp_path, run={"print_freq": 1, "save_latest_freq": 1}, schedule=long)
    run = tmp_path / "tiny"
    checkpoints, losses = run / "checkpoints", run / "losses.jsonl"
    command = ["train", "--config", save_yaml(config, tmp_path / "tiny.yaml"), "--no-generate"]
    for _ in range(2):
        process = subprocess.Popen([sys.executable, "-m", "vid2vid_fast", *map(str, command)], env=ENV,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        logged = len(losses.read_text().splitlines()) if losses.exists() else 0
        deadline = time.time() + 120
        while time.time() < deadline and (not losses.exists() or len(losses.read_text().splitlines()) < logged + 3):
            assert process.poll() is None, process.stderr.read()[-3000:]
            time.sleep(0.02)
        # kill -9 while a checkpoint is being written, when the poll catches one
        deadline = time.time() + 10
        while time.time() < deadline and not list(checkpoints.glob(".latest.pt.tmp*")):
            time.sleep(0.001)
        process.kill()
        process.communicate(timeout=60)
        if not list(checkpoints.glob(".latest.pt.tmp*")):  # the kill fell between writes: leave what one
            partial = (checkpoints / "latest.pt").read_bytes()[:4096]  # mid-write would have left
            (checkpoints / f".latest.pt.tmp{process.pid}").write_bytes(partial)
        command = ["train", "--resume", run, "--no-generate"]
    end = load_checkpoint(checkpoints / "latest.pt")["progress"]["iteration"] + 2
    done = run_cli(*command, "--max_iters", end)
    assert done.returncode == 0, done.stderr[-3000:]
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest.pt"]
    assert [json.loads(line)["iteration"] for line in losses.read_text().splitlines()] == list(range(1, end + 1))
