"""`arc-ttt dsl corpus`: real training tasks with programs that are right on train and test, in the
synth corpus format that pretraining loads; evaluation sets are refused."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from solve.cli.app import app
from solve.pretrain.data import load_corpus


@pytest.mark.slow
def test_corpus_of_real_tasks_loads_and_its_programs_are_right(tmp_path):
    out = tmp_path / "real"
    res = CliRunner().invoke(app, ["dsl", "corpus", "--dataset", "arc-agi-1/training", "--out", str(out), "--limit", "12",
                                   "--depth", "1", "--seconds", "3"])
    assert res.exit_code == 0, res.output
    report = json.loads((out / "synth_report.json").read_text())
    assert report["searched"] == 12 and report["accepted"] >= 1 and report["contamination"]["clean"]
    corpus = load_corpus([out])
    # each accepted task and its views (turned and recoloured), every one with a program right on train and test
    assert len(corpus.tasks) == report["accepted"] + report["views"] and report["views"] >= report["accepted"]
    assert sum(not t.id.split("-")[-1].startswith("v") for t in corpus.tasks) == report["accepted"]
    for task in corpus.tasks:
        scope: dict = {}
        exec(compile(corpus.sources[task.id], task.id, "exec"), scope)  # our own search's DSL program
        for x, y in [(p.input, p.output) for p in task.train] + list(zip(task.test_inputs, task.test_outputs)):
            assert np.array_equal(np.asarray(scope["transform"](x.tolist()), dtype=np.uint8), y)


def test_evaluation_sets_are_refused(tmp_path):
    res = CliRunner().invoke(app, ["dsl", "corpus", "--dataset", "arc-agi-1/evaluation", "--out", str(tmp_path / "x")])
    assert res.exit_code == 2 and "evaluation set" in res.output
    assert not (tmp_path / "x").exists()
