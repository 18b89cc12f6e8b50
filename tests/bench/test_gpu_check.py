"""bench/gpu_check.sh runs on CI's CPU in its dry mode, so the script a GPU session runs never rots."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_gpu_check_dry_run_writes_its_table(tmp_path):
    out = tmp_path / "gpu_check.md"
    proc = subprocess.run(["bash", str(ROOT / "bench" / "gpu_check.sh"), "--dry", "--out", str(out)], cwd=ROOT,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stderr[-2000:]
    table = out.read_text()
    assert "| tiny | 64 |" in table  # TTT + sampling + search row of the one dry model
    rows = [line for line in table.splitlines() if line.startswith("| per_gpu x")]
    assert len(rows) == 2 and all("failed" not in r and "(2/2 ok)" in r for r in rows), table
    pretrain = [line for line in table.splitlines() if "steps) |" in line]
    assert len(pretrain) == 3 and not any("failed" in r for r in pretrain), table  # LoRA, deepspeed LoRA, full model
