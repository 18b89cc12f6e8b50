"""`arc-ttt pretrain` with placement.mode=deepspeed: real DeepSpeed ranks (ZeRO-2, gloo, CPU) launched by the
CLI, each training on its share of every step; an interrupted run resumes exactly; a checkpoint is not
resumed by another number of ranks."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from solve.cli.app import app
from solve.pipeline.runconfig import load_config
from solve.pretrain.recipe import Pools, draw_step
from solve.synth.corpus import generate_corpus

pytestmark = pytest.mark.slow

FAST = [
    "model.source=random:tiny", "train.steps=4", "train.warmup_steps=1", "train.max_seq_len=1024", "train.batch_tokens=1200",
    "pretrain.real_datasets=[]", "pretrain.heldout_tasks=2", "pretrain.eval_every=0", "pretrain.eval_programs=1",
    "pretrain.checkpoint_every=1", "solve.program_max_new_tokens=16", "lora.r=4", "lora.alpha=8", "sandbox.workers=1",
    "placement.mode=deepspeed", "placement.ranks=2", "lora.dropout=0.1",
]


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    out = tmp_path_factory.mktemp("corpus")
    generate_corpus(40, 0, out, progress=False)
    return out


def cli(*args):
    result = CliRunner().invoke(app, ["pretrain", *map(str, args), "--no-progress"] + [x for o in FAST for x in ("--set", o)])
    return result


def test_two_ranks_train_resume_exactly_and_refuse_another_rank_count(tmp_path, corpus):
    straight = cli("--corpus", corpus, "--out", tmp_path / "a")
    assert straight.exit_code == 0, straight.output
    report = json.loads((tmp_path / "a" / "pretrain.json").read_text())
    assert report["done"] and report["ranks"] == 2 and report["zero_stage"] == 2 and report["steps"] == 4
    card = (tmp_path / "a" / "MODEL_CARD.md").read_text()
    assert "2 DeepSpeed ranks" in card and "arc-ttt pretrain" in card
    assert report["evals"][-1]["tasks"] == 2  # both held-out tasks evaluated, one per rank

    first = cli("--corpus", corpus, "--out", tmp_path / "b", "--stop-after", 2)
    assert first.exit_code == 0, first.output
    assert not (tmp_path / "b" / "adapter_model.safetensors").exists()
    assert (tmp_path / "b" / "checkpoint" / "deepspeed").is_dir()  # every rank's optimizer partition
    resumed = cli("--corpus", corpus, "--out", tmp_path / "b")
    assert resumed.exit_code == 0, resumed.output
    lines = lambda d: [json.loads(x)["loss"] for x in (tmp_path / d / "pretrain.jsonl").read_text().splitlines()]  # noqa: E731
    assert lines("b") == lines("a")
    a, b = load_file(tmp_path / "a" / "adapter_model.safetensors"), load_file(tmp_path / "b" / "adapter_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)

    # the data of a step depends on the number of ranks: a 2-rank checkpoint does not resume in one process
    cli("--corpus", corpus, "--out", tmp_path / "c", "--stop-after", 1)
    alone = CliRunner().invoke(app, ["pretrain", "--corpus", str(corpus), "--out", str(tmp_path / "c"), "--no-progress"]
                               + [x for o in FAST[:-3] + ["lora.dropout=0.1"] for x in ("--set", o)])
    assert alone.exit_code != 0 and "placement.mode" in alone.output


def test_ranks_split_each_step_and_together_see_one_process_worth_of_data(corpus):
    from solve.pretrain.data import encode_examples, load_corpus, synthetic_examples
    from ttt.models import load_model

    cfg = load_config(None, FAST)
    _, tok = load_model(cfg.model)
    programs, grids = synthetic_examples(load_corpus([corpus]).tasks, load_corpus([corpus]).sources)
    pools = Pools(encode_examples(tok, programs, 1024)[0], encode_examples(tok, grids, 1024)[0])
    two = draw_step(pools, 3, 0, cfg, world=2)
    assert len(two) == 2 * cfg.train.grad_accum
    assert draw_step(pools, 3, 0, cfg, world=1) == two[: cfg.train.grad_accum]  # one process: the same first draws
    assert two[0::2] != two[1::2]  # the ranks' shares differ
