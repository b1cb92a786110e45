#!/usr/bin/env bash
# Sets up .venv (scripts/setup.sh), then runs the test suite. Extra arguments go to pytest, for example
#   scripts/test.sh -k flow_warp -x
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "==> running the tests"
exec .venv/bin/python -m pytest tests -q "$@"
