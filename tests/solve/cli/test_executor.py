"""`--executor` / `--ray-address` on run, sweep and ablate: refused before anything is written when wrong.
(The Ray executor itself is tested on a local Ray instance in tests/solve/placement/test_ray_actors.py.)"""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from solve.cli.app import app

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[3]
COMMON = ["--dataset", "arc-agi-1/evaluation", "--task-ids", "00576224", "--config", str(ROOT / "configs" / "smoke.yaml")]


@pytest.mark.parametrize("args, message", [
    (["run", *COMMON, "--executor", "slurm"], "--executor 'slurm': expected local or ray"),
    (["sweep", *COMMON, "--param", "train.steps=1,2", "--executor", "slurm"], "--executor 'slurm': expected local or ray"),
    (["run", *COMMON, "--executor", "ray", "--set", "placement.mode=deepspeed"], "placement.mode deepspeed needs --executor local"),
    (["ablate", *COMMON, "--sets", "none", "--executor", "ray", "--set", "placement.mode=deepspeed"], "needs --executor local"),
], ids=["run bad executor", "sweep bad executor", "run ray deepspeed", "ablate ray deepspeed"])
def test_refused_before_anything_is_written(args, message, tmp_path):
    out = tmp_path / "out"
    res = runner.invoke(app, [*args, "--out", str(out)])
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split())
    assert not out.exists()
