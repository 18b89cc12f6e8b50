"""Every generated program verifies on its own task in the real sandbox (seccomp, rlimits, read
allow-list), importing the DSL the way model-written programs do."""

from __future__ import annotations

import pytest

from augment.tasks import load_challenges
from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox
from solve.sandbox.verify import Candidate, verify
from solve.synth.corpus import generate_corpus


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    import json

    out = tmp_path_factory.mktemp("synth")
    generate_corpus(60, 3, out, progress=False)
    tasks = load_challenges(out / "challenges.json", out / "solutions.json", strict=True).tasks
    sources = {row["task_id"]: row["source"] for row in map(json.loads, (out / "programs.jsonl").read_text().splitlines())}
    return tasks, sources


def test_every_generated_program_verifies_in_the_sandbox(corpus):
    tasks, sources = corpus
    assert len(tasks) >= 40
    with Sandbox(SandboxConfig(workers=2, timeout_s=2.0)) as sandbox:
        for task in tasks:
            (result,) = verify(task, [Candidate(task.id, sources[task.id])], sandbox)
            assert result.program_error is None, (task.id, result.errors, sources[task.id])
            assert result.verified, (task.id, sources[task.id])
            for got, want in zip(result.test_outputs, task.test_outputs):
                assert got is not None and (got == want).all(), task.id
