"""Dress rehearsals: the real entry point in a fresh process against a fake /kaggle tree."""

from __future__ import annotations

import json

import pytest

from solve.kernel.rehearse import rehearse, report_text
from solve.pipeline.rundir import read_results

TOLERANCE_S = 5.0  # a running stage notices its deadline at its next check; the final writes take ms
GRACE_S = 60.0  # the watchdog's hard stop after the deadline in the real-model rehearsal


@pytest.mark.slow  # minutes-long subprocess or many tiny runs: CI runs it, the inner loop does not
def test_full_rehearsal_is_valid_and_on_time(tmp_path, config, fast):
    r = rehearse(tmp_path, 2, 150.0, config, "random:tiny", fast)  # generous: a loaded CI machine must not cut tasks
    print(report_text(r))
    assert r.rc == 0, r.output[-3000:]
    assert r.problems == []
    records = read_results(r.fake.working / "results.jsonl")
    assert len(records) == 2 and all(rec["status"] == "ok" for rec in records), [rec.get("error") for rec in records]
    assert all(rec["plan"]["seconds"] > 0 for rec in records)  # the budget planner was on
    assert all("dsl_search" in rec["stages"] for rec in records)  # the kernel configs run the DSL search
    assert r.overrun_s is not None and r.overrun_s <= TOLERANCE_S
    # the model really came from the Kaggle model/ + tokenizer/ layout
    from ttt.models import resolve_model

    assert resolve_model(str(r.fake.model)).kind == "kaggle"
    assert f"source: {r.fake.model}" in (r.fake.working / "config.yaml").read_text()
    events = [json.loads(line)["event"] for line in (r.fake.working / "timeline.jsonl").read_text().splitlines()]
    assert events.count("start") == 2 and events.count("finish") == 2


@pytest.mark.slow  # waits out its 40 s deadline by design
def test_short_deadline_still_complete_valid_and_on_time(tmp_path, config):
    # 200 training steps: >= 25 s per task even on an idle machine (0.14 s/step measured); 4 tasks cannot fit in 40 s.
    r = rehearse(tmp_path, 4, 40.0, config, "random:tiny", ["train.steps=200"])
    print(report_text(r))
    assert r.rc == 0, r.output[-3000:]
    assert r.problems == []  # every task has valid attempts, finished or not
    records = read_results(r.fake.working / "results.jsonl")
    # The deadline really cut the run short: a task skipped or stopped by its deadline, or training
    # stopped (by the planner's step count or the deadline) below the configured 200 steps.
    trained = [rec.get("stages", {}).get("ttt", {}).get("steps", 0) for rec in records]
    assert len(records) == 4 and all(rec["status"] != "ok" or steps < 200 for rec, steps in zip(records, trained)), trained
    assert r.overrun_s is not None and r.overrun_s <= TOLERANCE_S, report_text(r)


@pytest.mark.slow
def test_rehearsal_with_the_embedded_model(tmp_path, config, fast):
    """The real SmolLM2-135M, symlinked into the Kaggle layout (no 540 MB copy). Short sequences: the
    first training step always runs (there is no step time to predict it from yet) and a 1k-token step
    of the 135M model took 30-90 s on a contended 2-core machine, longer than a task's whole share."""
    r = rehearse(tmp_path, 2, 150.0, config, "smollm2-135m", fast, grace_s=GRACE_S)
    print(report_text(r))
    assert r.rc == 0, r.output[-3000:]  # 0: the watchdog did not have to fire
    assert r.problems == []
    assert (r.fake.model / "model" / "config.json").is_symlink()
    # Per-task deadlines are checked between stages and training steps; a stage in flight (the first
    # training step, candidate scoring) can overrun by its own length, which on this CPU is 10-40 s
    # (measured). The kernel's own bound is deadline + grace (the watchdog): that is what holds here.
    assert r.overrun_s is not None and r.overrun_s <= GRACE_S
    assert len(read_results(r.fake.working / "results.jsonl")) == 2
