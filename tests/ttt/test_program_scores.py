"""Programs scored under their view's program prompt: one shared prompt per view gives the same numbers
as scoring every program as a whole row, and they are the log-probability of the program's answer."""

from __future__ import annotations

import pytest

from ttt.nll import target_nll
from ttt.program_scores import ProgramPrompt, program_logprobs
from ttt.prompts import fit_split, program_answer

SOURCES = ("def transform(grid):\n    return grid\n", "def transform(grid):\n    return grid[::-1]\n", "def transform(g):\n    return [r[::-1] for r in g]\n")


def test_shared_prompt_scores_equal_whole_rows(tiny, tokenizer, flip_task):
    prompts = [ProgramPrompt(flip_task.train, flip_task.test_inputs, SOURCES), ProgramPrompt(flip_task.train[:2], (), SOURCES[:1])]
    got = program_logprobs(tiny, tokenizer, prompts)
    assert [len(x) for x in got] == [3, 1]
    items = [fit_split(tokenizer, "program", flip_task.train, None, program_answer(src), None, flip_task.test_inputs) for src in SOURCES]
    rows = target_nll(tiny, tokenizer, [(s.prompt_ids, s.answer_ids) for s in items], reduction="sum", share_prompts=False)
    assert got[0] == pytest.approx([-x for x in rows], rel=1e-4, abs=1e-3)
    assert all(lp < 0 for lp in got[0] + got[1])
    assert program_logprobs(tiny, tokenizer, [ProgramPrompt(flip_task.train, (), ())]) == [[]]


def test_a_long_prompt_loses_pairs_from_the_start(tiny, tokenizer, flip_task):
    full = fit_split(tokenizer, "program", flip_task.train, None, program_answer(SOURCES[1]), None, flip_task.test_inputs)
    limit = len(full.prompt_ids) + len(full.answer_ids) - 1
    (short,) = program_logprobs(tiny, tokenizer, [ProgramPrompt(flip_task.train, flip_task.test_inputs, SOURCES[1:2])], max_seq_len=limit)
    fit = fit_split(tokenizer, "program", flip_task.train[1:], None, program_answer(SOURCES[1]), None, flip_task.test_inputs)
    (row,) = target_nll(tiny, tokenizer, [(fit.prompt_ids, fit.answer_ids)], reduction="sum")
    assert short == pytest.approx([-row], rel=1e-4, abs=1e-3)
