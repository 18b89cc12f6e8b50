"""bench/memory_creep.py runs the real pipeline in one process and reports the probe task's memory
first and last (the number lives in the benchmark; here only that it runs and reports it)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.slow  # a subprocess that loads and runs 3 tasks
def test_memory_creep_reports_the_probe_task_first_and_last():
    cmd = [sys.executable, str(ROOT / "bench" / "memory_creep.py"), "--tasks", "3", "--config", str(ROOT / "configs" / "smoke.yaml"),
           "--set", "model.source=random:tiny", "--set", "train.steps=1", "--set", "solve.program_max_new_tokens=16"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    rows, summary = lines[:-1], lines[-1]["summary"]
    assert [r["n"] for r in rows] == [1, 2, 3] and rows[0]["task_id"] == rows[2]["task_id"] == summary["probe"]
    assert all(r["status"] == "ok" and r["peak_rss_mb"] > 0 and r["held_rss_mb"] > 0 for r in rows)
    assert set(summary["peak_rss_mb"]) == {"task_1", "task_3", "growth"}
