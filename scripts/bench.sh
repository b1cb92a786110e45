#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh), then times the fused ops against the eager grid_sample chain on the CPU
# and writes the table to benchmarks/results/. Extra arguments go to benchmarks/ops_table.py, for example
#   scripts/bench.sh --quick
#   scripts/bench.sh --device cuda
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "==> timing the ops"
exec .venv/bin/python benchmarks/ops_table.py "$@"
