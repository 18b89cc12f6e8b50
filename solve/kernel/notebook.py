"""The Kaggle notebook (kaggle/kernel.ipynb) and its kernel-metadata.json, generated from code so that
paths and flags live in one place; `arc-ttt kaggle notebook` rewrites both, a test checks they match.

The cells stay thin: everything that can be tested lives in solve/kernel/main.py. The first cell
uses only the standard library and writes a placeholder submission, so even a failed install or a
missing model still leaves a valid submission.json.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from solve.kernel.main import KAGGLE_CHALLENGES, KAGGLE_WORKING, START_ENV

NOTEBOOK_PATH = Path("kaggle") / "kernel.ipynb"
METADATA_PATH = Path("kaggle") / "kernel-metadata.json"

INTRO = """\
# arc-ttt: per-task test-time training for ARC-AGI (offline kernel)

Thin cells; the work is in the `arc-ttt` package installed from the bundle dataset.
1. placeholder `submission.json` (standard library only, before anything can fail)
2. offline install from the bundle's wheels at the tested versions (the image's CUDA torch is kept)
3. GPUs and environment
4. the run: `python -m solve.kernel.main` (a 30-second smoke test on every GPU, then: 12 h budget from the first cell, largest tasks first,
   submission rewritten atomically after every task, watchdog before the limit)
5. timeline plot and a final check"""

CELL_START = f"""\
# Kernel start: the 12-hour budget is counted from here (kept across restarts in kernel.json).
import json, os, pathlib, time
os.environ.setdefault("{START_ENV}", repr(time.time()))

BUNDLE = "/kaggle/input/{{bundle}}"
MODEL = "/kaggle/input/{{model}}"
CHALLENGES = "{KAGGLE_CHALLENGES}"
WORKING = "{KAGGLE_WORKING}"

# A valid submission before anything can fail, even the install: attempt 1 = the test input, attempt 2 = [[0]]
# (the same placeholders arc-ttt writes). Never overwrite one that is already there (a restart).
sub_path = pathlib.Path(WORKING) / "submission.json"
if not sub_path.exists():
    with open(CHALLENGES) as f:
        challenges = json.load(f)
    sub = {{tid: [{{"attempt_1": t["input"], "attempt_2": [[0]]}} for t in task["test"]] for tid, task in challenges.items()}}
    tmp = sub_path.with_name(".submission.json.tmp")
    tmp.write_text(json.dumps(sub))
    os.replace(tmp, sub_path)
print(f"{{sub_path}}: {{sub_path.stat().st_size}} bytes")"""

CELL_INSTALL = """\
# Offline install: only wheels from the bundle, at the versions our tests ran (requirements.txt as constraints: the
# image's transformers/peft are versions never tested here); torch, numpy and the rest of the image's stack stay.
import subprocess, sys
cmd = [sys.executable, "-m", "pip", "install", "--no-index", f"--find-links={BUNDLE}/wheels", "-c", f"{BUNDLE}/requirements.txt", "arc-ttt"]
res = subprocess.run(cmd, capture_output=True, text=True)
print(res.stdout[-4000:], res.stderr[-4000:])
INSTALLED = res.returncode == 0
print("installed" if INSTALLED else "INSTALL FAILED: the placeholder submission stays")"""

CELL_ENV = """\
# Environment for the run (the child process inherits it); the GPU list comes from nvidia-smi so this
# notebook process never initializes CUDA itself.
os.environ["TOKENIZERS_PARALLELISM"] = "false"
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")  # as solve.placement.per_gpu.CUDA_ALLOC_CONF
gpus = subprocess.run(["nvidia-smi", "-L"], capture_output=True, text=True)
print(gpus.stdout or gpus.stderr or "no nvidia-smi: running on CPU")"""

CELL_RUN = """\
# The run, in a child process: its log streams here; a crash or a hard stop leaves the submission valid.
# The cell waits for the process, not for the end of its output: a stray grandchild that still holds
# the pipe (a worker stuck in a driver call) must not keep the cell running.
if INSTALLED:
    import threading
    cmd = [sys.executable, "-m", "solve.kernel.main", "--config", f"{BUNDLE}/configs/{config}",
           "--challenges", CHALLENGES, "--working", WORKING, "--set", f"model.source={MODEL}", "--smoke-timeout-s", "30"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    def pump():
        for line in proc.stdout:
            print(line, end="")
    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    rc = proc.wait()
    reader.join(30)
    print("kernel exit code", rc)"""

CELL_REPORT = """\
# Timeline (one row per GPU worker) and a last check that every task has an entry.
if INSTALLED:
    subprocess.run([sys.executable, "-m", "solve.cli.kaggle", "timeline", WORKING, "--out", f"{WORKING}/timeline.png"])
with open(CHALLENGES) as f:
    ids = set(json.load(f))
with open(sub_path) as f:
    sub = json.load(f)
print(f"submission: {len(ids & set(sub))}/{len(ids)} tasks present", "OK" if ids == set(sub) else "MISMATCH")"""


def _cell(kind: str, source: str) -> dict[str, Any]:
    cell: dict[str, Any] = {"cell_type": kind, "metadata": {}, "source": source.splitlines(keepends=True)}
    if kind == "code":
        cell |= {"execution_count": None, "outputs": []}
    return cell


def notebook(bundle: str = "arc-ttt-bundle", model: str = "arc-ttt-model", config: str = "kaggle-l4x4.yaml") -> dict[str, Any]:
    """nbformat 4 JSON of the kernel notebook."""
    return {
        "nbformat": 4,
        "nbformat_minor": 5,
        "metadata": {
            "kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"},
            "language_info": {"name": "python", "version": "3.11"},
        },
        "cells": [
            _cell("markdown", INTRO),
            _cell("code", CELL_START.replace("{bundle}", bundle).replace("{model}", model)),
            _cell("code", CELL_INSTALL),
            _cell("code", CELL_ENV),
            _cell("code", CELL_RUN.replace("{config}", config)),
            _cell("code", CELL_REPORT),
        ],
    }


def kernel_metadata(owner: str = "YOUR-KAGGLE-USERNAME", bundle: str = "arc-ttt-bundle", model: str = "arc-ttt-model") -> dict[str, Any]:
    return {
        "id": f"{owner}/arc-ttt-kernel",
        "title": "arc-ttt kernel",
        "code_file": "kernel.ipynb",
        "language": "python",
        "kernel_type": "notebook",
        "is_private": True,
        "enable_gpu": True,
        "enable_tpu": False,
        "enable_internet": False,  # the competition requires it off: everything comes from the datasets
        "dataset_sources": [f"{owner}/{bundle}", f"{owner}/{model}"],
        "competition_sources": ["arc-prize-2025"],
        "kernel_sources": [],
        "model_sources": [],
    }


def write_notebook(out_dir: str | Path, **kw: str) -> tuple[Path, Path]:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    nb, meta = out_dir / NOTEBOOK_PATH.name, out_dir / METADATA_PATH.name
    nb.write_text(json.dumps(notebook(**{k: v for k, v in kw.items() if k != "owner"}), indent=1) + "\n")
    meta_kw = {k: v for k, v in kw.items() if k in ("owner", "bundle", "model")}
    meta.write_text(json.dumps(kernel_metadata(**meta_kw), indent=2) + "\n")
    return nb, meta
