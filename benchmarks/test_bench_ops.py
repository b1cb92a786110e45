"""pytest-benchmark cases: each op, fused (backend="cpu") against the eager grid_sample chain, on the CPU.

    .venv/bin/python -m pytest benchmarks --benchmark-only

Cases of the same op, shape and pass share a benchmark group, so the report puts reference and fused side by
side. For one table with speedups, run benchmarks/ops_table.py.
"""

import pytest

from op_cases import OPS, PASSES, SHAPES, make_inputs, make_step, shape_name


@pytest.mark.parametrize("impl", ["reference", "fused"])
@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_name)
@pytest.mark.parametrize("op", OPS)
def test_op(benchmark, op, shape, pass_, impl):
    benchmark.group = f"{op} {shape_name(shape)} {pass_}"
    step = make_step(op, impl, pass_, make_inputs(op, shape), backend="cpu")
    benchmark(step)
