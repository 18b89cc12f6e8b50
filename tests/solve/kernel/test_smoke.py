"""The kernel's smoke test (solve/kernel/smoke.py): one training step and one sample per device, reported in the log
and drawn in the timeline; a device past the time limit is reported, never waited for."""

from __future__ import annotations

import pytest

from solve.kernel.notebook import CELL_INSTALL, CELL_RUN
from solve.kernel.smoke import SMOKE_TASK_ID, run_smoke
from solve.kernel.timeline import load_spans


@pytest.mark.slow
def test_smoke_test_trains_and_samples_and_lands_in_the_timeline(tmp_path):
    logs: list[str] = []
    rows = run_smoke(tmp_path, logs.append, timeout_s=240)  # this CI machine's 2 shared cores: imports alone take seconds
    assert [r["status"] for r in rows] == ["ok"], rows
    assert rows[0]["device"] == "cpu" and rows[0]["loss"] > 0 and rows[0]["sampled_tokens"] == 16  # 2 samples x 8 tokens
    assert logs == [f"smoke test on cpu: ok (loss {rows[0]['loss']:.2f}, {rows[0]['seconds']:.1f} s)"]
    spans = load_spans(tmp_path)
    assert [(s.task_id, s.worker, s.status) for s in spans] == [(SMOKE_TASK_ID, 0, "ok")]


def test_a_device_past_the_limit_is_reported_as_timeout(tmp_path):
    logs: list[str] = []
    rows = run_smoke(tmp_path, logs.append, timeout_s=0.2)  # python and torch take longer than that to start
    assert [r["status"] for r in rows] == ["timeout"] and "timeout" in logs[0]
    assert [s.status for s in load_spans(tmp_path)] == ["timeout"]


def test_the_notebook_pins_tested_versions_and_runs_the_smoke_test():
    assert '"-c", f"{BUNDLE}/requirements.txt"' in CELL_INSTALL
    assert '"--smoke-timeout-s", "30"' in CELL_RUN
