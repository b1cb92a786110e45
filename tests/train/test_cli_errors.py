"""Every user error of the ``vid2vid-fast`` command is one line on stderr and exit status 2, without a
traceback (unless --debug asks for it); bugs keep their traceback. Each case runs the real command in
its own process; the processes run a few at a time."""

import os
import random
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from train_helpers import make_sequences, make_video, tiny_config

from vid2vid_fast import cli
from vid2vid_fast.train.checkpoint import load_checkpoint
from vid2vid_fast.train.config import save_yaml

REPO = Path(__file__).resolve().parents[2]
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
ENV.pop("VID2VID_FAST_DEBUG", None)

# this process's temporary checkpoint is /dev/full, where every write fails with ENOSPC (a full disk)
DISK_FULL = """import os, sys
from pathlib import Path
run = Path(sys.argv[1])
os.symlink("/dev/full", run / "checkpoints" / f".latest.pt.tmp{os.getpid()}")
from vid2vid_fast.cli import main
sys.exit(main(["train", "--resume", str(run), "--max_iters", "3", "--no-generate"]))
"""


class RunsCode:
    def __reduce__(self):
        return (os.getcwd, ())


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    root = tmp_path_factory.mktemp("inputs")
    files = {
        "data": make_sequences(root / "data", frames=12),
        "short": make_sequences(root / "short", frames=2),
        "badpng": make_sequences(root / "badpng", frames=12),
        "empty": root / "empty",
        "file": root / "a-file",
        "garbage": root / "garbage.bin",
        "empty_video": root / "empty.mp4",
        "truncated_video": root / "truncated.webm",
        "malicious": root / "malicious.pt",
    }
    for frame in (files["badpng"] / "train_B" / "seq0").iterdir():  # every frame: the first clip of seq0 fails
        frame.write_bytes(b"not a png" * 20)
    files["empty"].mkdir()
    files["file"].write_text("a file, not a folder")
    files["garbage"].write_bytes(random.Random(0).randbytes(4000))
    files["empty_video"].write_bytes(b"")
    video = make_video(root / "clip").read_bytes()
    files["truncated_video"].write_bytes(video[: len(video) // 2])
    torch.save({"format": "vid2vid_fast.train.checkpoint", "obj": RunsCode()}, files["malicious"])
    files["config"] = save_yaml(tiny_config(files["data"], root / "runs", schedule={"max_iters": 2}), root / "tiny.yaml")
    assert cli.main(["train", "--config", str(files["config"]), "--no-generate"]) == 0
    files["run"] = root / "runs" / "tiny"
    return files


def train(f, *args):
    return ["-m", "vid2vid_fast", "train", "--config", f["config"], "--no-generate", *args]


def generate(f, *args):
    return ["-m", "vid2vid_fast", "generate", "--run", f["run"], *args]


# name: (arguments of python, what the error line says)
CASES = {
    "dataroot-empty": (lambda f: train(f, "--dataroot", f["empty"]), lambda f: f"data set folder {f['empty']}/train_A does not exist"),
    "dataroot-missing": (lambda f: train(f, "--dataroot", f["empty"] / "nope"), lambda f: f"dataroot {f['empty']}/nope does not exist"),
    "sequence-too-short": (lambda f: train(f, "--dataroot", f["short"]), lambda f: "a clip needs at least n_frames_G=3 frames"),
    "too-few-frames-to-hold-out": (lambda f: train(f, "--held_out_frames", "20"), lambda f: "sequence seq0 has 12 frames: too few to hold out 20"),
    "batch-larger-than-an-epoch": (lambda f: train(f, "--batch_size", "50"), lambda f: "fewer than batch_size=50"),
    "garbage-png": (lambda f: train(f, "--dataroot", f["badpng"], "--max_iters", "40"),
                    lambda f: f"cannot read frame {f['badpng']}/train_B/seq0/00"),
    "garbage-png-in-a-worker": (lambda f: train(f, "--dataroot", f["badpng"], "--max_iters", "40", "--num_workers", "2"),
                                lambda f: f"cannot read frame {f['badpng']}/train_B/seq0/00"),
    "video-empty": (lambda f: train(f, "--source", "videos", "--videos", f["empty_video"]), lambda f: f"video file {f['empty_video']} is empty"),
    "video-truncated": (lambda f: train(f, "--source", "videos", "--videos", f["truncated_video"]), lambda f: f"{f['truncated_video']} is "),
    "video-random-bytes": (lambda f: train(f, "--source", "videos", "--videos", f["garbage"]), lambda f: f"{f['garbage']} is not a readable video"),
    "vgg-weights-garbage": (lambda f: train(f, "--vgg_weights", f["garbage"]), lambda f: f"VGG19 weights file {f['garbage']} cannot be read"),
    "vgg-weights-missing": (lambda f: train(f, "--vgg_weights", f["empty"] / "vgg.pth"), lambda f: f"VGG19 weights file {f['empty']}/vgg.pth does not exist"),
    "flow-checkpoint-garbage": (lambda f: train(f, "--flow_source", "raft", "--flow_checkpoint", f["garbage"]),
                                lambda f: f"RAFT checkpoint file {f['garbage']} cannot be read"),
    "output-dir-under-a-file": (lambda f: train(f, "--output_dir", f["file"] / "runs"),
                                lambda f: f"run folder {f['file']}/runs/tiny cannot be created: {f['file']} is a file, not a folder"),
    "bad-option-value": (lambda f: train(f, "--ngf", "0"), lambda f: "model.ngf must be >= 1"),
    "unknown-option": (lambda f: train(f, "--no-such-option"), lambda f: "unrecognized arguments: --no-such-option"),
    "resume-missing": (lambda f: train(f, "--resume", f["empty"]), lambda f: f"--resume: no checkpoint at {f['empty']}/checkpoints/latest.pt"),
    "resume-code-in-pickle": (lambda f: train(f, "--resume", f["malicious"]),
                              lambda f: f"checkpoint file {f['malicious']} refused: loading it would execute code (pickle"),
    "resume-elsewhere": (lambda f: train(f, "--resume", f["run"], "--name", "other"), lambda f: "--name cannot be combined with --resume"),
    "generate-frames-negative": (lambda f: generate(f, "--frames", "-1"), lambda f: "argument --frames: expected a whole number >= 1, got '-1'"),
    "generate-out-is-a-file": (lambda f: generate(f, "--out", f["file"]), lambda f: f"output folder {f['file']} cannot be created: {f['file']} is a file"),
    "disk-full": (lambda f: ["-c", DISK_FULL, f["run"]], lambda f: f"no space left to write checkpoint {f['run']}/checkpoints/latest.pt: it needs "),
}


@pytest.fixture(scope="module")
def outcomes(files):
    """Every case's finished process, and the run's checkpoint before the disk-full case."""
    before = (files["run"] / "checkpoints" / "latest.pt").read_bytes()

    def run(name):
        args = [str(a) for a in CASES[name][0](files)]
        return subprocess.run([sys.executable, *args], env=ENV, capture_output=True, text=True, timeout=600)

    with ThreadPoolExecutor(max_workers=3) as pool:
        done = dict(zip(CASES, pool.map(run, CASES)))
    return done, before


@pytest.mark.parametrize("case", CASES)
def test_user_error_is_one_line_and_exit_2(files, outcomes, case):
    done = outcomes[0][case]
    expected = CASES[case][1](files)
    assert done.returncode == 2, done.stderr[-3000:]
    assert "Traceback" not in done.stderr, done.stderr[-3000:]
    errors = [line for line in done.stderr.splitlines() if "error:" in line]
    assert errors == [done.stderr.splitlines()[-1]], done.stderr[-3000:]  # one error line, the last
    assert errors[0].startswith("vid2vid-fast") and expected in errors[0], errors[0]


def test_disk_full_keeps_the_checkpoint_and_leaves_no_temporary_file(files, outcomes):
    assert outcomes[0]["disk-full"].returncode == 2
    checkpoints = files["run"] / "checkpoints"
    assert (checkpoints / "latest.pt").read_bytes() == outcomes[1]
    assert load_checkpoint(checkpoints / "latest.pt")["progress"]["iteration"] == 2
    assert sorted(p.name for p in checkpoints.iterdir()) == ["latest.pt"]


def test_the_output_folder_is_checked_before_data_and_models(files):
    # the data root and the VGG weights are bad too, but the folder is what is reported: nothing else ran
    done = subprocess.run(
        [sys.executable, *map(str, train(files, "--output_dir", files["file"] / "x", "--dataroot", files["empty"],
                                         "--vgg_weights", files["garbage"]))],
        env=ENV, capture_output=True, text=True, timeout=600,
    )
    assert done.returncode == 2
    assert done.stderr.splitlines()[-1].endswith(f"run folder {files['file']}/x/tiny cannot be created: "
                                                 f"{files['file']} is a file, not a folder")
    assert "training on" not in done.stderr and "VGG" not in done.stderr


@pytest.mark.parametrize("how", ["--debug", "VID2VID_FAST_DEBUG=1"])
def test_debug_shows_the_traceback(files, how):
    args = [str(a) for a in train(files, "--dataroot", files["empty"] / "nope")]
    env = dict(ENV)
    if how == "--debug":
        args.append("--debug")
    else:
        env["VID2VID_FAST_DEBUG"] = "1"
    done = subprocess.run([sys.executable, *args], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 2
    assert "Traceback (most recent call last)" in done.stderr and "MissingFileError" in done.stderr
    assert done.stderr.splitlines()[-1] == f"vid2vid-fast train: error: dataroot {files['empty']}/nope does not exist"


def test_a_bug_keeps_its_traceback(monkeypatch):
    def broken(args):
        return {}["a bug"]

    monkeypatch.setattr(cli, "_cmd_prepare", broken)
    with pytest.raises(KeyError, match="a bug"):
        cli.main(["prepare"])
