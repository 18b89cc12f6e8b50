"""Repair samples (solve.pretrain.repair): one-change mutants of known programs, run in the real sandbox,
shown in test-time search's refinement prompt with the original program as the answer."""

from __future__ import annotations

import numpy as np
import pytest

from augment.tasks import Pair, Task
from solve.pipeline.search import attempted
from solve.pretrain.data import encode_examples
from solve.pretrain.repair import MUTATIONS, Mutant, RepairCounts, draw_order, mutants, repair_example, repair_examples, task_repairs
from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox
from solve.sandbox.verify import Candidate, verify
from ttt.prompts import fit_revision_prompt, program_answer, revision_text

HEADER = "from solve.dsl import *\n\n\ndef transform(grid):\n    g = to_array(grid)\n"
FLIP = HEADER + "    x1 = flip_h(g)\n    x2 = recolor(x1, 1, 2)\n    return x2\n"


def _task(source_fn, n_train: int = 3, seed: int = 0) -> Task:
    rng = np.random.default_rng(seed)
    grids = [rng.choice([0, 1, 3], size=(3, 4)).astype(np.int64) for _ in range(n_train + 1)]
    for g in grids:
        g[0, 0], g[2, 3] = 1, 3  # asymmetric, and every pair holds colour 1
    pairs = tuple(Pair(g, source_fn(g)) for g in grids[:n_train])
    return Task("t-flip", pairs, (grids[-1],), (source_fn(grids[-1]),))


def _flip_recolor(g: np.ndarray) -> np.ndarray:
    out = g[:, ::-1].copy()
    out[out == 1] = 2
    return out


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(workers=2, timeout_s=1.0)) as sb:
        yield sb


@pytest.fixture(scope="module")
def task() -> Task:
    return _task(_flip_recolor)


@pytest.mark.parametrize(
    "kind, expected_line",
    [
        ("primitive", "    x1 = flip_v(g)"),  # same signature (Grid) -> Grid
        ("constant", "    x2 = recolor(x1, 1, 3)"),  # a colour to another of the task's palette
        ("constant", "    x2 = recolor(x1, 0, 2)"),
        ("drop", "    x2 = recolor(g, 1, 2)"),  # flip_h dropped: its user reads its grid argument
    ],
)
def test_each_mutation_kind_changes_one_line_and_runs(kind, expected_line, task, sandbox):
    made = [m for m in mutants(FLIP, (0, 1, 2, 3)) if m.kind == kind]
    match = [m for m in made if expected_line in m.source.split("\n")]
    assert match, [m.source for m in made]
    m = match[0]
    changed = [(a, b) for a, b in zip(FLIP.split("\n"), m.source.split("\n")) if a != b]
    assert m.source != FLIP and (len(changed) == 1 or kind == "drop")
    if kind == "drop":
        assert m.source.count("\n") == FLIP.count("\n") - 1 and "flip_h" not in m.source
    (r,) = verify(task, [Candidate("m", m.source)], sandbox)
    assert r.program_error is None and all(o is not None for o in r.train_outputs)


@pytest.mark.parametrize(
    "source, kinds",
    [
        # one grid step: no drop (it would leave `return g`)
        (HEADER + "    x1 = gravity(g, 'down')\n    return x1\n", {"primitive", "constant"}),  # PARAM_CHOICES direction
        (HEADER + "    x1 = upscale(g, 2)\n    return x1\n", {"primitive", "constant"}),  # Int +-1
        (HEADER + "    c1 = most_common_color(g)\n    x1 = recolor(g, c1, 2)\n    return x1\n", {"primitive", "constant"}),
        (HEADER + "    x1 = upscale(g, 2)\n    x2 = flip_h(x1)\n    return x2\n", {"primitive", "constant", "drop"}),
    ],
)
def test_constants_by_type(source, kinds):
    made = mutants(source, (0, 1, 2))
    assert {m.kind for m in made} == kinds
    consts = [m.what for m in made if m.kind == "constant"]
    if "gravity" in source:
        assert sorted(consts) == sorted(f"line 6: direction 'down' -> {d!r}" for d in ("up", "left", "right"))
    if "upscale" in source:
        assert sorted(consts) == ["line 6: k 2 -> 1", "line 6: k 2 -> 3"]
    assert len({m.source for m in made}) == len(made)  # distinct, and none is the original
    assert all(m.source != source for m in made)


def test_a_mutant_that_still_verifies_is_discarded(sandbox):
    # recolor 1 -> 2 on grids that hold no 1 and no 5: recolor(x, 5, 2) behaves the same, so it still verifies
    def fn(g):
        return g[:, ::-1].copy()

    source = HEADER + "    x1 = flip_h(g)\n    x2 = recolor(x1, 5, 2)\n    return x2\n"
    t = _task(fn)
    t = Task(t.id, tuple(Pair(np.where(p.input == 1, 3, p.input), fn(np.where(p.input == 1, 3, p.input))) for p in t.train),
             t.test_inputs, None)
    counts = RepairCounts()
    kept = task_repairs(t, source, 0, 50, 0, sandbox, counts)
    assert counts.still_verified > 0  # recolor(x1, 5, 0) and dropping the recolor change nothing here
    assert all(r.train_correct < r.train_total for _, r in kept)
    assert counts.run == counts.still_verified + counts.no_grid + counts.lookup + sum(counts.kept.values())


def test_the_sample_is_the_inference_revision_prompt_and_the_answer_the_original(task, sandbox, tokenizer):
    kept = task_repairs(task, FLIP, 0, 3, 7, sandbox)
    assert kept
    for m, r in kept:
        ex = repair_example(task, FLIP, m, r)
        assert ex.answer == program_answer(FLIP) and ex.attempts == (attempted(r),)
        assert "The program above is wrong on some pairs" in revision_text(ex.context, ex.attempts)
        (enc,), dropped = encode_examples(tokenizer, [ex], 4096)
        # the prompt part is exactly what test-time search's refinement builds for this ProgramResult
        prompt = fit_revision_prompt(tokenizer, task.train, (attempted(r),)).ids
        n = sum(label == -100 for label in enc.labels)
        assert dropped == 0 and enc.input_ids[:n] == prompt
        assert tokenizer.decode(enc.input_ids[n:]) == program_answer(FLIP) + "<|im_end|>"


def test_long_repair_samples_lose_right_pairs_first(sandbox, tokenizer):
    task = _task(_flip_recolor)
    ins = [np.where(p.input == 1, 0, p.input) for p in task.train]
    ins[0][1, 1] = 1  # only pair 1 holds colour 1: recolouring it to 3 instead of 2 is wrong there alone
    task = Task("t-one", tuple(Pair(g, _flip_recolor(g)) for g in ins), task.test_inputs, None)
    m = Mutant("constant", "line 7: b 2 -> 3", FLIP.replace("recolor(x1, 1, 2)", "recolor(x1, 1, 3)"))
    (r,) = verify(task, [Candidate("m", m.source)], sandbox)
    assert r.train_correct == len(task.train) - 1
    ex = repair_example(task, FLIP, m, r)
    (full,), _ = encode_examples(tokenizer, [ex], 4096)
    (short,), _ = encode_examples(tokenizer, [ex], len(full.input_ids) - 1)
    assert short.shortened and short.n_context == len(task.train) - 1
    wrong = [i for i in range(len(task.train)) if not np.array_equal(r.train_outputs[i], task.train[i].output)]
    text = tokenizer.decode(short.input_ids)
    assert text.count(": wrong") == len(wrong) == 1 and text.count(": right") == 1  # the pair dropped was a right one


def test_deterministic_from_seed_and_task_index(task, sandbox):
    order = lambda seed, i: [m.source for m in draw_order(mutants(FLIP, (0, 1, 2, 3)), seed, i)]  # noqa: E731
    assert order(0, 0) == order(0, 0) and order(0, 0) != order(0, 1) and order(0, 0) != order(1, 0)
    assert sorted(order(0, 0)) == sorted(order(5, 3))
    first = order(0, 0)[:3]
    assert {m.kind for m in mutants(FLIP, (0, 1, 2, 3)) if m.source in first} == set(MUTATIONS)  # kinds interleaved
    a, ca = repair_examples([task, task], {task.id: FLIP}, 2, 11, sandbox)
    b, cb = repair_examples([task, task], {task.id: FLIP}, 2, 11, sandbox)
    assert [e.origin for e in a] == [e.origin for e in b] and ca.to_dict() == cb.to_dict()
    assert ca.to_dict()["kept"] == 4 and ca.tasks_with_repairs == 2


def test_a_task_whose_program_does_not_verify_gives_nothing(task, sandbox):
    wrong = HEADER + "    x1 = flip_v(g)\n    return x1\n"
    counts = RepairCounts()
    assert task_repairs(task, wrong, 0, 2, 0, sandbox, counts) == [] and counts.original_not_verified == 1
    assert repair_examples([task], {task.id: FLIP}, 0, 0, sandbox)[0] == []  # none asked: no sandbox work


def test_draw_step_takes_repairs_only_when_asked():
    from solve.pipeline.runconfig import load_config
    from solve.pretrain.recipe import Pools, draw_step
    from ttt.prompts import Encoded

    enc = lambda tag, n: [Encoded([tag] * 4, [tag] * 4, 1, False) for _ in range(n)]  # noqa: E731
    plain, with_repairs = Pools(enc(1, 5), enc(2, 5)), Pools(enc(1, 5), enc(2, 5), enc(3, 5))
    off = load_config(None, ["train.grad_accum=8", "train.batch_tokens=8"])
    for step in range(5):  # repair_share 0: the same draws as a run without repairs
        assert draw_step(plain, step, 0, off) == draw_step(with_repairs, step, 0, off)
    on = load_config(None, ["train.grad_accum=8", "train.batch_tokens=8", "pretrain.program_share=1", "pretrain.repair_share=1"])
    assert {e.input_ids[0] for b in draw_step(with_repairs, 0, 0, on) for e in b} == {3}
    with pytest.raises(Exception, match="repair_share"):
        load_config(None, ["pretrain.repair_share=1.5"])


@pytest.mark.slow
def test_pretrain_trains_on_repairs_and_the_card_counts_them(tmp_path):
    from rich.console import Console

    from solve.pipeline.runconfig import load_config
    from solve.pretrain.recipe import pretrain
    from solve.synth.corpus import generate_corpus

    generate_corpus(12, 0, tmp_path / "corpus", progress=False)
    cfg = load_config(None, [
        "model.source=random:tiny", "train.steps=2", "train.warmup_steps=1", "train.max_seq_len=1024", "train.batch_tokens=1200",
        "pretrain.real_datasets=[]", "pretrain.heldout_tasks=2", "pretrain.eval_every=0", "pretrain.eval_programs=1",
        "solve.program_max_new_tokens=16", "lora.r=4", "lora.alpha=8", "sandbox.workers=1",
        "pretrain.repair_share=0.5", "pretrain.repairs_per_task=1",
    ])
    report = pretrain(cfg, [tmp_path / "corpus"], tmp_path / "prior", Console(quiet=True), progress=False)
    data = report["data"]
    assert data["repairs"]["tasks"] == 10 and 0 < data["repair_examples"] <= data["repairs"]["kept"] <= 10
    card = (tmp_path / "prior" / "MODEL_CARD.md").read_text()
    assert "repair samples (a program with one change" in card and f"{data['repair_examples']} encoded" in card


def test_repair_pick_depends_on_ids_only():
    from augment.tasks import Pair, Task
    from solve.pretrain.repair import repair_pick

    g = np.zeros((2, 2), dtype=np.uint8)
    tasks = [Task(f"synth-{i}", (Pair(g, g),), (g,), None) for i in range(50)]
    some = repair_pick(tasks, 10)
    assert len(some) == 10 and [t.id for t in some] == [t.id for t in tasks if t in some]
    assert {t.id for t in repair_pick(list(reversed(tasks)), 10)} == {t.id for t in some}
    assert {t.id for t in repair_pick(tasks[:30] + tasks[30:], 10)} == {t.id for t in some}
    assert repair_pick(tasks, None) == tasks and repair_pick(tasks, 500) == tasks
