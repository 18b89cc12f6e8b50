"""Fixtures shared by every test package: the real SmolLM2 tokenizer (converted once into the model
cache) and a tiny random Llama-style model on its vocabulary, so tests exercise real tokenization in
milliseconds."""

from __future__ import annotations

import pytest
import torch


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


# The same shapes as model.source='random:tiny' (ttt/models.py), which worker processes build by config.
TINY = {k: v for k, v in __import__("ttt.models").models.RANDOM_PRESETS["tiny"].items() if k != "model_type"}


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


