#!/usr/bin/env bash
# The GPU check (bench/gpu_check.py), from a bare device machine or a dev venv: docs/gpu_check.md says the device call.
#   bash bench/gpu_check.sh [--dry] [--only STAGES] [--out-dir DIR]     (results: $OUT, else runs/gpu-check)
# 1. Python: $PYTHON, else .venv/bin/python, else python3 (the device image's, which holds its CUDA torch).
# 2. The repo root on PYTHONPATH: no install of arc-ttt and no `arc-ttt` console script is needed.
# 3. The import check (~5 s): everything ours and what it needs imports, the tokenizer folders are there. When it fails
#    and .gpu_check/wheels exists, install from there only what is missing (--no-index: no network), check again, and
#    stop at once with the missing names if it still fails: no stage runs on a broken install.
# 4. The stages, each in its own process under its own timeout (bench/gpu_check.py).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
# Long decodes and changing prompt lengths fragment the caching allocator: expandable segments return whole pages.
export PYTORCH_CUDA_ALLOC_CONF=${PYTORCH_CUDA_ALLOC_CONF:-expandable_segments:True}
WHEELS=.gpu_check/wheels

check() { timeout 120 "$PY" bench/gpu_check.py --import-check; }
rc=0; check || rc=$?
if [ "$rc" -ne 0 ] && [ -d "$WHEELS" ]; then
    echo "gpu_check: installing what is missing from $WHEELS" >&2
    "$PY" -m pip install -q --disable-pip-version-check --no-index --no-compile --find-links "$WHEELS" -r .gpu_check/requirements.txt
    rc=0; check || rc=$?
fi
if [ "$rc" -eq 2 ]; then
    echo "gpu_check: deepspeed does not import: its pretrain row will say skipped" >&2
elif [ "$rc" -ne 0 ]; then
    echo "gpu_check: the import check failed (above); build the wheelhouse with 'make gpu-check-wheelhouse' and carry .gpu_check" >&2
    exit 1
fi
exec "$PY" bench/gpu_check.py "$@"
