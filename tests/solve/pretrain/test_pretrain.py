"""`arc-ttt pretrain` on a tiny random model: resumes exactly, writes a prior a run can start from."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from solve.pipeline.runconfig import load_config
from solve.pretrain.data import CorpusError, load_corpus, real_examples, split_heldout
from solve.pretrain.recipe import PretrainError, pretrain
from solve.synth.corpus import generate_corpus

FAST = [
    "model.source=random:tiny", "train.steps=4", "train.warmup_steps=1", "train.max_seq_len=1024", "train.batch_tokens=1200",
    "pretrain.real_datasets=[]", "pretrain.heldout_tasks=2", "pretrain.eval_every=0", "pretrain.eval_programs=1",
    "pretrain.checkpoint_every=1", "solve.program_max_new_tokens=16", "lora.r=4", "lora.alpha=8", "sandbox.workers=1",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(40, 0, out, progress=False)
    return out


def quiet():
    from rich.console import Console

    return Console(quiet=True)


@pytest.mark.parametrize("dropout", [0.0, 0.1])
def test_an_interrupted_run_resumes_exactly(tmp_path, corpus, dropout):
    cfg = load_config(None, FAST + [f"lora.dropout={dropout}"])
    straight = pretrain(cfg, [corpus], tmp_path / "a", quiet(), progress=False)
    first = pretrain(cfg, [corpus], tmp_path / "b", quiet(), progress=False, stop_after=2)
    assert first["steps"] == 2 and not first["done"] and not (tmp_path / "b" / "adapter_model.safetensors").exists()
    resumed = pretrain(cfg, [corpus], tmp_path / "b", quiet(), progress=False)
    assert resumed["done"] and resumed["steps"] == straight["steps"] == 4
    losses = [json.loads(line)["loss"] for line in (tmp_path / "b" / "pretrain.jsonl").read_text().splitlines()]
    assert losses == [json.loads(line)["loss"] for line in (tmp_path / "a" / "pretrain.jsonl").read_text().splitlines()]
    a, b = load_file(tmp_path / "a" / "adapter_model.safetensors"), load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    card = (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert "arc-ttt pretrain" in card and "held out" in card and "| 4 |" in card  # the final evaluation row


def test_a_checkpoint_from_another_config_is_refused(tmp_path, corpus):
    cfg = load_config(None, FAST)
    pretrain(cfg, [corpus], tmp_path, quiet(), progress=False, stop_after=1)
    with pytest.raises(PretrainError, match="train.lr"):
        pretrain(load_config(None, FAST + ["train.lr=0.5"]), [corpus], tmp_path, quiet(), progress=False)


def test_corpus_errors_name_the_directory(tmp_path):
    with pytest.raises(CorpusError, match="not a synth corpus"):
        load_corpus([tmp_path])


def test_heldout_split_is_stable_and_disjoint(corpus):
    tasks = load_corpus([corpus]).tasks
    train, held = split_heldout(tasks, 3)
    train2, held2 = split_heldout(list(reversed(tasks)), 3)
    assert {t.id for t in held} == {t.id for t in held2} and len(held) == 3
    assert not ({t.id for t in train} & {t.id for t in held}) and len(train) + len(held) == len(tasks)


def test_real_examples_never_come_from_an_evaluation_set():
    with pytest.raises(ValueError, match="evaluation set"):
        real_examples(["arc-agi-1/evaluation"], 1, 0)
    examples, reports = real_examples(["arc-agi-2/training"], 1, 0, max_side=5)
    r = reports[0]
    assert r["excluded"] >= 376  # ARC-AGI-2 training holds 376 of ARC-AGI-1's evaluation tasks
    assert len(examples) == r["total"] - r["excluded"] - r["larger_than_max_side"]


def test_a_planted_evaluation_task_is_never_trained_on(tmp_path, corpus):
    """Whoever made the corpus, a task sharing a grid with an evaluation set is dropped at load and counted."""
    import shutil

    from augment.tasks import load_dataset

    planted = tmp_path / "planted"
    shutil.copytree(corpus, planted)
    (planted / "synth_report.json").unlink(missing_ok=True)
    evil = load_dataset("arc-agi-1/evaluation").tasks[0]
    challenges = json.loads((planted / "challenges.json").read_text())
    solutions = json.loads((planted / "solutions.json").read_text())
    challenges["planted"] = {"train": evil.to_json()["train"], "test": [{"input": g.tolist()} for g in evil.test_inputs]}
    solutions["planted"] = [g.tolist() for g in evil.test_outputs]
    (planted / "challenges.json").write_text(json.dumps(challenges))
    (planted / "solutions.json").write_text(json.dumps(solutions))
    with open(planted / "programs.jsonl", "a") as f:
        f.write(json.dumps({"task_id": "planted", "source": "def transform(grid):\n    return grid\n"}) + "\n")
    loaded = load_corpus([planted])
    baseline = load_corpus([corpus]).reports[0]["contaminated_dropped"]  # corpus tasks the load-time guard drops anyway
    assert "planted" not in {t.id for t in loaded.tasks} and loaded.reports[0]["contaminated_dropped"] == baseline + 1


def test_resuming_on_another_corpus_is_refused(tmp_path, corpus):
    other = tmp_path / "other"
    generate_corpus(30, 1, other, progress=False)
    cfg = load_config(None, FAST)
    pretrain(cfg, [corpus], tmp_path / "run", quiet(), progress=False, stop_after=1)
    with pytest.raises(PretrainError, match="other training or held-out tasks"):
        pretrain(cfg, [other], tmp_path / "run", quiet(), progress=False)


def test_full_model_pretraining_keeps_fp32_master_weights_and_writes_a_loadable_model(tmp_path, corpus, monkeypatch):
    import solve.pretrain.recipe as recipe

    switched = []
    real = recipe.set_checkpointing
    monkeypatch.setattr(recipe, "set_checkpointing", lambda m, on: switched.append((type(m).__name__, on)) or real(m, on))
    from ttt.config import ModelConfig
    from ttt.models import load_model

    cfg = load_config(None, FAST + ["pretrain.full_model=true", "model.dtype=bfloat16", "train.steps=2", "train.gradient_checkpointing=true"])
    report = pretrain(cfg, [corpus], tmp_path, quiet(), progress=False)
    assert report["done"] and np.isfinite(report["loss_last"])
    saved = load_file(tmp_path / "model" / "model.safetensors")
    assert {t.dtype for t in saved.values()} == {torch.float32}  # trained (and saved) in fp32, not the bf16 it loaded in
    assert switched == [(switched[0][0], True)] and "Peft" not in switched[0][0]  # checkpointing on the plain model
    trained, _ = load_model(ModelConfig(source=str(tmp_path)))
    base, _ = load_model(cfg.model)
    assert any(not torch.equal(a.float(), b.float()) for a, b in zip(trained.parameters(), base.parameters()))
