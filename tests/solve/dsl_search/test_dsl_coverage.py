"""`arc-ttt dsl coverage`: counts solved and fitting tasks, the same with one worker or two, JSON alone
on stdout with --json, and a clear error for bad options."""

from __future__ import annotations

import json

import numpy as np
from typer.testing import CliRunner

from augment.tasks import Pair, Task
from solve.cli.app import app
from solve.dsl_search.coverage import coverage, program_body, summary


def tasks() -> list[Task]:
    rng = np.random.default_rng(7)
    xs = [rng.integers(0, 4, (3, 5)).astype(np.uint8) for _ in range(8)]
    flip = Task("flip", tuple(Pair(x, np.rot90(x, 2).copy()) for x in xs[:3]), (xs[3],), (np.rot90(xs[3], 2).copy(),))
    noise = [rng.integers(0, 10, (4, 4)).astype(np.uint8) for _ in range(4)]
    hopeless = Task("hopeless", tuple(Pair(x, n) for x, n in zip(xs[4:7], noise)), (xs[7],), (noise[3],))
    return [flip, hopeless]


def test_coverage_counts_and_workers_agree():
    one = coverage(tasks(), depth=1, seconds=5, workers=1)
    two = coverage(tasks(), depth=1, seconds=5, workers=2)
    assert [(r.task_id, r.fits, r.solved, r.program) for r in one] == [(r.task_id, r.fits, r.solved, r.program) for r in two]
    s = summary(one)
    assert (s["tasks"], s["fits"], s["solved"]) == (2, 1, 1) and s["by_depth"] == {1: 1}
    assert one[0].program == "x1 = rot180(g)"


def test_program_body_drops_the_header_and_return():
    src = "from solve.dsl import *\n\n\ndef transform(grid):\n    g = to_array(grid)\n    x1 = rot90(g)\n    return x1\n"
    assert program_body(src) == "x1 = rot90(g)"


def test_cli_json_is_json_alone(tmp_path):
    ch = {t.id: {"train": [{"input": p.input.tolist(), "output": p.output.tolist()} for p in t.train],
                 "test": [{"input": x.tolist()} for x in t.test_inputs]} for t in tasks()}
    sol = {t.id: [y.tolist() for y in t.test_outputs] for t in tasks()}
    (tmp_path / "c.json").write_text(json.dumps(ch))
    (tmp_path / "s.json").write_text(json.dumps(sol))
    res = CliRunner().invoke(app, ["dsl", "coverage", "--tasks", str(tmp_path / "c.json"), "--solutions", str(tmp_path / "s.json"),
                                   "--depth", "1", "--seconds", "5", "--json"])
    assert res.exit_code == 0, res.output
    report = json.loads(res.stdout)
    assert report["summary"]["solved"] == 1 and [t["task_id"] for t in report["tasks"]] == ["flip", "hopeless"]
    bad = CliRunner().invoke(app, ["dsl", "coverage", "--tasks", str(tmp_path / "c.json"), "--show", "everything"])
    assert bad.exit_code == 2 and "--show" in bad.output
