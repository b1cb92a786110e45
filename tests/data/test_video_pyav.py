import os
import subprocess
import sys
from pathlib import Path

import pytest
from data_helpers import CLIP_FRAMES, decode_all, truncated_copy

from vid2vid_fast.data import VideoDataError, read_frames
from vid2vid_fast.data.video_pyav import worker_start_method


@pytest.mark.parametrize("codec", ["vp9", "mjpeg", "h264"])
@pytest.mark.parametrize("indices", [[0, 1, 2], [13, 15, 17], [40, 47], [8], [5, 30, 46]])
def test_read_frames_equals_decoding_from_the_start(prepared, codec, indices):
    # read_frames seeks to the keyframe before the clip; the pixels must be those of a full decode
    everything = decode_all(prepared[codec])
    assert len(everything) == CLIP_FRAMES
    assert (read_frames(prepared[codec], indices) == everything[indices]).all()


def test_reading_past_the_end_names_the_file(prepared):
    with pytest.raises(VideoDataError, match=f"{prepared['vp9']} ended before frame 48"):
        read_frames(prepared["vp9"], [46, 48])


def test_reading_a_truncated_file_names_it(prepared, tmp_path):
    path = truncated_copy(prepared["mjpeg"], tmp_path)
    with pytest.raises(VideoDataError, match=str(path)):
        read_frames(path, [40, 45])


def test_frame_indices_must_ascend(prepared):
    with pytest.raises(ValueError, match="ascending"):
        read_frames(prepared["vp9"], [3, 1])


def test_workers_fork_only_for_a_script_that_makes_the_loader_unguarded(tmp_path):
    """forkserver re-runs the main script in each worker; only where that would re-run the loader's own
    creation (top level, outside `if __name__ == "__main__":`) do the workers fork."""
    script = tmp_path / "script.py"
    script.write_text(
        "from vid2vid_fast.data.video_pyav import worker_start_method\n"
        "print('top level', worker_start_method())\n"
        "def make():\n"
        "    return worker_start_method()\n"
        "if __name__ == '__main__':\n"
        "    print('guarded', worker_start_method())\n"
        "    print('guarded, in a function', make())\n"
        "if '__main__' == __name__: print('guarded, reversed', make())\n"
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["top level fork", "guarded forkserver", "guarded, in a function forkserver",
                                        "guarded, reversed forkserver"]
    assert worker_start_method() == "forkserver"  # under pytest: a package's __main__, never re-run
