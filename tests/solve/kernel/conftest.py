"""Shared pieces for the Kaggle kernel tests: the rehearsal config with CPU-second budgets."""

from __future__ import annotations

from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
REHEARSAL_CONFIG = ROOT / "configs" / "kaggle-rehearsal.yaml"
# Seconds per task on 2 CPU cores with the tiny random model: enough to exercise every stage.
FAST = ["train.steps=1", "solve.programs_per_view=1", "solve.program_max_new_tokens=16", "train.max_seq_len=512",
        "train.batch_tokens=512", "augment.n_samples=2"]


@pytest.fixture
def config():
    return REHEARSAL_CONFIG


@pytest.fixture
def fast():
    return list(FAST)


@pytest.fixture(scope="session")
def small_tasks():
    from solve.kernel.rehearse import rehearsal_tasks

    return rehearsal_tasks(3)
