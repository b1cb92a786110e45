"""The dispatch table of backend="auto" on CUDA tensors: lookup, defaults, and a table built from timings."""

import json

import pytest
import torch

from vid2vid_fast.ops import dispatch


def table_with(choices):
    table = dispatch.empty_table("test")
    table["choices"] = choices
    return table


@pytest.mark.parametrize(
    "numel, name",
    [(0, "small"), (2**21 - 1, "small"), (2**21, "medium"), (2**23 - 1, "medium"), (2**23, "large"),
     (1 * 3 * 512 * 1024, "small"), (4 * 3 * 512 * 1024, "medium"), (2 * 64 * 256 * 512, "large")],
)
def test_size_classes(numel, name):
    assert dispatch.size_class(numel) == name


def test_negative_numel_is_an_error():
    with pytest.raises(ValueError, match="numel"):
        dispatch.size_class(-1)


def test_table_choice_wins_when_available():
    table = table_with({"warp_blend": {"bfloat16": {"medium": "triton", "large": "cuda"}}})
    both = ["cuda", "triton", "reference"]
    assert dispatch.pick_gpu_backend("warp_blend", torch.bfloat16, 4 * 3 * 512 * 1024, both, table) == "triton"
    assert dispatch.pick_gpu_backend("warp_blend", "bfloat16", 2**24, both, table) == "cuda"
    # Another dtype, op or size class has no entry: the default.
    assert dispatch.pick_gpu_backend("warp_blend", torch.float32, 4 * 3 * 512 * 1024, both, table) == "cuda"
    assert dispatch.pick_gpu_backend("flow_warp", torch.bfloat16, 4 * 3 * 512 * 1024, both, table) == "cuda"
    assert dispatch.pick_gpu_backend("warp_blend", torch.bfloat16, 10, both, table) == "cuda"


def test_unavailable_choice_falls_back():
    table = table_with({"flow_warp": {"float32": {"small": "triton"}}})
    assert dispatch.pick_gpu_backend("flow_warp", torch.float32, 100, ["cuda", "reference"], table) == "cuda"
    table = table_with({"flow_warp": {"float32": {"small": "cuda"}}})
    assert dispatch.pick_gpu_backend("flow_warp", torch.float32, 100, ["triton", "reference"], table) == "triton"
    assert dispatch.pick_gpu_backend("flow_warp", torch.float32, 100, ["reference"], table) == "reference"


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="op must be one of"):
        dispatch.pick_gpu_backend("warp", torch.float32, 1, ["cuda"])
    with pytest.raises(ValueError, match="available"):
        dispatch.pick_gpu_backend("flow_warp", torch.float32, 1, [])


def test_the_shipped_table_is_valid_and_loaded():
    dispatch.check_table(dispatch.load_table(), "shipped table")
    assert dispatch.TABLE == dispatch.load_table()


@pytest.mark.parametrize(
    "edit, message",
    [
        (lambda t: t.update(format=99), "format"),
        (lambda t: t["size_classes"].update(small=5), "size_classes"),
        (lambda t: t["choices"].update(warp={}), "unknown op"),
        (lambda t: t["choices"].update(flow_warp={"float32": {"small": "cpu"}}), "backend"),
        (lambda t: t["choices"].update(flow_warp={"float32": {"tiny": "cuda"}}), "size class"),
    ],
)
def test_malformed_tables_are_refused(tmp_path, edit, message):
    table = dispatch.empty_table()
    edit(table)
    path = tmp_path / "table.json"
    path.write_text(json.dumps(table))
    with pytest.raises(ValueError, match=message):
        dispatch.load_table(path)


def test_missing_table_gives_the_defaults_with_a_warning(tmp_path):
    with pytest.warns(RuntimeWarning, match="missing"):
        table = dispatch.load_table(tmp_path / "absent.json")
    assert dispatch.pick_gpu_backend("flow_warp", torch.float32, 1, ["triton", "cuda"], table) == "cuda"


def row(op, dtype, shape, impl, ms, pass_="fwd+bwd"):
    numel = shape[0] * shape[1] * shape[2] * shape[3]
    return {"op": op, "dtype": dtype, "shape": list(shape), "numel": numel, "impl": impl, "pass": pass_, "ms": ms}


def test_table_from_timings_picks_the_faster_per_class_and_round_trips(tmp_path):
    small, medium, large = (1, 3, 512, 1024), (4, 3, 512, 1024), (2, 64, 256, 512)
    rows = [
        row("warp_blend", "float32", small, "triton", 0.10), row("warp_blend", "float32", small, "cuda", 0.20),
        row("warp_blend", "float32", medium, "triton", 0.50), row("warp_blend", "float32", medium, "cuda", 0.40),
        # A faster forward alone does not decide: the fwd+bwd pass does.
        row("warp_blend", "float32", large, "triton", 0.01, "fwd"), row("warp_blend", "float32", large, "cuda", 9, "fwd"),
        row("warp_blend", "float32", large, "triton", 3.0), row("warp_blend", "float32", large, "cuda", 2.0),
        # Only one backend ran, or one failed (ms None): no entry.
        row("flow_warp", "bfloat16", small, "cuda", 0.1), row("flow_warp", "bfloat16", medium, "cuda", 0.3),
        row("flow_warp", "bfloat16", medium, "triton", None),
        # Baselines are not candidates.
        row("masked_warp_l1", "float32", small, "eager", 0.01), row("masked_warp_l1", "float32", small, "cuda", 0.2),
        row("masked_warp_l1", "float32", small, "triton", 0.3),
    ]
    table = dispatch.table_from_timings(rows, "test rows")
    assert table["choices"] == {
        "warp_blend": {"float32": {"small": "triton", "medium": "cuda", "large": "cuda"}},
        "masked_warp_l1": {"float32": {"small": "cuda"}},
    }
    path = tmp_path / "table.json"
    dispatch.write_table(table, path)
    loaded = dispatch.load_table(path)
    assert loaded == table
    assert [p.name for p in tmp_path.iterdir()] == ["table.json"]  # no temporary left behind
    both = ["triton", "cuda"]
    assert dispatch.pick_gpu_backend("warp_blend", torch.float32, 3 * 512 * 1024, both, loaded) == "triton"
    assert dispatch.pick_gpu_backend("warp_blend", torch.float32, 4 * 3 * 512 * 1024, both, loaded) == "cuda"
