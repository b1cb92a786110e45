"""pytest-benchmark cases: each op, fused (backend="cpu") against the eager grid_sample chain, on the CPU.

    .venv/bin/python -m pytest benchmarks --benchmark-only

Cases of the same op, shape and pass share a benchmark group, so the report puts reference and fused side by
side. For one table with speedups, run benchmarks/ops_table.py.
"""

import pytest

from op_cases import PASSES, SHAPES, make_inputs, make_step, op_samplings, shape_name


@pytest.mark.parametrize("impl", ["reference", "fused"])
@pytest.mark.parametrize("pass_", PASSES)
@pytest.mark.parametrize("shape", SHAPES, ids=shape_name)
@pytest.mark.parametrize("op_sampling", op_samplings(), ids=lambda case: f"{case[0]}-{case[1]}")
def test_op(benchmark, op_sampling, shape, pass_, impl):
    op, sampling = op_sampling
    benchmark.group = f"{op} {sampling} {shape_name(shape)} {pass_}"
    step = make_step(op, impl, pass_, make_inputs(op, shape), "cpu", sampling)
    benchmark(step)
