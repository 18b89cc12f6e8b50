"""Threshold search over the token tree (ttt.decoding.grid_search): on a tiny model trained in the test to a known
answer distribution, it returns exactly the grids above the threshold, the greedy one among them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augment.gridtext import grid_to_text, text_to_grid
from ttt.decoding.grid_search import START, GridGrammar, advance, search_grids
from ttt.prompts import end_ids, grid_prompt_ids, pad_id

GRIDS = [np.array([[1, 2], [3, 4]]), np.array([[1, 2], [3, 5]]), np.array([[1, 2], [3, 6]]), np.array([[7]])]
COPIES = [12, 6, 3, 1]  # the distribution the model learns: ~0.55 / 0.27 / 0.14 / 0.05 (measured 0.53 / 0.26 / 0.13 / 0.01)
THRESHOLDS = [0.1, 0.2, 0.5]  # above the ~0.07 of probability the model leaves to all other texts


@pytest.fixture(scope="module")
def trained(tokenizer):
    """A tiny model trained until its answers to one prompt follow COPIES."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from augment.tasks import Pair
    from ttt.models import RANDOM_PRESETS

    torch.manual_seed(3)
    shape = {k: v for k, v in RANDOM_PRESETS["tiny"].items() if k != "model_type"}
    model = LlamaForCausalLM(LlamaConfig(vocab_size=len(tokenizer), **shape)).train()
    pairs = [Pair(np.array([[1, 2]], dtype=np.uint8), np.array([[2, 1]], dtype=np.uint8))]
    prompt = grid_prompt_ids(tokenizer, pairs, np.array([[3, 4]], dtype=np.uint8))
    answers = [tokenizer.encode(grid_to_text(g), add_special_tokens=False) + end_ids(tokenizer) for g in GRIDS]
    rows = [prompt + a for a in answers]
    width = max(map(len, rows))
    ids = torch.tensor([r + [pad_id(tokenizer)] * (width - len(r)) for r in rows])
    targets = ids[:, 1:].clone()  # position t predicts token t+1: only answer tokens count
    targets[:, : len(prompt) - 1] = -100
    for i, r in enumerate(rows):
        targets[i, len(r) - 1 :] = -100
    weights = torch.tensor(COPIES, dtype=torch.float)[:, None] / sum(COPIES)  # one row per grid, weighted by its share
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(150):
        logits = model(input_ids=ids, logits_to_keep=slice(len(prompt) - 1, width - 1)).logits
        nll = torch.nn.functional.cross_entropy(logits.transpose(1, 2), targets[:, len(prompt) - 1 :], reduction="none")
        loss = (nll * weights).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        logp = model(input_ids=torch.tensor([prompt + a for a in answers[:3]])).logits.log_softmax(-1)
        short = model(input_ids=torch.tensor([prompt + answers[3]])).logits.log_softmax(-1)
    probs = []
    for k, a in enumerate(answers):
        lp = short[0] if k == 3 else logp[k]
        probs.append(float(np.exp(sum(float(lp[len(prompt) - 1 + t, tok]) for t, tok in enumerate(a)))))
    return model, prompt, probs


def test_the_model_learned_the_distribution(trained):
    _, _, probs = trained
    assert 1 - sum(probs) < min(THRESHOLDS), probs  # so every other grid is below every threshold tested
    assert probs[0] > probs[1] > probs[2] > probs[3] > 0.005


@pytest.mark.parametrize("threshold", THRESHOLDS)
def test_search_returns_exactly_the_grids_above_the_threshold(trained, tokenizer, threshold):
    model, prompt, probs = trained
    grammar = GridGrammar(tokenizer, end_ids(tokenizer))
    result = search_grids(model, tokenizer, grammar, prompt, pad_id(tokenizer), threshold, 16)
    found = {text_to_grid(g.text).tobytes() + bytes(text_to_grid(g.text).shape): g for g in result.grids}
    want = {GRIDS[k].astype(np.uint8).tobytes() + bytes(GRIDS[k].shape) for k, p in enumerate(probs) if p >= threshold}
    want.add(GRIDS[0].astype(np.uint8).tobytes() + bytes(GRIDS[0].shape))  # greedy, whatever its probability
    assert set(found) == want
    assert result.complete
    greedy = [g for g in result.grids if g.greedy]
    assert len(greedy) == 1 and np.array_equal(text_to_grid(greedy[0].text), GRIDS[0])
    for g in result.grids:
        k = next(k for k, x in enumerate(GRIDS) if x.shape == text_to_grid(g.text).shape and (x == text_to_grid(g.text)).all())
        assert np.exp(g.logprob) == pytest.approx(probs[k], rel=1e-3)
    assert [g.logprob for g in result.grids] == sorted((g.logprob for g in result.grids), reverse=True)


def test_candidate_and_row_caps_say_the_result_is_incomplete(trained, tokenizer):
    model, prompt, _ = trained
    grammar = GridGrammar(tokenizer, end_ids(tokenizer))
    capped = search_grids(model, tokenizer, grammar, prompt, pad_id(tokenizer), 0.1, 16, max_candidates=2)
    assert len(capped.grids) == 2 and not capped.complete
    timed = search_grids(model, tokenizer, grammar, prompt, pad_id(tokenizer), 0.1, 16, max_time=0.0)
    assert not timed.complete


@pytest.mark.parametrize(
    "text, ok, complete",
    [
        ("2x3\n012\n345", True, True),
        ("2x3\n012\n34", True, False),
        ("30x1\n", True, False),
        ("31x1", False, False),  # sides are 1..30
        ("0x1", False, False),
        ("2x3\n0123", False, False),  # a row wider than the header
        ("2x3\n01\n", False, False),
        ("2x3\n012\n345\n", False, False),  # nothing after the last cell but the end of the answer
        ("x3", False, False),
        ("2y3", False, False),
    ],
)
def test_grammar(text, ok, complete):
    state = START
    for ch in text:
        state = advance(state, ch) if state is not None else None
    assert (state is not None) is ok
    assert (state is not None and state[0] == 3) is complete


def test_grammar_allows_multi_digit_tokens_whole():
    """A tokenizer with tokens for digit groups ('12', '345') and newline-digit pairs: a token is allowed
    only when every character of it continues the grid."""

    class Groups:
        vocab = ["1", "2", "3", "4", "5", "12", "345", "x", "\n", "\n3", "<end>"]

        def __len__(self):
            return len(self.vocab)

        def decode(self, ids):
            return "".join(self.vocab[i] for i in ids)

    tok = Groups()
    grammar = GridGrammar(tok, [10])
    by_text = {tok.vocab[t] for t, _ in grammar.allowed(START, 0)}
    assert by_text == {"1", "2", "3", "4", "5", "12"}  # '345' would be a side of 345
    state = START
    for ch in "2x3\n":
        state = advance(state, ch)
    assert {tok.vocab[t] for t, _ in grammar.allowed(state, 0)} == {"1", "2", "3", "4", "5", "12", "345"}
    for ch in "345":
        state = advance(state, ch)
    assert {tok.vocab[t] for t, _ in grammar.allowed(state, 0)} == {"\n", "\n3"}
    for ch in "\n123":
        state = advance(state, ch)
    assert [tok.vocab[t] for t, _ in grammar.allowed(state, 0)] == ["<end>"]
