import pytest
from train_helpers import make_sequences, tiny_config

from vid2vid_fast.train.bench import bench_training


def test_bench_times_both_configurations_interleaved(tmp_path):
    data = make_sequences(tmp_path / "seqs")
    # a budget in the config is ignored: the benchmark times a fixed number of iterations
    config = tiny_config(data, tmp_path / "runs", schedule={"max_minutes": 5.0})
    result = bench_training(config, iters=3, warmup=2, json_path=tmp_path / "bench.json")
    reference, fast = result["reference"], result["fast"]
    assert "warp backend reference" in reference["speed"] and "channels_last on" in fast["speed"]
    for summary in (reference, fast):
        assert summary["timed_iterations"] == 3 and summary["iterations"] == 5
        assert summary["compile_seconds"] == 0.0
    assert result["speedup"] == pytest.approx(reference["seconds_per_iteration"] / fast["seconds_per_iteration"])
    assert result["speedup_paired"] > 0 and len(reference["times"]) == 3
    assert "speedup (reference / fast)" in result["table"] and (tmp_path / "bench.json").is_file()
