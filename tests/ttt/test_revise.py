"""Revision prompts (test-time search): what a program got wrong, pair by pair, under the one length rule;
and batched sampling of revisions."""

from __future__ import annotations

import numpy as np
import pytest

from augment.gridtext import grid_to_text
from ttt.prompts import CROSSOVER_NOTE, REVISE_NOTE, Attempted, fit_revision_prompt, outcome_text, revision_text


def g(*rows):
    return np.array(rows, dtype=np.uint8)


@pytest.mark.parametrize(
    "output, error, expected, text",
    [
        (g([1, 2]), None, g([1, 2]), "right"),
        (g([1, 3], [4, 4]), None, g([1, 2], [4, 4]), "wrong (1 of 4 cells differ)\ngot, . where right\n2x2\n.3\n.."),
        (g([1], [2]), None, g([1, 2]), "wrong (shape 2x1, expected 1x2)\ngot\n2x1\n1\n2"),
        (None, "exception:IndexError", g([1, 2]), "error exception:IndexError"),
        (None, None, g([1, 2]), "error no output"),
    ],
    ids=["right", "cells", "shape", "error", "nothing"],
)
def test_outcome_of_one_pair(output, error, expected, text):
    assert outcome_text(output, error, expected) == text


def test_refinement_text_shows_every_pair_and_the_program(flip_task):
    pairs = flip_task.train
    outputs = (pairs[0].output, pairs[1].input, None)
    a = Attempted("def transform(grid):\n    return grid\n", outputs, (None, None, "timeout"))
    text = revision_text(pairs, [a])
    assert text.startswith("in\n" + grid_to_text(pairs[0].input))
    assert "program\n```python\ndef transform(grid):\n    return grid\n```" in text
    assert "pair 1: right\n" in text and "pair 3: error timeout\n" in text and text.endswith(REVISE_NOTE)
    assert f"pair 2: {outcome_text(pairs[1].input, None, pairs[1].output)}\n" in text


def test_revision_prompts_show_no_test_input_and_no_expected_grid_twice(flip_task):
    """The defect: the test inputs were shown, and every wrong pair repeated its expected grid."""
    pairs = flip_task.train
    a = Attempted("def transform(grid):\n    return grid\n", tuple(p.input for p in pairs), (None,) * 3)
    text = revision_text(pairs, [a])
    assert "test in" not in text and grid_to_text(flip_task.test_inputs[0]) not in text
    assert "expected\n" not in text
    for p in pairs:
        assert text.count(grid_to_text(p.output)) == 1, "the expected grid is the pair's own out, once"


def test_crossover_text_labels_two_programs(flip_task):
    pairs = flip_task.train[:2]
    a = Attempted("def transform(grid):\n    return 1\n", (pairs[0].output, None), (None, "exception:TypeError"))
    b = Attempted("def transform(grid):\n    return 2\n", (None, pairs[1].output), ("timeout", None))
    text = revision_text(pairs, [a, b])
    first, second = text.split("program B\n")
    assert "program A\n" in first and "return 1" in first and "pair 1: right" in first and "pair 2: error exception:TypeError" in first
    assert "return 2" in second and "pair 1: error timeout" in second and "pair 2: right" in second
    assert text.endswith(CROSSOVER_NOTE)


def test_a_long_revision_prompt_keeps_the_failing_pairs(tokenizer, flip_task):
    """The defect: pairs were cut from the front, so a program right only on the last pair was shown as
    'pair 1: right'. Pairs the program gets right go first; the outcomes follow their pairs."""
    pairs = flip_task.train
    wrong = tuple(p.input for p in pairs[:2])
    a = Attempted("def transform(grid):\n    return grid\n", (*wrong, pairs[2].output), (None,) * 3)
    full = fit_revision_prompt(tokenizer, pairs, [a])
    short = fit_revision_prompt(tokenizer, pairs, [a], reserve=10, max_seq_len=len(full.ids))
    assert (full.n_context, full.shortened, short.n_context, short.shortened, short.fits) == (3, False, 2, True, True)
    text = tokenizer.decode(short.ids)
    assert ": right" not in text and "pair 3:" not in text and grid_to_text(pairs[2].input) not in text
    assert f"pair 1: {outcome_text(pairs[0].input, None, pairs[0].output)}" in text
    assert f"pair 2: {outcome_text(pairs[1].input, None, pairs[1].output)}" in text
    one = fit_revision_prompt(tokenizer, pairs, [a], reserve=10, max_seq_len=len(short.ids) - 1)
    assert one.n_context == 1 and "pair 1: wrong" in tokenizer.decode(one.ids) and ": right" not in tokenizer.decode(one.ids)
    with pytest.raises(ValueError):
        fit_revision_prompt(tokenizer, pairs, [Attempted("x", (None,), (None,))])


def test_sample_revisions_in_request_order(tiny, tokenizer, flip_task):
    from augment.transforms import Augmentation
    from solve.pipeline.runconfig import SolveConfig
    from ttt.revise import RevisionRequest, sample_revisions

    a = Attempted("def transform(grid):\n    return grid\n", tuple(p.input for p in flip_task.train), (None,) * 3)
    one = RevisionRequest(Augmentation(), flip_task.train, (a,), ("p0",))
    two = RevisionRequest(Augmentation(), flip_task.train, (a, a), ("p0", "p1"))
    cfg = SolveConfig(program_max_new_tokens=16)
    out = sample_revisions(tiny, tokenizer, [one, two], 2, cfg, seed=0)
    assert [(t.request.kind, t.request.parents) for t in out] == [("refine", ("p0",))] * 2 + [("crossover", ("p0", "p1"))] * 2
    assert all(isinstance(t.text, str) and not t.shortened for t in out)
    assert sample_revisions(tiny, tokenizer, [], 2, cfg, seed=0) == []
    some = sample_revisions(tiny, tokenizer, [one, two], [0, 3], cfg, seed=0)
    assert [t.request.parents for t in some] == [("p0", "p1")] * 3, "a count per request"
