#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py): on a GPU machine it writes docs/gpu_check.md in <= ~8 minutes;
# `--dry` runs the same code on the CPU with the tiny model (CI runs it so the script never rots).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
exec "$PY" bench/gpu_check.py "$@"
