"""The program header is the sampler's draft, not the lesson: pretraining labels it in a share of program
samples only, and masks exactly its tokens in the rest."""

from __future__ import annotations

import numpy as np
import pytest

from augment.tasks import Pair
from solve.pipeline.runconfig import PROGRAM_DRAFT
from solve.pretrain.data import Example, encode_examples, mask_header
from ttt.prompts import IGNORE, program_answer

SOURCE = "from solve.dsl import *\n\n\ndef transform(grid):\n    g = to_array(grid)\n    x1 = flip_h(g)\n    return x1\n"


def _example(origin: str = "t0", source: str = SOURCE) -> Example:
    g = np.array([[1, 0], [0, 2]], dtype=np.uint8)
    return Example("program", (Pair(g, g[:, ::-1]),), None, (g,), program_answer(source), origin)


def _labelled_text(tokenizer, enc) -> str:
    return tokenizer.decode([t for t, label in zip(enc.input_ids, enc.labels) if label != IGNORE])


def test_masked_sample_learns_the_body_only(tokenizer):
    (full,), _ = encode_examples(tokenizer, [_example()], 640)
    masked = mask_header(tokenizer, full, PROGRAM_DRAFT)
    assert masked.input_ids == full.input_ids
    text = _labelled_text(tokenizer, masked)
    assert not text.startswith("```") and "x1 = flip_h(g)" in text and "to_array" not in text
    n_full = sum(label != IGNORE for label in full.labels)
    n_masked = sum(label != IGNORE for label in masked.labels)
    assert n_full - n_masked >= 15  # the header is ~26 tokens, the body the rest
    assert _labelled_text(tokenizer, full).startswith("```python")


@pytest.mark.parametrize("share, lo, hi", [(0.0, 0, 0), (1.0, 200, 200), (0.125, 10, 45)])
def test_header_share_is_deterministic_by_origin(tokenizer, share, lo, hi):
    examples = [_example(f"synth-{i}") for i in range(200)]
    enc, _ = encode_examples(tokenizer, examples, 640, PROGRAM_DRAFT, share)
    again, _ = encode_examples(tokenizer, examples, 640, PROGRAM_DRAFT, share)
    kept = [_labelled_text(tokenizer, e).startswith("```python") for e in enc]
    assert lo <= sum(kept) <= hi
    assert [e.labels for e in enc] == [e.labels for e in again]


def test_answers_without_the_header_and_grids_are_untouched(tokenizer):
    other = _example("odd", "import numpy as np\n\ndef transform(grid):\n    return grid\n")
    (enc,), _ = encode_examples(tokenizer, [other], 640, PROGRAM_DRAFT, 0.0)
    assert _labelled_text(tokenizer, enc).startswith("```python\nimport numpy")
