import json
import os

import pytest

from vid2vid_fast.errors import UserError
from vid2vid_fast.train.run_folder import (
    RunFolderError,
    check_writable,
    checkpoint_file,
    fresh_run_dir,
    run_dir_of,
    tidy,
    truncate_losses,
)


def make_run(folder, iterations=()):
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "checkpoints" / "latest.pt").write_bytes(b"checkpoint")
    (folder / "losses.jsonl").write_text("".join(json.dumps({"iteration": i}) + "\n" for i in iterations))
    return folder


def test_a_fresh_run_takes_the_first_name_without_a_checkpoint(tmp_path):
    assert fresh_run_dir(tmp_path, "x") == tmp_path / "x"
    (tmp_path / "x").mkdir()  # a folder without a checkpoint (a run that failed before its first one)
    assert fresh_run_dir(tmp_path, "x") == tmp_path / "x"
    make_run(tmp_path / "y")
    assert fresh_run_dir(tmp_path, "y") == tmp_path / "y-2"
    make_run(tmp_path / "y-2")
    make_run(tmp_path / "y-4")
    assert fresh_run_dir(tmp_path, "y") == tmp_path / "y-3"


def test_a_checkpoint_belongs_to_the_run_folder_it_lies_in(tmp_path):
    run = make_run(tmp_path / "copy")
    assert checkpoint_file(run) == run / "checkpoints" / "latest.pt"
    assert run_dir_of(checkpoint_file(run)) == run
    assert run_dir_of(run / "checkpoints" / "older.pt") == run
    assert run_dir_of(tmp_path / "loose.pt") is None


def test_an_unwritable_folder_is_one_clear_error(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(RunFolderError, match=f"run folder {tmp_path}/file/a/b cannot be created: {tmp_path}/file is a file"):
        check_writable(tmp_path / "file" / "a" / "b", "run folder")
    assert issubclass(RunFolderError, UserError)
    check_writable(tmp_path / "new" / "run", "run folder")
    assert list((tmp_path / "new" / "run").iterdir()) == []  # created, and the probe file removed


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_a_read_only_folder_is_one_clear_error(tmp_path):
    (tmp_path / "ro").mkdir(mode=0o500)
    with pytest.raises(RunFolderError, match="is not writable: Permission denied"):
        check_writable(tmp_path / "ro" / "run", "run folder")


def test_losses_are_truncated_to_the_checkpoint_atomically(tmp_path):
    path = tmp_path / "losses.jsonl"
    lines = [json.dumps({"iteration": i, "G": 0.5}) for i in (1, 5, 10, 15, 20)]
    path.write_text("\n".join(lines) + "\n" + '{"iteration": 25, "G"')  # the last line cut by a kill
    truncate_losses(path, 15)
    assert path.read_text() == "\n".join(lines[:4]) + "\n"
    truncate_losses(path, 15)
    assert path.read_text() == "\n".join(lines[:4]) + "\n"
    truncate_losses(path, 0)  # a fresh run in a folder a checkpoint-less run logged to
    assert path.read_text() == ""
    assert sorted(p.name for p in tmp_path.iterdir()) == ["losses.jsonl"]


def test_tidy_removes_what_killed_writers_left_but_not_its_own(tmp_path):
    run = make_run(tmp_path / "run", iterations=range(1, 9))
    stale = [run / "checkpoints" / ".latest.pt.tmp123456", run / ".config.yaml.tmp99", run / ".losses.jsonl.tmp7"]
    for path in stale:
        path.write_bytes(b"half a file")
    mine = run / "checkpoints" / f".latest.pt.tmp{os.getpid()}"  # being written by this process
    mine.write_bytes(b"")
    other = run / "checkpoints" / "older.pt"
    other.write_bytes(b"kept")
    tidy(run, 6)
    assert not any(path.exists() for path in stale)
    assert mine.exists() and other.exists() and (run / "checkpoints" / "latest.pt").exists()
    assert [json.loads(line)["iteration"] for line in (run / "losses.jsonl").read_text().splitlines()] == list(range(1, 7))
