"""THE prompt formats: training, generation and scoring all build their token ids here.

A task is shown as demonstration pairs, each an `in` line + grid text and an `out` line + grid text
(grids in `augment.gridtext` format), then the query as `in` + grid. Two kinds of answer:
  - "grid": the query's output grid text (transduction);
  - "program": a ```python block defining `transform(grid)` (induction); the prompt then shows the
    pairs and, optionally, the test inputs.
With a chat template the instruction is the system message (replacing any long default system
prompt), the task is the user message and the answer the assistant message. Token ids are built as
`prompt_ids + answer_ids + end_ids`, where `prompt_ids` are exactly what generation gets (template
with the generation prompt), so training and inference never disagree at the boundary. Loss falls
only on `answer_ids + end_ids`; the end-of-turn token teaches the model to stop.

Samples longer than `max_seq_len` drop context pairs from the START (the pairs farthest from the
query) until they fit, keeping at least one; if that still does not fit the sample is dropped.
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
    "`transform(grid: list[list[int]]) -> list[list[int]]` (numpy allowed) that applies it. "
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


def _messages(kind: Kind, user: str) -> list[dict[str, str]]:
    system = GRID_INSTRUCTION if kind == "grid" else PROGRAM_INSTRUCTION
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]


def _prompt_ids(tokenizer: Any, kind: Kind, user: str) -> list[int]:
    if getattr(tokenizer, "chat_template", None):
        text = tokenizer.apply_chat_template(_messages(kind, user), tokenize=False, add_generation_prompt=True)
        return tokenizer.encode(text, add_special_tokens=False)  # the template writes its own BOS if any
    system = GRID_INSTRUCTION if kind == "grid" else PROGRAM_INSTRUCTION
    return tokenizer.encode(f"{system}\n\n{user}\n{'out' if kind == 'grid' else 'program'}\n")


def pad_id(tokenizer: Any) -> int:
    """The id that pads batches: the tokenizer's pad token, else its end-of-sequence token."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id


def end_ids(tokenizer: Any) -> list[int]:
    """Tokens that close an answer: the template's end-of-turn marker (e.g. <|im_end|>), else EOS."""
    if getattr(tokenizer, "chat_template", None):
        msgs = _messages("grid", "x") + [{"role": "assistant", "content": _SENTINEL}]
        rendered = tokenizer.apply_chat_template(msgs, tokenize=False)
        after = rendered.split(_SENTINEL, 1)[1].strip() if _SENTINEL in rendered else ""
        if after:
            return tokenizer.encode(after, add_special_tokens=False)
    if tokenizer.eos_token_id is None:
        raise ValueError("tokenizer has neither a chat template end-of-turn marker nor an EOS token")
    return [tokenizer.eos_token_id]


def grid_prompt_ids(tokenizer: Any, context: Sequence[Pair], query: np.ndarray) -> list[int]:
    """Prompt for generating the query's output grid (ends with the generation prompt)."""
    return _prompt_ids(tokenizer, "grid", task_text(context, query))


def program_prompt_ids(tokenizer: Any, pairs: Sequence[Pair], test_inputs: Sequence[np.ndarray] = ()) -> list[int]:
    """Prompt for writing a `transform` program from the train pairs (and, optionally, the test inputs)."""
    return _prompt_ids(tokenizer, "program", task_text(pairs, None, test_inputs))


def answer_ids(tokenizer: Any, answer_text: str) -> list[int]:
    """Answer tokens as trained and scored: the text, then the end-of-turn tokens."""
    return tokenizer.encode(answer_text, add_special_tokens=False) + end_ids(tokenizer)


def grid_scoring_item(tokenizer: Any, context: Sequence[Pair], query: np.ndarray, target: np.ndarray) -> tuple[list[int], list[int]]:
    """(prompt_ids, answer_ids) for `ttt.nll.target_nll`: how likely is `target` as the query's output."""
    return grid_prompt_ids(tokenizer, context, query), answer_ids(tokenizer, grid_to_text(target))


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
    answer = answer_ids(tokenizer, answer_text)
    for start in range(0, max(1, len(context))):  # drop pairs from the start until it fits
        kept = context[start:]
        if kind == "grid":
            if query is None:
                raise ValueError("a grid sample needs a query input")
            prompt = grid_prompt_ids(tokenizer, kept, query)
        else:
            prompt = program_prompt_ids(tokenizer, kept, test_inputs)
        if len(prompt) + len(answer) <= max_seq_len:
            return Encoded(prompt + answer, [IGNORE] * len(prompt) + answer, len(kept), start > 0)
    return None


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
