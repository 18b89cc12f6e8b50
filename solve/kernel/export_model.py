"""Write a model in the Kaggle dataset layout that `ttt.models.resolve_model` recognizes:

    DIR/model/       config.json, *.safetensors, generation_config.json  (save_pretrained of the model)
    DIR/tokenizer/   tokenizer.json, tokenizer_config.json, ...          (save_pretrained of the tokenizer)

Any model source works ('smollm2-135m', a .gguf file, an HF dir, 'random:tiny'). With link=True and a
source that already is an HF directory on disk, files are symlinked instead of re-saved: a rehearsal
must not copy 540 MB each time (Kaggle datasets must hold real files: upload an unlinked export).
"""

from __future__ import annotations

import os
from pathlib import Path

MODEL_FILES = ("config.json", "generation_config.json")
MODEL_SUFFIXES = (".safetensors", ".bin")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json", "merges.txt",
                   "chat_template.jinja", "added_tokens.json", "tokenizer.model")


def export_model(source: str, out: str | Path, link: bool = False, dtype: str = "auto") -> Path:
    """DIR with model/ and tokenizer/ for `source`; returns DIR."""
    from ttt.models import RANDOM_PREFIX, resolve_model

    out = Path(out)
    (out / "model").mkdir(parents=True, exist_ok=True)
    (out / "tokenizer").mkdir(parents=True, exist_ok=True)
    if link and not source.startswith(RANDOM_PREFIX):
        resolved = resolve_model(source)
        _link_files(resolved.model_dir, out / "model", lambda n: n in MODEL_FILES or n.endswith(MODEL_SUFFIXES))
        _link_files(resolved.tokenizer_dir, out / "tokenizer", lambda n: n in TOKENIZER_FILES)
        return out
    from ttt.config import ModelConfig
    from ttt.models import load_model

    model, tokenizer = load_model(ModelConfig(source=source, device="cpu", dtype=dtype))
    model.save_pretrained(out / "model")
    tokenizer.save_pretrained(out / "tokenizer")
    return out


def _link_files(src: Path, dst: Path, keep) -> None:
    found = [p for p in sorted(src.iterdir()) if p.is_file() and keep(p.name)]
    if not any(p.name == "config.json" for p in found) and dst.name == "model":
        raise FileNotFoundError(f"{src}: no config.json to export")
    for p in found:
        target = dst / p.name
        if target.is_symlink() or target.exists():
            target.unlink()
        os.symlink(p.resolve(), target)
