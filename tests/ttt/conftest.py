"""Small made-up tasks for the ttt tests (the tokenizer and tiny-model fixtures are in tests/conftest.py)."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from augment.tasks import Pair, Task


@pytest.fixture
def flip_task() -> Task:
    """Small 'flip upside down' task: 3 train pairs, one test pair."""
    rng = np.random.default_rng(7)
    grids = [rng.integers(0, 10, size=(3, 3), dtype=np.uint8) for _ in range(4)]
    pairs = tuple(Pair(x, x[::-1].copy()) for x in grids)
    return Task("flip", pairs[:3], (pairs[3].input,), (pairs[3].output,))


@pytest.fixture
def color_task() -> Task:
    """A different small task: recolor 1 -> 2."""
    rng = np.random.default_rng(11)
    grids = [rng.integers(0, 3, size=(2, 4), dtype=np.uint8) for _ in range(4)]
    pairs = tuple(Pair(x, np.where(x == 1, 2, x).astype(np.uint8)) for x in grids)
    return Task("recolor", pairs[:3], (pairs[3].input,), (pairs[3].output,))


# --- tokenizer families, built here with the `tokenizers` library (nothing downloaded) ---------------

GEMMA_STYLE_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n"
    "{{ m['content'] }}<end_of_turn>\n{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def _corpus() -> list[str]:
    """Text like our prompts (instructions, grids, a program) so that the trained vocabularies cover them."""
    from augment.gridtext import grid_to_text
    from ttt import prompts

    rng = np.random.default_rng(0)
    texts = [prompts.GRID_INSTRUCTION, prompts.PROGRAM_INSTRUCTION, prompts.program_answer("def transform(grid):\n    return grid[::-1]")]
    for _ in range(60):
        g = rng.integers(0, 10, size=rng.integers(1, 6, size=2))
        texts.append(f"in\n{grid_to_text(g)}\nout\n{grid_to_text(g[::-1])}\nprogram\ntest in")
    return texts


@functools.cache
def byte_bpe_plain():
    """GPT-2-style byte-level BPE with no chat template (plain prompt format, EOS ends an answer)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=600, special_tokens=["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(_corpus(), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>")


@functools.cache
def sentencepiece_style(template: bool):
    """Llama-2/Gemma-style: a Unigram model with the Metaspace ('▁' word-start) pre-tokenizer, digits
    and newlines split, a BOS added by the post-processor; optionally a Gemma-style chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split("\n", behavior="isolated"), pre_tokenizers.Digits(individual_digits=True),
        pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first"),
    ])
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first")
    specials = ["<unk>", "<s>", "</s>", "<start_of_turn>", "<end_of_turn>"]
    tok.train_from_iterator(_corpus(), trainers.UnigramTrainer(vocab_size=400, special_tokens=specials, unk_token="<unk>", show_progress=False))
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", special_tokens=[("<s>", tok.token_to_id("<s>"))])
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>", additional_special_tokens=specials[3:]
    )
    if template:
        fast.chat_template = GEMMA_STYLE_TEMPLATE
    return fast


FAMILIES = ("chatml-bpe", "byte-bpe-plain", "sentencepiece-plain", "sentencepiece-template")


@pytest.fixture(params=FAMILIES)
def family(request, tokenizer):
    """(name, tokenizer) for each family: the real SmolLM2 one (ChatML, byte-level BPE) and three built here."""
    build = {
        "chatml-bpe": lambda: tokenizer,
        "byte-bpe-plain": byte_bpe_plain,
        "sentencepiece-plain": lambda: sentencepiece_style(False),
        "sentencepiece-template": lambda: sentencepiece_style(True),
    }
    return request.param, build[request.param]()
