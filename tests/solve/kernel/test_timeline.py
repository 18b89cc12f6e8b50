"""Timeline spans from the run's event log, the text summary and the plot."""

from __future__ import annotations

import json

from solve.kernel.timeline import finish_summary, load_spans, plot_timeline, timeline_text


def _write(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))


def test_spans_pair_events_and_mark_killed_and_skipped(tmp_path):
    _write(tmp_path / "timeline.jsonl", [
        {"task_id": "a", "event": "start", "wall": 100.0, "worker": 0},
        {"task_id": "b", "event": "start", "wall": 101.0, "worker": 1},
        {"task_id": "a", "event": "finish", "wall": 110.0, "worker": 0, "status": "ok"},
        {"task_id": "c", "event": "skipped", "wall": 111.0, "worker": 0},
        {"task_id": "d", "event": "start", "wall": 112.0, "worker": 0},
        {"task_id": "b", "event": "finish", "wall": 115.0, "worker": 1, "status": "failed"},
    ])
    _write(tmp_path / "results.jsonl", [
        {"task_id": "a", "plan": {"seconds": 12.0}, "stages": {"ttt": {"seconds": 6.0}, "vote": {"seconds": 0.1}}},
    ])
    (tmp_path / "kernel.json").write_text(json.dumps({"started_at": 90.0, "deadline_at": 120.0}))
    spans = {s.task_id: s for s in load_spans(tmp_path)}
    assert (spans["a"].status, spans["a"].end, spans["a"].planned_end) == ("ok", 110.0, 112.0)
    assert (spans["b"].status, spans["b"].worker) == ("failed", 1)
    assert spans["c"].status == "skipped"
    assert (spans["d"].status, spans["d"].end) == ("killed", 115.0)  # never finished: drawn to the last event
    kernel = json.loads((tmp_path / "kernel.json").read_text())
    summary = finish_summary(list(spans.values()), kernel)
    assert (summary["planned_end"], summary["actual_end"], summary["skipped"]) == (112.0, 115.0, 1)
    text = timeline_text(list(spans.values()), kernel)
    assert "planned end 22.0s, actual end 25.0s, deadline 30.0s" in text
    png = plot_timeline(list(spans.values()), tmp_path / "t.png", kernel)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
