"""Prompt formats: loss only on the answer, generation prompt = training prefix, honest shortening."""

from __future__ import annotations

import numpy as np
import pytest

from augment.gridtext import grid_to_text
from augment.loo import build_samples
from augment.sets import get_set
from ttt import prompts
from ttt.prompts import IGNORE


def unmasked(enc) -> list[int]:
    return [t for t, lab in zip(enc.input_ids, enc.labels) if lab != IGNORE]


def test_labels_cover_exactly_the_answer_and_end_token(tokenizer, flip_task):
    target = flip_task.train[2].output
    enc = prompts.encode_sample(tokenizer, flip_task.train[:2], flip_task.train[2].input, grid_to_text(target))
    assert tokenizer.decode(unmasked(enc)) == grid_to_text(target) + "<|im_end|>"
    # labels equal the input ids where they are kept, and the kept span is one contiguous tail
    first = next(i for i, lab in enumerate(enc.labels) if lab != IGNORE)
    assert enc.labels[first:] == enc.input_ids[first:]
    assert all(lab == IGNORE for lab in enc.labels[:first])
    assert not enc.shortened and enc.n_context == 2


def test_generation_prompt_is_the_training_prefix(tokenizer, flip_task):
    ctx, query = flip_task.train[:2], flip_task.train[2].input
    prompt = prompts.grid_prompt_ids(tokenizer, ctx, query)
    enc = prompts.encode_sample(tokenizer, ctx, query, grid_to_text(flip_task.train[2].output))
    assert enc.input_ids[: len(prompt)] == prompt
    assert tokenizer.decode(prompt).endswith("<|im_start|>assistant\n")
    text = tokenizer.decode(prompt)
    assert prompts.GRID_INSTRUCTION in text and "SmolLM" not in text  # our short system prompt replaces the default
    assert grid_to_text(query) in text


def test_program_target(tokenizer, flip_task):
    code = "def transform(grid):\n    return grid[::-1]"
    answer = prompts.program_answer(code)
    enc = prompts.encode_sample(tokenizer, flip_task.train, None, answer, kind="program", test_inputs=flip_task.test_inputs)
    assert tokenizer.decode(unmasked(enc)) == "```python\n" + code + "\n```<|im_end|>"
    prompt = prompts.program_prompt_ids(tokenizer, flip_task.train, flip_task.test_inputs)
    assert enc.input_ids[: len(prompt)] == prompt
    assert "transform(grid: list[list[int]]) -> list[list[int]]" in tokenizer.decode(prompt)


def test_long_samples_lose_pairs_from_the_start_then_are_dropped(tokenizer, flip_task):
    ctx, query, answer = flip_task.train[:2], flip_task.train[2].input, grid_to_text(flip_task.train[2].output)
    full = prompts.encode_sample(tokenizer, ctx, query, answer)
    one = prompts.encode_sample(tokenizer, ctx[1:], query, answer)
    short = prompts.encode_sample(tokenizer, ctx, query, answer, max_seq_len=len(full.input_ids) - 1)
    assert short.shortened and short.n_context == 1 and short.input_ids == one.input_ids  # kept the last pair
    assert prompts.encode_sample(tokenizer, ctx, query, answer, max_seq_len=len(one.input_ids) - 1) is None
    exact = prompts.encode_sample(tokenizer, ctx, query, answer, max_seq_len=len(full.input_ids))
    assert not exact.shortened


def test_encode_samples_counts(tokenizer, flip_task):
    samples, _ = build_samples(flip_task, get_set("geometric"), 6, np.random.default_rng(0))
    lengths = sorted(len(e.input_ids) for e in prompts.encode_samples(tokenizer, samples, 4096)[0])
    encoded, counts = prompts.encode_samples(tokenizer, samples, lengths[0] - 1)  # every sample must lose a pair
    assert counts.to_dict() == {"kept": len(samples), "shortened": len(samples), "dropped": 0}
    assert all(e.n_context == 1 and len(e.input_ids) <= lengths[0] - 1 for e in encoded)
    _, none_fit = prompts.encode_samples(tokenizer, samples, 20)
    assert none_fit.to_dict() == {"kept": 0, "shortened": 0, "dropped": len(samples)}


def test_grid_scoring_item_matches_training_encoding(tokenizer, flip_task):
    ctx, query, target = flip_task.train[:2], flip_task.train[2].input, flip_task.train[2].output
    p, a = prompts.grid_scoring_item(tokenizer, ctx, query, target)
    assert p + a == prompts.encode_sample(tokenizer, ctx, query, grid_to_text(target)).input_ids


def test_digits_are_one_token_each(tokenizer):
    # Why the format is compact: a cell costs one token, a row one more for the newline.
    grid = np.arange(12, dtype=np.uint8).reshape(3, 4) % 10
    # "3", "x", "4", "\n" + 12 digits + 2 newlines between rows
    assert len(tokenizer.encode(grid_to_text(grid), add_special_tokens=False)) == 4 + 12 + 2


# --- one text, split at the answer: across tokenizer families (tests/ttt/conftest.py `family`) ---------


def full_text_ids(tok, kind, context, query, answer_text, test_inputs=()) -> tuple[list[int], int]:
    """What the tokenizer makes of prompt + answer + end as ONE text, and the character where the answer starts."""
    prompt = prompts.prompt_text(tok, kind, prompts.task_text(context, query if kind == "grid" else None, test_inputs))
    end_text, end_extra = prompts.answer_end(tok)
    ids = tok.encode(prompt + answer_text + end_text, add_special_tokens=not tok.chat_template)
    if end_extra and ids[-len(end_extra) :] != end_extra:
        ids += end_extra
    return ids, len(prompt)


@pytest.mark.parametrize("kind", ["grid", "program"])
def test_labels_are_the_full_texts_tokens_at_the_answer(family, flip_task, kind):
    name, tok = family
    ctx, query = flip_task.train[:2], flip_task.train[2].input
    answer = grid_to_text(flip_task.train[2].output) if kind == "grid" else prompts.program_answer("def transform(grid):\n    return grid[::-1]")
    tests = flip_task.test_inputs if kind == "program" else ()
    enc = prompts.encode_sample(tok, ctx if kind == "grid" else flip_task.train, query if kind == "grid" else None, answer, kind,
                                test_inputs=tests)
    full, _ = full_text_ids(tok, kind, ctx if kind == "grid" else flip_task.train, query, answer, tests)
    first = next(i for i, lab in enumerate(enc.labels) if lab != IGNORE)
    assert enc.input_ids == full, name
    assert enc.labels[first:] == full[first:] and set(enc.labels[:first]) == {IGNORE}
    assert tok.decode(enc.labels[first:], skip_special_tokens=True) == answer  # starts exactly at the answer
    generation = prompts.grid_prompt_ids(tok, ctx, query) if kind == "grid" else prompts.program_prompt_ids(tok, flip_task.train, tests)
    assert enc.input_ids[:first] == generation, "what generation gets is the training prefix"
    assert enc.labels[-len(prompts.end_ids(tok)) :] == prompts.end_ids(tok), "the answer ends with the end-of-turn / EOS tokens"


@pytest.mark.parametrize("family", ["sentencepiece-plain", "sentencepiece-template"], indirect=True)
def test_the_answer_tokenized_apart_differs_for_sentencepiece(family):
    """Why the answer is not tokenized on its own: a Metaspace tokenizer marks the text's first word
    ('▁'), which never occurs after the prompt's newline in the full text."""
    _, tok = family
    answer = "3x3\n012\n345\n678"
    alone = tok.encode(answer, add_special_tokens=False)
    assert tok.convert_ids_to_tokens(alone)[0] == "▁"
    _, answer_ids = prompts.split_ids(tok, "out\n", answer)
    assert answer_ids[: len(alone) - 1] == alone[1:] and answer_ids[0] != alone[0]


def test_scoring_item_is_the_training_split(family, flip_task):
    _, tok = family
    ctx, query, target = flip_task.train[:2], flip_task.train[2].input, flip_task.train[2].output
    p, a = prompts.grid_scoring_item(tok, ctx, query, target)
    enc = prompts.encode_sample(tok, ctx, query, grid_to_text(target))
    assert p + a == enc.input_ids and [IGNORE] * len(p) + a == enc.labels


# --- inference prompts follow the training length rule ----------------------------------------------


@pytest.mark.parametrize(
    "budget_from, reserve, n_context, shortened, fits",
    [
        ("full", 10, 2, False, True),  # fits as is
        ("full", 11, 1, True, True),  # one token too many: the first pair goes
        ("one", 10, 1, True, True),  # exactly the one-pair prompt + reserve
        ("one", 11, 1, True, False),  # not even one pair fits: kept, marked
    ],
)
def test_generation_prompts_are_shortened_like_training(tokenizer, flip_task, budget_from, reserve, n_context, shortened, fits):
    ctx, query = flip_task.train[:2], flip_task.train[2].input
    full = prompts.grid_prompt_ids(tokenizer, ctx, query)
    one = prompts.grid_prompt_ids(tokenizer, ctx[1:], query)
    max_len = (len(full) if budget_from == "full" else len(one)) + 10
    p = prompts.fit_prompt(tokenizer, "grid", ctx, query, (), reserve, max_len)
    assert (p.n_context, p.shortened, p.fits) == (n_context, shortened, fits)
    assert p.ids == (full if n_context == 2 else one)


def test_one_rule_for_training_and_generation(tokenizer, flip_task):
    """A training sample shortened to fit and a generation prompt with the answer's length reserved
    keep the same pairs, so the model is asked as it was taught."""
    ctx, query, answer = flip_task.train[:2], flip_task.train[2].input, grid_to_text(flip_task.train[2].output)
    full = prompts.encode_sample(tokenizer, ctx, query, answer)
    n_answer = sum(lab != IGNORE for lab in full.labels)
    for max_len in (len(full.input_ids), len(full.input_ids) - 1):
        enc = prompts.encode_sample(tokenizer, ctx, query, answer, max_seq_len=max_len)
        gen = prompts.fit_prompt(tokenizer, "grid", ctx, query, (), n_answer, max_len)
        assert (gen.n_context, gen.shortened) == (enc.n_context, enc.shortened)
        assert enc.input_ids[: len(gen.ids)] == gen.ids
        split = prompts.grid_scoring_split(tokenizer, ctx, query, flip_task.train[2].output, max_len)
        assert split.prompt_ids == gen.ids and split.shortened == enc.shortened
