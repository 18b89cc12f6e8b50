"""The benchmark runs the real train step on a random-initialised model built from a config dict."""

from __future__ import annotations

import pytest

from ttt.config import LoraConfig


@pytest.fixture(scope="module")
def bench():
    import ttt.bench

    return ttt.bench


def test_run_benchmark_on_a_config_dict(bench):
    config = dict(model_type="qwen2", vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                  num_attention_heads=4, num_key_value_heads=2, tie_word_embeddings=True)
    report = bench.run_benchmark(config, seq_lens=(32, 64), steps=1, warmup=1, lora=LoraConfig(r=4), device="cpu",
                                 peak_tflops=1.0)
    # matmuls per layer: q,o 64x64; k,v 64x32; gate,up,down 64x128; plus the tied head 1000x64
    assert report["matmul_params"] == 2 * (2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 128) + 1000 * 64
    assert [r["seq_len"] for r in report["results"]] == [32, 64]
    for r in report["results"]:
        assert r["s_per_step"] > 0 and r["tokens_per_s"] == pytest.approx(r["seq_len"] / r["s_per_step"])
        assert r["mfu"] == pytest.approx(r["tokens_per_s"] * 4 * report["matmul_params"] / 1e12)
    assert "4 x matmul_params" in report["flops_per_token"]


def test_presets_build_valid_configs(bench):
    from transformers import AutoConfig

    for name, spec in bench.PRESETS.items():
        spec = dict(spec)
        cfg = AutoConfig.for_model(spec.pop("model_type"), **spec)
        assert cfg.hidden_size % cfg.num_attention_heads == 0, name
