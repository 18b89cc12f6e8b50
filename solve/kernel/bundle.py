"""`arc-ttt kaggle bundle`: the Kaggle dataset that installs arc-ttt offline.

    DIR/wheels/            arc_ttt-*.whl (pip wheel --no-deps .) + one pinned wheel per shipped dependency
    DIR/configs/*.yaml     the run configs (the kernel reads DIR/configs/kaggle-l4x4.yaml)
    DIR/requirements.txt   name==version of every shipped dependency (the versions we tested with)
    DIR/bundle.json        manifest: what is shipped, what is taken from the image and why, sizes
    DIR/dataset-metadata.json, DIR/README.md

What is shipped and what is taken from the Kaggle image
-------------------------------------------------------
Dependencies are walked from arc-ttt's own requirements, through the installed environment, with
markers evaluated for Kaggle (Linux x86_64, CPython 3.11). Each is pinned to the version installed
here, i.e. the version the test suite ran against. The walk stops at IMAGE_PACKAGES: those are never
shipped (and their own dependencies are not followed), because replacing them would break the image:
torch is the image's CUDA build (a CPU or other-CUDA wheel would silently lose the GPUs or fail to
load), numpy/matplotlib/pyyaml are compiled against the image's other libraries.

Everything else is shipped. Packages the image usually has anyway (transformers, peft, accelerate,
tokenizers, pydantic, ...) are shipped as fallbacks: `pip install --no-index --find-links` keeps an
installed version that satisfies arc-ttt's requirement and installs ours only when the image's is
missing or too old, so the wheels dir never downgrades the image behind our back. Installing with
`-c requirements.txt` forces the exact tested versions instead.

DeepSpeed publishes only an sdist: we build a py3-none-any wheel locally (`pip wheel --no-deps
--no-build-isolation`, ops are JIT-compiled at first use, never at build time). It is only used by
placement.mode=deepspeed; the default per_gpu placement does not import it.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable

PROJECT = "arc-ttt"
KAGGLE_PYTHON = "3.11"
KAGGLE_PLATFORMS = ("manylinux2014_x86_64", "manylinux_2_17_x86_64", "manylinux_2_28_x86_64", "linux_x86_64")
KAGGLE_MARKERS = {  # what `packaging` evaluates requirement markers against, for the Kaggle image
    "python_version": KAGGLE_PYTHON, "python_full_version": f"{KAGGLE_PYTHON}.0", "sys_platform": "linux",
    "platform_system": "Linux", "platform_machine": "x86_64", "os_name": "posix",
    "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": "",
}
IMAGE_PACKAGES = {
    "torch": "the image's CUDA build; any wheel we ship would replace it and lose the GPUs",
    "numpy": "the image's scientific stack (torch, scipy, pandas) is compiled against its numpy",
    "matplotlib": "in the image; only plots, compiled against the image's numpy",
    "pyyaml": "in the image; a C extension with nothing version-sensitive for us",
}
SDIST_ONLY = {"deepspeed": "no wheel on PyPI: built here as py3-none-any (ops JIT-compile at first use)"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


@dataclass
class Manifest:
    project_version: str
    python: str
    platforms: list[str]
    pins: dict[str, str]  # shipped dependencies: name -> exact version
    image: dict[str, str]  # taken from the Kaggle image: name -> why
    built_locally: dict[str, str]  # sdist-only packages we wheel ourselves: name -> note
    downloaded: bool
    wheels: dict[str, int] = field(default_factory=dict)  # file name -> bytes
    missing: list[str] = field(default_factory=list)  # pinned packages without a wheel in DIR/wheels
    git_commit: str | None = None

    @property
    def total_bytes(self) -> int:
        return sum(self.wheels.values())


def dependency_pins(root: str = PROJECT, stop: Iterable[str] = IMAGE_PACKAGES) -> dict[str, str]:
    """Installed versions of every dependency reachable from `root` (markers evaluated for Kaggle),
    not descending into `stop` packages. Raises when a needed dependency is not installed here."""
    from importlib.metadata import PackageNotFoundError, distribution

    from packaging.requirements import Requirement

    stop = {canonical(s) for s in stop}
    pins: dict[str, str] = {}
    todo = [canonical(root)]
    seen: set[str] = set()
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        try:
            dist = distribution(name)
        except PackageNotFoundError:
            raise RuntimeError(f"{name} is required (for Kaggle) but not installed here: install it and rebuild") from None
        if name != canonical(root):
            pins[name] = dist.version
        for text in dist.requires or []:
            req = Requirement(text)
            if req.marker is not None and not req.marker.evaluate(KAGGLE_MARKERS):
                continue  # extras and other platforms
            dep = canonical(req.name)
            if dep not in stop:
                todo.append(dep)
    return dict(sorted(pins.items()))


def _pip(*args: str, cwd: Path | None = None) -> None:
    cmd = [sys.executable, "-m", "pip", *args]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=cwd)


def project_root() -> Path:
    return Path(__file__).resolve().parents[2]


PROJECT_FILES = ("pyproject.toml", "README.md", "augment", "ttt", "solve")


def build_project_wheel(wheels: Path, root: Path) -> Path:
    """`pip wheel --no-deps` of a clean copy of the sources: building in the tree would leave build/
    behind, whose stale modules a later build would package."""
    import tempfile

    for old in wheels.glob("arc_ttt-*.whl"):
        old.unlink()  # exactly one project wheel: the one built from this tree
    with tempfile.TemporaryDirectory(prefix="arc-ttt-src-") as tmp:
        for name in PROJECT_FILES:
            src = root / name
            if src.is_dir():
                shutil.copytree(src, Path(tmp) / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
            elif src.is_file():
                shutil.copy(src, Path(tmp) / name)
        _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), tmp)
    built = sorted(wheels.glob("arc_ttt-*.whl"))
    if len(built) != 1:
        raise RuntimeError(f"expected one arc_ttt wheel in {wheels}, found {[p.name for p in built]}")
    return built[0]


def download_wheels(wheels: Path, pins: dict[str, str], python: str = KAGGLE_PYTHON) -> None:
    """Binary wheels for Kaggle's Python and platform, one exact version each, no dependency
    resolution (the pin list is already the closure: resolving would pull torch and CUDA, GBs)."""
    binary = [f"{n}=={v}" for n, v in pins.items() if n not in SDIST_ONLY]
    if binary:
        plat = [a for p in KAGGLE_PLATFORMS for a in ("--platform", p)]
        _pip("download", "--no-deps", "--only-binary=:all:", "--python-version", python, "--implementation", "cp",
             "--abi", f"cp{python.replace('.', '')}", "--abi", "abi3", "--abi", "none", *plat, "-q", "-d", str(wheels), *binary)
    for name in (n for n in pins if n in SDIST_ONLY):
        # No build isolation: the isolated env would download torch only to import it during setup.
        _pip("wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(wheels), f"{name}=={pins[name]}")


def wheel_names(wheels: Path) -> dict[str, str]:
    """canonical project name -> version, from the wheel file names in `wheels`."""
    out = {}
    for p in wheels.glob("*.whl"):
        name, version = p.name.split("-")[:2]
        out[canonical(name)] = version
    return out


def git_commit(root: Path) -> str | None:
    try:
        res = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    return res.stdout.strip() or None


def dataset_metadata(owner: str, slug: str, title: str) -> dict[str, Any]:
    return {"title": title, "id": f"{owner}/{slug}", "licenses": [{"name": "apache-2.0"}]}


def build_bundle(out: str | Path, download: bool = True, owner: str = "YOUR-KAGGLE-USERNAME",
                 slug: str = "arc-ttt-bundle", root: Path | None = None) -> Manifest:
    from importlib.metadata import version

    root = root or project_root()
    out = Path(out)
    wheels = out / "wheels"
    wheels.mkdir(parents=True, exist_ok=True)
    build_project_wheel(wheels, root)
    pins = dependency_pins()
    if download:
        download_wheels(wheels, pins)
    if (out / "configs").exists():
        shutil.rmtree(out / "configs")
    shutil.copytree(root / "configs", out / "configs")
    readme = root / "kaggle" / "README.md"
    if readme.is_file():
        shutil.copy(readme, out / "README.md")
    (out / "requirements.txt").write_text("".join(f"{n}=={v}\n" for n, v in pins.items()))
    have = wheel_names(wheels)
    manifest = Manifest(
        project_version=version(PROJECT), python=KAGGLE_PYTHON, platforms=list(KAGGLE_PLATFORMS), pins=pins,
        image=dict(IMAGE_PACKAGES), built_locally={n: SDIST_ONLY[n] for n in pins if n in SDIST_ONLY}, downloaded=download,
        wheels={p.name: p.stat().st_size for p in sorted(wheels.glob("*.whl"))},
        missing=[n for n, v in pins.items() if have.get(n) != v] if download else [],
        git_commit=git_commit(root),
    )
    (out / "bundle.json").write_text(json.dumps(asdict(manifest) | {"total_bytes": manifest.total_bytes}, indent=2))
    (out / "dataset-metadata.json").write_text(json.dumps(dataset_metadata(owner, slug, "arc-ttt bundle"), indent=2))
    return manifest
