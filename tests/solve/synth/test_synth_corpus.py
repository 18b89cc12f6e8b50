"""The corpus: deterministic per seed, shards partition it exactly, every reject is counted, every
program reproduces its task, the files load as Kaggle challenges, and evaluation grids never get in."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

import solve.synth.corpus as corpus
from augment.contamination import grid_key
from augment.tasks import Pair, Task, load_challenges, load_dataset
from solve.synth.check import REASONS, load_transform
from solve.synth.corpus import MAX_ATTEMPTS, generate_corpus, main, task_id
from solve.synth.inputs import arc_pool
from solve.synth.program import Program, Step

N = 60
FILES = ("challenges.json", "solutions.json", "programs.jsonl")


@pytest.fixture(scope="module")
def run0(tmp_path_factory, sources):
    out = tmp_path_factory.mktemp("corpus")
    return out, generate_corpus(N, 0, out, progress=False, sources=sources)


def _read(out: Path) -> tuple[dict, dict, list[dict]]:
    challenges = json.loads((out / "challenges.json").read_text())
    solutions = json.loads((out / "solutions.json").read_text())
    programs = [json.loads(line) for line in (out / "programs.jsonl").read_text().splitlines()]
    return challenges, solutions, programs


def test_same_seed_same_files(run0, tmp_path, sources):
    out0, report0 = run0
    report1 = generate_corpus(N, 0, tmp_path, progress=False, sources=sources)
    for name in FILES:
        assert (out0 / name).read_bytes() == (tmp_path / name).read_bytes(), name
    assert report0["rejects"] == report1["rejects"]
    other = generate_corpus(N, 1, tmp_path / "s1", progress=False, sources=sources)
    assert (tmp_path / "s1" / "challenges.json").read_bytes() != (out0 / "challenges.json").read_bytes()
    assert all(tid.startswith("synth-s1-") for tid in _read(tmp_path / "s1")[0]) and other["accepted"] > 0


def test_shards_partition_the_unsharded_corpus(run0, tmp_path, sources):
    out0, report0 = run0
    whole = _read(out0)
    parts = [generate_corpus(N, 0, tmp_path / str(i), (i, 3), progress=False, sources=sources) for i in range(3)]
    merged: tuple[dict, dict, list] = ({}, {}, [])
    for i in range(3):
        c, s, p = _read(tmp_path / str(i))
        assert not set(c) & set(merged[0]), "shards overlap"
        merged[0].update(c)
        merged[1].update(s)
        merged[2].extend(p)
    assert merged[0] == whole[0] and merged[1] == whole[1]
    assert sorted(merged[2], key=lambda r: r["task_id"]) == whole[2]
    assert sum(r["slots"] for r in parts) == report0["slots"] == N
    assert sum(r["accepted"] for r in parts) == report0["accepted"]
    for reason in REASONS:
        assert sum(r["rejects"][reason] for r in parts) == report0["rejects"][reason]


def test_reject_accounting_adds_up(run0):
    _, report = run0
    assert set(report["rejects"]) == set(REASONS)
    assert report["attempted"] == report["accepted"] + sum(report["rejects"].values())
    assert report["slots"] == report["accepted"] + report["empty_slots"]
    assert report["accepted"] >= 0.9 * N
    assert sum(report["depths"].values()) == report["accepted"] and set(report["depths"]) <= {1, 2, 3, 4}
    assert report["tasks_per_s"] > 0 and report["seconds"] >= report["generate_seconds"]
    assert report["contamination"]["clean"] and report["contamination"]["written_contaminated"] == 0
    assert report["contamination"]["source"]["dataset"] == "arc-agi-1/training"


def test_every_program_reproduces_its_task(run0):
    out, _ = run0
    challenges, solutions, programs = _read(out)
    assert [r["task_id"] for r in programs] == list(challenges) == list(solutions)
    for record in programs:
        task = challenges[record["task_id"]]
        assert 3 <= len(task["train"]) <= 5 and 1 <= len(task["test"]) <= 2
        assert 1 <= record["depth"] <= 4 and record["primitives"] == sorted(set(record["primitives"]))
        transform = load_transform(record["source"])  # a fresh namespace per program
        for pair in task["train"]:
            assert transform(pair["input"]).tolist() == pair["output"], record["source"]
        for item, answer in zip(task["test"], solutions[record["task_id"]]):
            assert transform(item["input"]).tolist() == answer
        outputs = [p["output"] for p in task["train"]] + solutions[record["task_id"]]
        inputs = [p["input"] for p in task["train"]] + [t["input"] for t in task["test"]]
        assert outputs != inputs and any(o != outputs[0] for o in outputs)


def test_corpus_loads_as_kaggle_challenges(run0):
    out, report = run0
    loaded = load_challenges(out / "challenges.json", out / "solutions.json", strict=True)
    assert not loaded.issues and len(loaded.tasks) == report["accepted"]
    assert all(t.test_outputs is not None and t.id.startswith("synth-s0-") for t in loaded.tasks)
    assert task_id(3, 42) == "synth-s3-0000042"


def test_a_planted_evaluation_grid_is_rejected_and_counted(tmp_path, sources, monkeypatch):
    planted = load_dataset("arc-agi-1/evaluation").tasks[0].train[0].input
    real_gen, real_arc = corpus.styled_inputs, corpus.arc_inputs

    # Every input set now holds one evaluation grid, whichever source the slot uses.
    def planted_generated(rng, k, style, bg, palette, exclude=frozenset()):
        return [planted] + real_gen(rng, k, style, bg, palette)[1:]

    monkeypatch.setattr(corpus, "styled_inputs", planted_generated)
    monkeypatch.setattr(corpus, "arc_inputs", lambda rng, pool, k: [planted] + real_arc(rng, pool, k)[1:])
    report = generate_corpus(12, 0, tmp_path, progress=False, sources=sources)
    assert report["accepted"] == 0 and report["empty_slots"] == 12
    assert report["rejects"]["contaminated"] > 0
    assert report["contamination"]["rejected_contaminated"] == report["rejects"]["contaminated"]
    assert report["attempted"] == sum(report["rejects"].values()) == 12 * MAX_ATTEMPTS
    assert json.loads((tmp_path / "challenges.json").read_text()) == {}
    assert grid_key(planted) in sources.eval_keys


def test_behaviour_duplicates_within_a_family_are_rejected(tmp_path, sources, monkeypatch):
    # One ARC family with exactly four grids: every slot gets the same inputs (in some order), and the
    # same program then behaves the same: only the first slot is accepted.
    rng = np.random.default_rng(0)
    a, b, c, d = (rng.integers(0, 10, (5, 7)).astype(np.uint8) for _ in range(4))
    task = Task("fake", (Pair(a, b), Pair(c, d)), (a,), None)
    one = replace(sources, arc_tasks=(task,), pools=(tuple(arc_pool(task)),))
    assert len(one.pools[0]) == 4
    flip = Program((Step("flip_h", (("ref", 0),), "Grid"),), 1)
    monkeypatch.setattr(corpus, "ARC_SHARE", 1.0)
    monkeypatch.setattr(corpus, "SHAPE_SHARE", 1.0)  # flip_h keeps the shape: every slot must ask for that
    monkeypatch.setattr(corpus, "random_program", lambda rng, palette, **kw: flip)
    report = generate_corpus(3, 0, tmp_path, progress=False, sources=one)
    assert report["accepted"] == 1 and report["empty_slots"] == 2
    assert report["rejects"]["duplicate"] == 2 * MAX_ATTEMPTS


def test_a_program_that_changes_its_mind_is_rejected(tmp_path, sources, monkeypatch):
    import solve.synth.check as check

    monkeypatch.setattr(check, "load_transform", lambda source: lambda grid: np.zeros((1, 1), np.uint8))
    report = generate_corpus(4, 0, tmp_path, progress=False, sources=sources)
    assert report["accepted"] == 0 and report["empty_slots"] == 4
    assert report["rejects"]["nondeterministic"] >= 4  # every program that got that far


def test_command_line(tmp_path, capsys, sources, monkeypatch):
    monkeypatch.setattr(corpus, "load_sources", lambda: sources)
    assert main(["--n", "5", "--seed", "2", "--out", str(tmp_path), "--shard", "1/2", "--no-progress"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["shard"] == "1/2" and (tmp_path / "challenges.json").exists()
    with pytest.raises(SystemExit):
        main(["--n", "5", "--out", str(tmp_path), "--shard", "2/2"])
    with pytest.raises(ValueError, match="shard"):
        generate_corpus(5, 0, tmp_path, (3, 2), progress=False, sources=sources)


def test_progress_bar_run(tmp_path, sources):
    report = generate_corpus(3, 0, tmp_path, progress=True, sources=sources)
    assert report["slots"] == 3


@pytest.mark.parametrize("shard,workers", [((0, 1), 2), ((1, 2), 3)])
def test_workers_write_the_files_one_process_writes(tmp_path, sources, shard, workers):
    one = generate_corpus(N, 0, tmp_path / "one", shard, progress=False, sources=sources)
    many = generate_corpus(N, 0, tmp_path / "many", shard, progress=False, sources=sources, workers=workers)
    for name in FILES:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "many" / name).read_bytes(), name
    assert one["rejects"] == many["rejects"] and one["slots"] == many["slots"] and many["workers"] == workers
