"""Every grid the model gives at least a probability `min_prob`: a search over its token tree.

Sampling misses answers that are likely but not the most likely, and greedy decoding collapses to
one. The ARChitects and NVARC decode ARC grids by a depth-first search over the token tree that
keeps every path whose probability stays above a threshold. A path's probability only falls as it
grows, so a prefix below the threshold has no descendant above it and is cut. This module runs the
same search breadth-wise: every live prefix advances one token per forward, all of them in one batch
over one KV cache whose rows follow their parents (`reorder_cache`). The result is the same set of
grids. Prefixes of one length are disjoint events, so at most 1/min_prob are live: a step costs one
forward of at most that many rows, and a grid of T tokens costs T of them.

Decoding is restricted to what a grid can be (`GridGrammar`: a 'HxW' header, H rows of exactly W
digits, then the end of the answer), so no probability is spent on text that cannot parse.
Probabilities are the model's own (softmax over the whole vocabulary, temperature 1, not renormalized
over the allowed tokens), so "above the threshold" means what it says. The greedy path (the most
likely allowed token at each step) is always kept, so the greedy grid is among the results even
when it falls below the threshold.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any, Sequence

import torch

from augment.tasks import MAX_SIDE
from ttt.decoding.decode import forward_step, prefill
from ttt.decoding.decode_speed import small_rows_linears

# A grammar state: (phase, rows, cols, row, col, digits so far of the number being read)
# phase: 0 reading H, 1 reading W, 2 body, 3 complete (only the end of answer may follow)
State = tuple[int, int, int, int, int, str]
START: State = (0, 0, 0, 0, 0, "")


def _number_ok(digits: str) -> bool:
    """A prefix of a side length 1..MAX_SIDE, without a leading zero."""
    if not digits or digits[0] == "0":
        return False
    return int(digits) <= MAX_SIDE


def advance(state: State, ch: str) -> State | None:
    """The state after character `ch`, or None when `ch` cannot continue a grid's text."""
    phase, h, w, row, col, num = state
    if phase in (0, 1):
        if ch.isdigit() and ch.isascii():
            return (phase, h, w, row, col, num + ch) if _number_ok(num + ch) else None
        if num and ((phase == 0 and ch == "x") or (phase == 1 and ch == "\n")):
            return (1, int(num), 0, 0, 0, "") if phase == 0 else (2, h, int(num), 0, 0, "")
        return None
    if phase == 2:
        if col < w:
            if not (ch.isdigit() and ch.isascii()):
                return None
            col += 1
            return (3, h, w, row, col, "") if (row == h - 1 and col == w) else (2, h, w, row, col, "")
        return (2, h, w, row + 1, 0, "") if ch == "\n" else None
    return None


class GridGrammar:
    """Which tokens may come next in a grid's text, from the tokenizer's vocabulary: a token is allowed
    when each of its characters continues the grid (multi-digit tokens included), and the end-of-answer
    tokens only once the grid is complete."""

    def __init__(self, tokenizer: Any, end_ids: Sequence[int]):
        self.end_ids = list(end_ids)
        self.pieces: list[tuple[int, str]] = []
        for tok in range(len(tokenizer)):
            text = tokenizer.decode([tok])
            if text and all(c in "0123456789x\n" for c in text) and tok not in self.end_ids:
                self.pieces.append((tok, text))
        self.vocab = sorted({t for t, _ in self.pieces} | set(self.end_ids))  # every token the search may write
        self.column = {t: i for i, t in enumerate(self.vocab)}
        self.widest = max((len(text) for _, text in self.pieces), default=1)  # most characters one token writes
        self._memo: dict[tuple[State, int], list[tuple[int, State]]] = {}

    def chars_left(self, state: State) -> int:
        """Characters the grid still needs once its header is read (0 before: not known yet)."""
        phase, h, w, row, col, _ = state
        return (h - row - 1) * (w + 1) + (w - col) if phase == 2 else 0

    def allowed(self, state: State, ended: int) -> list[tuple[int, State]]:
        """(token, next state) pairs; `ended` counts end tokens already written after a complete grid."""
        if state[0] == 3:
            return [(self.end_ids[ended], state)] if ended < len(self.end_ids) else []
        hit = self._memo.get((state, ended))
        if hit is not None:
            return hit
        out = self._memo[(state, ended)] = []
        for tok, text in self.pieces:
            s: State | None = state
            for ch in text:
                s = advance(s, ch)
                if s is None:
                    break
            if s is not None:
                out.append((tok, s))
        return out


@dataclass(frozen=True)
class FoundGrid:
    text: str  # the grid's text (no end-of-answer)
    logprob: float  # log-probability of text + end of answer under the model
    greedy: bool  # the greedy path's grid


@dataclass(frozen=True)
class SearchResult:
    grids: list[FoundGrid]  # most likely first
    forwards: int
    complete: bool  # False when cut by the time budget or the row cap (then not every grid above the threshold may be here)


@dataclass
class _Path:
    ids: list[int]
    state: State
    ended: int
    logprob: float
    greedy: bool


@torch.no_grad()
def search_grids(
    model: Any,
    tokenizer: Any,
    grammar: GridGrammar,
    prompt: Sequence[int],
    pad: int,
    min_prob: float,
    max_tokens: int,
    max_rows: int = 64,
    max_candidates: int = 16,
    max_time: float | None = None,
    prefill_tokens: int | None = None,
) -> SearchResult:
    """Every grid of probability >= `min_prob` after `prompt` (and the greedy one), most likely first,
    at most `max_candidates`. `max_rows` caps live prefixes (the most likely kept; `complete` False if
    any were cut); `max_tokens` caps a grid's tokens, end included; `prefill_tokens`: the prompt's
    forward in pieces of that many tokens (`ttt.decoding.decode.prefill`)."""
    floor = math.log(min_prob)
    deadline = None if max_time is None else time.monotonic() + max_time
    was_training = model.training
    model.eval()
    try:
        with small_rows_linears(model):  # a step decodes <= max_rows rows: few-row matmuls (ttt.decoding.decode_speed)
            logits, mask, cache = prefill(model, [list(prompt)], pad, prefill_tokens)
            vocab = torch.tensor(grammar.vocab, device=logits.device)
            paths = [_Path([], START, 0, 0.0, True)]
            found: list[FoundGrid] = []
            forwards, complete = 1, True
            positions = mask.sum(-1)
            for _ in range(max_tokens):
                # only the grammar's tokens are ever looked at: move those columns, not the vocabulary
                logprobs = logits.log_softmax(-1)[:, vocab].tolist()
                children: list[tuple[int, _Path]] = []  # (parent row, child)
                for r, path in enumerate(paths):
                    options = grammar.allowed(path.state, path.ended)
                    if not options:
                        continue
                    lp = logprobs[r]
                    col = grammar.column
                    best = max(options, key=lambda o: lp[col[o[0]]])[0] if path.greedy else None
                    room = (max_tokens - len(path.ids) - 1 - len(grammar.end_ids)) * grammar.widest  # characters that still fit
                    for tok, nxt in options:
                        total = path.logprob + lp[col[tok]]
                        if grammar.chars_left(nxt) > room:
                            continue  # a shape that cannot be written within max_tokens
                        if total >= floor or tok == best:
                            ended = path.ended + (1 if nxt[0] == 3 and path.state[0] == 3 else 0)
                            children.append((r, _Path(path.ids + [tok], nxt, ended, total, tok == best)))
                live: list[tuple[int, _Path]] = []
                for r, child in children:
                    if child.ended == len(grammar.end_ids) and child.state[0] == 3:
                        found.append(FoundGrid(tokenizer.decode(child.ids[: len(child.ids) - len(grammar.end_ids)]), child.logprob, child.greedy))
                    else:
                        live.append((r, child))
                if len(live) > max_rows:
                    complete = False
                    live.sort(key=lambda rc: (not rc[1].greedy, -rc[1].logprob))
                    live = live[:max_rows]
                if not live or (deadline is not None and time.monotonic() >= deadline):
                    complete = complete and not live
                    break
                parents = torch.tensor([r for r, _ in live], device=logits.device)
                cache.reorder_cache(parents)
                mask = torch.cat([mask[parents], mask.new_ones((len(live), 1))], dim=1)
                positions = positions[parents]
                paths = [c for _, c in live]
                nxt = torch.tensor([[c.ids[-1]] for c in paths], device=logits.device)
                logits, cache = forward_step(model, nxt, mask, positions[:, None], cache)
                positions = positions + 1
                forwards += 1
            else:
                complete = False  # ran out of max_tokens with prefixes still live
    finally:
        model.train(was_training)
    found.sort(key=lambda g: -g.logprob)
    return SearchResult(found[:max_candidates], forwards, complete and len(found) <= max_candidates)
