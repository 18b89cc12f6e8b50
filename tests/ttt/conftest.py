"""Shared fixtures: the real SmolLM2 tokenizer (converted once into the model cache) and a tiny
random Llama-style model built on its vocabulary, so tests exercise real tokenization in milliseconds."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augment.tasks import Pair, Task


@pytest.fixture(scope="session", autouse=True)
def one_thread():
    # Test machines here are small and shared: two OpenMP threads competing with another process
    # for two cores ran the 135M forward 5x slower than one thread. One thread is also steadier.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smol_dir():
    """HF dir of the embedded model (first use converts the GGUF: ~40 s, then cached)."""
    from ttt.models import resolve_model

    return resolve_model("smollm2-135m").model_dir


@pytest.fixture(scope="session")
def tokenizer(smol_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smol_dir, local_files_only=True)
    assert tok.chat_template and tok.pad_token_id is not None
    return tok


TINY = dict(
    hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
    max_position_embeddings=2048, tie_word_embeddings=True,
    initializer_range=0.3,  # large random weights: an expressive model whose loss visibly moves in a few steps
)


def build_tiny(tokenizer, seed: int = 0):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, **TINY)
    return LlamaForCausalLM(cfg).eval()


@pytest.fixture
def make_tiny(tokenizer):
    """Factory: a fresh tiny model for a seed (same seed = same weights)."""
    return lambda seed=0: build_tiny(tokenizer, seed)


@pytest.fixture
def tiny(make_tiny):
    return make_tiny(0)


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
