"""`solve.synth.stats` on a hand-made corpus (every share known), the CLI's --stats, and the
shape-kept share of a generated corpus (ARC-AGI-1 training: 65.5 %)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from typer.testing import CliRunner

from solve.synth.stats import corpus_stats, format_stats, task_flags

G = np.arange(100, dtype=np.uint8).reshape(10, 10) % 7  # 100 cells, every row different
ONE_CELL = G.copy()
ONE_CELL[0, 0] = 9  # 1 % of the cells changed
FLIP = G[:, ::-1].copy()
BIG = np.zeros((20, 20), np.uint8)

# name: (train pairs, test pair, depth, primitives, flags expected)
TASKS = {
    "a-identity": ([(G, G), (G.T, FLIP)], (FLIP, G), 1, ["flip_h"],
                   {"output_is_input": True, "repeated_output": True, "few_cells_changed": False, "shape_kept": True, "over_budget": False}),
    "b-few": ([(G, ONE_CELL), (FLIP, G)], (G.T, FLIP), 2, ["flip_h", "recolor"],
              {"output_is_input": False, "repeated_output": False, "few_cells_changed": False, "shape_kept": True, "over_budget": False}),
    "c-fewer": ([(G, ONE_CELL), (FLIP, FLIP + 0)], (G.T, G.T), 2, ["recolor"],
                {"output_is_input": True, "repeated_output": False, "few_cells_changed": True, "shape_kept": True, "over_budget": False}),
    "d-crop": ([(G, G[:3]), (FLIP, FLIP[:3])], (G.T, G.T[:3]), 3, ["crop", "flip_h"],
               {"output_is_input": False, "repeated_output": False, "few_cells_changed": False, "shape_kept": False, "over_budget": False}),
    "e-big": ([(BIG, BIG + 1), (BIG + 2, BIG + 1)], (BIG + 3, BIG + 1), 1, ["recolor"],
              {"output_is_input": False, "repeated_output": True, "few_cells_changed": False, "shape_kept": True, "over_budget": True}),
}  # fmt: skip


@pytest.fixture()
def corpus(tmp_path):
    challenges, solutions, programs = {}, {}, []
    for tid, (train, (ti, to), depth, prims, _) in TASKS.items():
        challenges[tid] = {"train": [{"input": i.tolist(), "output": o.tolist()} for i, o in train], "test": [{"input": ti.tolist()}]}
        solutions[tid] = [to.tolist()]
        programs.append(json.dumps({"task_id": tid, "source": "", "depth": depth, "primitives": prims, "origin": "test"}))
    (tmp_path / "challenges.json").write_text(json.dumps(challenges))
    (tmp_path / "solutions.json").write_text(json.dumps(solutions))
    (tmp_path / "programs.jsonl").write_text("\n".join(programs) + "\n")
    return tmp_path


@pytest.mark.parametrize("tid", TASKS)
def test_task_flags(corpus, tid):
    from augment.tasks import load_challenges

    task = next(t for t in load_challenges(corpus / "challenges.json", corpus / "solutions.json").tasks if t.id == tid)
    assert task_flags(task) == TASKS[tid][4]


def test_corpus_shares_histograms_and_one_call_sample(corpus):
    asked = []
    stats = corpus_stats(corpus, one_call=lambda t: asked.append(t.id) or t.id == "b-few", sample=2, note="fake")
    assert stats["tasks"] == 5
    shares = {"output_is_input": 0.4, "repeated_output": 0.4, "few_cells_changed": 0.2, "shape_kept": 0.8, "over_budget": 0.2}
    assert stats["shares"] == shares
    assert asked == ["b-few", "c-fewer"]  # the first 2 tasks of depth >= 2, in task order
    assert stats["one_call"] == {"sample": 2, "solved": 1, "share": 0.5, "how": "fake"}
    assert stats["depths"] == {"1": 2, "2": 2, "3": 1}
    assert stats["primitives"] == {"flip_h": 3, "recolor": 3, "crop": 1}
    text = format_stats(stats)
    assert "shape_kept" in text and "80.0 %" in text and "1 of a sample of 2" in text
    assert corpus_stats(corpus)["one_call"]["sample"] == 0  # no one-call test: no sample


def test_cli_stats_of_an_existing_corpus(corpus):
    from solve.cli.app import app

    res = CliRunner().invoke(app, ["synth", "--out", str(corpus), "--stats", "--sample", "0", "--json"])
    assert res.exit_code == 0, res.output
    assert json.loads(res.output)["shares"]["shape_kept"] == 0.8
    res = CliRunner().invoke(app, ["synth", "--out", str(corpus)])
    assert res.exit_code != 0 and "--n" in res.output


def test_generate_then_stats_with_the_dsl_search(tmp_path, sources, monkeypatch):
    import solve.synth.corpus as corpus_mod
    from solve.cli.app import app

    monkeypatch.setattr(corpus_mod, "load_sources", lambda: sources)
    res = CliRunner().invoke(
        app,
        ["synth", "--n", "12", "--out", str(tmp_path), "--no-progress", "--stats", "--sample", "2", "--search-seconds", "0.5", "--json"],
    )
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert data["accepted"] == data["stats"]["tasks"] and data["stats"]["one_call"]["sample"] <= 2


def test_shape_kept_share_of_a_corpus_is_about_arcs(tmp_path, sources):
    from solve.synth.corpus import generate_corpus

    generate_corpus(200, 0, tmp_path, progress=False, sources=sources)
    stats = corpus_stats(tmp_path)
    assert stats["tasks"] >= 180
    assert 0.55 <= stats["shares"]["shape_kept"] <= 0.75  # ARC-AGI-1 training: 0.655
    assert stats["shares"]["output_is_input"] == stats["shares"]["repeated_output"] == stats["shares"]["over_budget"] == 0
