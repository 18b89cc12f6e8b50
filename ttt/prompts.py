"""THE prompt formats: training, generation and scoring all build their token ids here.

A task is shown as demonstration pairs, each an `in` line + grid text and an `out` line + grid text
(grids in `augment.gridtext` format), then the query as `in` + grid. Two kinds of answer:
  - "grid": the query's output grid text (transduction);
  - "program": a ```python block defining `transform(grid)` (induction); the prompt then shows the
    pairs and, optionally, the test inputs. A revision prompt (test-time search) is a program prompt
    that also shows earlier programs and how each did on every pair, without the test inputs
    (`fit_revision_prompt`; it drops the pairs the programs get right first).
With a chat template the instruction is the system message (replacing any long default system
prompt), the task is the user message and the answer the assistant message; the answer ends with the
template's end-of-turn text (e.g. `<|im_end|>`). Without a chat template the prompt is plain text
(instruction, task, then an `out`/`program` line) and the answer ends with the EOS token.

Boundary: a training sample or a scoring item is tokenized as ONE text, prompt + answer + end, and
split where the answer's first character starts (offset mapping, so a fast tokenizer is required).
Tokenizing the answer apart would not give the tokens the model generates after the prompt: a
SentencePiece-style tokenizer prepends a word-start marker ('▁') to a text's first word, and BPE
merges can cross the boundary. The prompt part equals the generation prompt whenever the tokenizer
cannot merge across the boundary (the templates and the plain format end the prompt with a newline;
every family tested in tests/ttt/test_prompts.py splits there). Loss falls only on the answer part
(answer + end tokens): the end-of-turn token teaches the model to stop.

Length (one rule for training, generation and scoring): when prompt + answer is longer than
`max_seq_len`, context pairs are dropped from the START (the pairs farthest from the query) until it
fits, keeping at least one. At generation the answer's length is its token cap (`max_new_tokens`).
A training sample that does not fit even with one pair is dropped; a generation prompt or a scoring
item is kept with one pair (inference must still answer) and marked as not fitting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Sequence

import numpy as np

from augment.gridtext import grid_to_text
from augment.loo import Sample
from augment.tasks import Pair

Kind = Literal["grid", "program"]
IGNORE = -100  # label value that cross-entropy skips

GRID_INSTRUCTION = "Each input grid maps to its output grid by one rule. Give the output grid of the last input."
PROGRAM_INSTRUCTION = (
    "Each input grid maps to its output grid by one rule. Write a Python function "
    "`transform(grid: list[list[int]]) -> list[list[int]]` that applies it (numpy and `from solve.dsl import *` allowed). "
    "Answer with one ```python block."
)
_SENTINEL = "\u2063ARCTTT\u2063"  # stands in for the answer when locating the end-of-turn text


@dataclass(frozen=True)
class Encoded:
    """Token ids and labels of one training sample (labels are IGNORE outside the answer)."""

    input_ids: list[int]
    labels: list[int]
    n_context: int  # context pairs kept
    shortened: bool  # True when pairs were dropped to fit max_seq_len


@dataclass(frozen=True)
class Prompt:
    """A generation prompt and how much of the task it shows."""

    ids: list[int]
    n_context: int  # context pairs shown
    shortened: bool  # pairs were dropped so that prompt + answer cap fit max_seq_len
    fits: bool  # False: even one pair leaves no room for the answer (kept anyway: inference must answer)


@dataclass(frozen=True)
class Split:
    """Prompt + answer tokenized as one text, split where the answer starts (see the module doc)."""

    prompt_ids: list[int]
    answer_ids: list[int]  # the answer's tokens, then the end-of-turn / EOS tokens
    n_context: int
    shortened: bool
    fits: bool


@dataclass
class EncodeCounts:
    kept: int = 0
    shortened: int = 0  # kept, but with fewer context pairs
    dropped: int = 0  # did not fit even with one context pair

    def to_dict(self) -> dict[str, int]:
        return {"kept": self.kept, "shortened": self.shortened, "dropped": self.dropped}


def task_text(context: Sequence[Pair], query: np.ndarray | None, test_inputs: Sequence[np.ndarray] = ()) -> str:
    parts = [f"in\n{grid_to_text(p.input)}\nout\n{grid_to_text(p.output)}" for p in context]
    parts += [f"test in\n{grid_to_text(g)}" for g in test_inputs]
    if query is not None:
        parts.append(f"in\n{grid_to_text(query)}")
    return "\n".join(parts)


def program_answer(code: str) -> str:
    """The answer text for a program target (as the model is asked to write it)."""
    return f"```python\n{code.strip()}\n```"


def _has_template(tokenizer: Any) -> bool:
    return bool(getattr(tokenizer, "chat_template", None))


def _messages(kind: Kind, user: str) -> list[dict[str, str]]:
    system = GRID_INSTRUCTION if kind == "grid" else PROGRAM_INSTRUCTION
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def prompt_text(tokenizer: Any, kind: Kind, user: str) -> str:
    """The prompt as text: the chat template with its generation prompt, or the plain format."""
    if _has_template(tokenizer):
        return tokenizer.apply_chat_template(_messages(kind, user), tokenize=False, add_generation_prompt=True)
    system = GRID_INSTRUCTION if kind == "grid" else PROGRAM_INSTRUCTION
    return f"{system}\n\n{user}\n{'out' if kind == 'grid' else 'program'}\n"


def _add_special(tokenizer: Any) -> bool:
    # A template writes its own BOS if any; plain text gets the tokenizer's usual specials (e.g. BOS).
    return not _has_template(tokenizer)


def _encode(tokenizer: Any, text: str) -> list[int]:
    return tokenizer.encode(text, add_special_tokens=_add_special(tokenizer))


def pad_id(tokenizer: Any) -> int:
    """The id that pads batches: the tokenizer's pad token, else its end-of-sequence token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def answer_end(tokenizer: Any) -> tuple[str, list[int]]:
    """How an answer closes: (text appended to it, ids appended after the text's tokens). The
    template's end-of-turn marker as text (e.g. '<|im_end|>'), else the EOS id."""
    if _has_template(tokenizer):
        msgs = _messages("grid", "x") + [{"role": "assistant", "content": _SENTINEL}]
        rendered = tokenizer.apply_chat_template(msgs, tokenize=False)
        after = rendered.split(_SENTINEL, 1)[1].strip() if _SENTINEL in rendered else ""
        if after:
            return after, []
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has neither a chat template end-of-turn marker nor an EOS token")
    return "", [tokenizer.eos_token_id]


def end_ids(tokenizer: Any) -> list[int]:
    """Tokens that close an answer: the template's end-of-turn marker (e.g. <|im_end|>), else EOS."""
    text, ids = answer_end(tokenizer)
    return (tokenizer.encode(text, add_special_tokens=False) if text else []) + ids


def split_ids(tokenizer: Any, prompt: str, answer: str) -> tuple[list[int], list[int]]:
    """(prompt_ids, answer_ids) of `prompt + answer + end` tokenized as one text and cut where the
    answer starts. A token that straddles the cut belongs to the answer: the model must produce it."""
    if not getattr(tokenizer, "is_fast", False):
        raise TypeError("ttt.prompts needs a fast tokenizer (offset mapping) to split prompt and answer")
    end_text, end_extra = answer_end(tokenizer)
    enc = tokenizer(prompt + answer + end_text, add_special_tokens=_add_special(tokenizer), return_offsets_mapping=True)
    ids, offsets = list(enc["input_ids"]), enc["offset_mapping"]
    cut = len(prompt)
    # Specials added by a post-processor have empty (0, 0) spans and never end past the cut.
    k = next((i for i, (_, stop) in enumerate(offsets) if stop > cut), len(ids))
    answer_ids = ids[k:]
    if end_extra and answer_ids[-len(end_extra) :] != end_extra:  # a post-processor may already add EOS
        answer_ids += end_extra
    return ids[:k], answer_ids


def _shortenings(context: Sequence[Pair]) -> list[tuple[int, Sequence[Pair]]]:
    """(pairs dropped, pairs kept) to try in order: all pairs first, then dropping from the start
    (the pairs farthest from the query), down to one pair (or none when there is none)."""
    return [(start, context[start:]) for start in range(max(1, len(context)))]


def _user(kind: Kind, context: Sequence[Pair], query: np.ndarray | None, test_inputs: Sequence[np.ndarray]) -> str:
    if kind == "grid" and query is None:
        raise ValueError("a grid sample needs a query input")
    return task_text(context, query if kind == "grid" else None, test_inputs)


def fit_prompt(
    tokenizer: Any,
    kind: Kind,
    context: Sequence[Pair],
    query: np.ndarray | None = None,
    test_inputs: Sequence[np.ndarray] = (),
    reserve: int = 0,
    max_seq_len: int | None = None,
) -> Prompt:
    """The generation prompt, shortened by the training rule so that it + `reserve` answer tokens fit
    `max_seq_len` (None: no limit). kind="program" shows `context` as the pairs to map and `test_inputs`."""
    for start, kept in _shortenings(context):
        ids = _encode(tokenizer, prompt_text(tokenizer, kind, _user(kind, kept, query, test_inputs)))
        if max_seq_len is None or len(ids) + reserve <= max_seq_len:
            return Prompt(ids, len(kept), start > 0, True)
    return Prompt(ids, len(kept), start > 0, False)


def fit_split(
    tokenizer: Any,
    kind: Kind,
    context: Sequence[Pair],
    query: np.ndarray | None,
    answer_text: str,
    max_seq_len: int | None = None,
    test_inputs: Sequence[np.ndarray] = (),
) -> Split:
    """Prompt and answer ids under the training rule: pairs dropped from the start until the whole
    text fits `max_seq_len` (None: no limit); with one pair left it is returned with fits=False."""
    for start, kept in _shortenings(context):
        p, a = split_ids(tokenizer, prompt_text(tokenizer, kind, _user(kind, kept, query, test_inputs)), answer_text)
        if max_seq_len is None or len(p) + len(a) <= max_seq_len:
            return Split(p, a, len(kept), start > 0, True)
    return Split(p, a, len(kept), start > 0, False)


def grid_prompt_ids(tokenizer: Any, context: Sequence[Pair], query: np.ndarray) -> list[int]:
    """Prompt for generating the query's output grid (ends with the generation prompt), unshortened."""
    return fit_prompt(tokenizer, "grid", context, query).ids


def program_prompt_ids(tokenizer: Any, pairs: Sequence[Pair], test_inputs: Sequence[np.ndarray] = ()) -> list[int]:
    """Prompt for writing a `transform` program from the train pairs (and, optionally, the test inputs), unshortened."""
    return fit_prompt(tokenizer, "program", pairs, None, test_inputs).ids


def grid_scoring_item(
    tokenizer: Any, context: Sequence[Pair], query: np.ndarray, target: np.ndarray, max_seq_len: int | None = None
) -> tuple[list[int], list[int]]:
    """(prompt_ids, answer_ids) for `ttt.nll.target_nll`: how likely is `target` as the query's output.
    Exactly the ids and labels a training sample of the same pairs gets (see `grid_scoring_split`)."""
    s = grid_scoring_split(tokenizer, context, query, target, max_seq_len)
    return s.prompt_ids, s.answer_ids


def grid_scoring_split(
    tokenizer: Any, context: Sequence[Pair], query: np.ndarray, target: np.ndarray, max_seq_len: int | None = None
) -> Split:
    """`grid_scoring_item` with how its context was shortened (a too-long item keeps one pair)."""
    return fit_split(tokenizer, "grid", context, query, grid_to_text(target), max_seq_len)


def encode_sample(
    tokenizer: Any,
    context: Sequence[Pair],
    query: np.ndarray | None,
    answer_text: str,
    kind: Kind = "grid",
    max_seq_len: int = 2048,
    test_inputs: Sequence[np.ndarray] = (),
) -> Encoded | None:
    """Training ids + labels (loss on the answer only); None when even one context pair does not fit.

    kind="grid": `answer_text` is the grid text of the query's output. kind="program": `query` is
    None, `answer_text` is `program_answer(code)`, `context` are the pairs the program must map.
    """
    s = fit_split(tokenizer, kind, context, query, answer_text, max_seq_len, test_inputs)
    if not s.fits:
        return None
    return Encoded(s.prompt_ids + s.answer_ids, [IGNORE] * len(s.prompt_ids) + s.answer_ids, s.n_context, s.shortened)


def encode_samples(tokenizer: Any, samples: Sequence[Sample], max_seq_len: int) -> tuple[list[Encoded], EncodeCounts]:
    """Grid training samples (leave-one-out), with counts of kept / shortened / dropped."""
    counts, out = EncodeCounts(), []
    for s in samples:
        enc = encode_sample(tokenizer, s.context, s.query, grid_to_text(s.target), "grid", max_seq_len)
        if enc is None:
            counts.dropped += 1
            continue
        counts.kept += 1
        counts.shortened += enc.shortened
        out.append(enc)
    return out, counts


# --- revision prompts (test-time search, solve.pipeline.search) -------------------------------------------

REVISE_NOTE = "The program above is wrong on some pairs. Write a corrected program."
CROSSOVER_NOTE = "Each program above is right on some pairs. Write one program that is right on every pair."
RIGHT_CELL = "."  # a cell the program got right, in the grid a wrong program is shown with


@dataclass(frozen=True)
class Attempted:
    """A program shown in a revision prompt with what it returned on each demonstration pair (same order):
    a grid, or None with the error class in `errors`."""

    source: str
    outputs: tuple[np.ndarray | None, ...]
    errors: tuple[str | None, ...]


def outcome_text(output: np.ndarray | None, error: str | None, expected: np.ndarray) -> str:
    """How a program did on one pair: 'right', its error, or what it returned. The expected grid is the
    pair's own `out` above, so it is not repeated: a grid of the right shape is shown with the cells it got
    right as RIGHT_CELL (where it differs, and what it wrote there); one of another shape is shown whole."""
    if output is None:
        return f"error {error or 'no output'}"
    if np.array_equal(output, expected):
        return "right"
    if output.shape != expected.shape:
        h, w = expected.shape
        return f"wrong (shape {output.shape[0]}x{output.shape[1]}, expected {h}x{w})\ngot\n{grid_to_text(output)}"
    rows = ("".join(RIGHT_CELL if ok else str(int(v)) for v, ok in zip(row, same)) for row, same in zip(output, output == expected))
    differ = int(np.sum(output != expected))
    return f"wrong ({differ} of {expected.size} cells differ)\ngot, {RIGHT_CELL} where right\n" + "\n".join(
        [f"{expected.shape[0]}x{expected.shape[1]}", *rows]
    )


def _right(a: Attempted, i: int, pair: Pair) -> bool:
    return a.outputs[i] is not None and np.array_equal(a.outputs[i], pair.output)


def revision_text(context: Sequence[Pair], attempts: Sequence[Attempted], shown: Sequence[int] | None = None) -> str:
    """The user message of a revision prompt: the pairs (`shown`: indices into `context`, in order; all by
    default) as a program prompt shows them, without test inputs, then each program with its outcome on
    every shown pair (numbered from 1 as shown), then what to write: a revision of one program, or with
    two a program that joins what each gets right."""
    shown = list(range(len(context))) if shown is None else list(shown)
    parts = [task_text([context[i] for i in shown], None)]
    for k, a in enumerate(attempts):
        label = "program" if len(attempts) == 1 else f"program {chr(ord('A') + k)}"
        parts.append(f"{label}\n{program_answer(a.source)}")
        for n, i in enumerate(shown):
            parts.append(f"pair {n + 1}: {outcome_text(a.outputs[i], a.errors[i], context[i].output)}")
    parts.append(REVISE_NOTE if len(attempts) == 1 else CROSSOVER_NOTE)
    return "\n".join(parts)


def revision_shortenings(context: Sequence[Pair], attempts: Sequence[Attempted]) -> list[list[int]]:
    """The pairs to show, to try in order: all, then dropping pairs every program gets right before pairs
    one gets wrong (a revision prompt exists to show what is wrong), each kind from the start, down to one."""
    right = [i for i, p in enumerate(context) if all(_right(a, i, p) for a in attempts)]
    failing = [i for i in range(len(context)) if i not in right]
    drop_order = right + failing
    return [sorted(set(range(len(context))) - set(drop_order[:n])) for n in range(max(1, len(context)))]


def fit_revision_prompt(
    tokenizer: Any,
    context: Sequence[Pair],
    attempts: Sequence[Attempted],
    reserve: int = 0,
    max_seq_len: int | None = None,
) -> Prompt:
    """A program-writing prompt that shows `attempts` (one: refinement; two: crossover) and their outcomes
    on `context` (no test inputs: a revision is judged on the pairs), shortened until it + `reserve`
    answer tokens fit `max_seq_len` (None: no limit) by dropping pairs, those every program gets right
    first (`revision_shortenings`)."""
    if any(len(a.outputs) != len(context) or len(a.errors) != len(context) for a in attempts):
        raise ValueError("every attempt needs one output and one error entry per context pair")
    for shown in revision_shortenings(context, attempts):
        ids = _encode(tokenizer, prompt_text(tokenizer, "program", revision_text(context, attempts, shown)))
        if max_seq_len is None or len(ids) + reserve <= max_seq_len:
            return Prompt(ids, len(shown), len(shown) < len(context), True)
    return Prompt(ids, len(shown), len(shown) < len(context), False)


def fit_revision_split(
    tokenizer: Any, context: Sequence[Pair], attempts: Sequence[Attempted], answer_text: str, max_seq_len: int | None = None
) -> Split:
    """A revision prompt (`fit_revision_prompt`'s text, pairs dropped in `revision_shortenings`' order) and
    `answer_text` tokenized as one text, under the training rule: pairs dropped until the whole fits
    `max_seq_len` (None: no limit); with one pair left it is returned with fits=False."""
    if any(len(a.outputs) != len(context) or len(a.errors) != len(context) for a in attempts):
        raise ValueError("every attempt needs one output and one error entry per context pair")
    for shown in revision_shortenings(context, attempts):
        p, a = split_ids(tokenizer, prompt_text(tokenizer, "program", revision_text(context, attempts, shown)), answer_text)
        if max_seq_len is None or len(p) + len(a) <= max_seq_len:
            return Split(p, a, len(shown), len(shown) < len(context), True)
    return Split(p, a, len(shown), len(shown) < len(context), False)


def encode_revision_sample(
    tokenizer: Any, context: Sequence[Pair], attempts: Sequence[Attempted], answer_text: str, max_seq_len: int = 2048
) -> Encoded | None:
    """Training ids + labels of a revision sample (pretraining's repair samples, `solve.pretrain.repair`): the
    revision prompt showing `attempts` on `context`, then `answer_text` (`program_answer(code)`); loss on the
    answer only. None when even one pair does not fit."""
    s = fit_revision_split(tokenizer, context, attempts, answer_text, max_seq_len)
    if not s.fits:
        return None
    return Encoded(s.prompt_ids + s.answer_ids, [IGNORE] * len(s.prompt_ids) + s.answer_ids, s.n_context, s.shortened)
