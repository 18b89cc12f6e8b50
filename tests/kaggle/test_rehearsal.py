"""Dress rehearsals: the real entry point in a fresh process against a fake /kaggle tree."""

from __future__ import annotations

import json

import pytest

from solve.kaggle_rehearse import rehearse, report_text
from solve.rundir import read_results

TOLERANCE_S = 3.0  # a running stage notices its deadline at its next check; the final writes take ms


def test_full_rehearsal_is_valid_and_on_time(tmp_path, config, fast):
    r = rehearse(tmp_path, 2, 90.0, config, "random:tiny", fast)
    print(report_text(r))
    assert r.rc == 0, r.output[-3000:]
    assert r.problems == []
    records = read_results(r.fake.working / "results.jsonl")
    assert len(records) == 2 and all(rec["status"] == "ok" for rec in records), [rec.get("error") for rec in records]
    assert all(rec["plan"]["seconds"] > 0 for rec in records)  # the budget planner was on
    assert r.overrun_s is not None and r.overrun_s <= TOLERANCE_S
    # the model really came from the Kaggle model/ + tokenizer/ layout
    from ttt.models import resolve_model

    assert resolve_model(str(r.fake.model)).kind == "kaggle"
    assert f"source: {r.fake.model}" in (r.fake.working / "config.yaml").read_text()
    events = [json.loads(line)["event"] for line in (r.fake.working / "timeline.jsonl").read_text().splitlines()]
    assert events.count("start") == 2 and events.count("finish") == 2


def test_short_deadline_still_complete_valid_and_on_time(tmp_path, config):
    # The rehearsal config's tasks need ~10-15 s each here: 4 of them plus start-up cannot fit in 40 s.
    r = rehearse(tmp_path, 4, 40.0, config, "random:tiny")
    print(report_text(r))
    assert r.rc == 0, r.output[-3000:]
    assert r.problems == []  # every task has valid attempts, finished or not
    records = read_results(r.fake.working / "results.jsonl")
    assert sum(rec["status"] == "ok" for rec in records) < 4  # the deadline really cut the run short
    assert r.overrun_s is not None and r.overrun_s <= TOLERANCE_S, report_text(r)


@pytest.mark.slow
def test_rehearsal_with_the_embedded_model(tmp_path, config):
    """The real SmolLM2-135M, symlinked into the Kaggle layout (no 540 MB copy)."""
    r = rehearse(tmp_path, 2, 120.0, config, "smollm2-135m")
    print(report_text(r))
    assert r.rc == 0, r.output[-3000:]
    assert r.problems == []
    assert (r.fake.model / "model" / "config.json").is_symlink()
    assert r.overrun_s is not None and r.overrun_s <= TOLERANCE_S
    assert len(read_results(r.fake.working / "results.jsonl")) == 2
