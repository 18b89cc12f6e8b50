"""`adapt_command` end to end on a tiny model saved in the Kaggle layout (real loading, real training)."""

from __future__ import annotations

import json

from solve.cli.adapt_report import render_adapt_report, sparkline
from ttt.config import LoraConfig, ModelConfig, TrainConfig
from ttt.holdout import adapt_command


def test_adapt_command_with_leave_one_out(tmp_path, tiny, tokenizer, flip_task):
    tiny.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "tokenizer")
    report = adapt_command(
        flip_task,
        ModelConfig(source=str(tmp_path), device="cpu"),
        LoraConfig(r=8),
        TrainConfig(steps=6, lr=1e-2, warmup_steps=1),
        augment_set="geometric",
        n_samples=8,
        seed=0,
        leave_one_out=True,
    )
    json.dumps(report)  # plain data only
    assert report["steps"] == 6 and len(report["losses"]) == 6
    assert len(report["nll_before"]) == len(report["nll_after"]) == 1
    assert report["nll_after"][0] < report["nll_before"][0]  # the tiny model learns the answer format fast
    assert [h["pair"] for h in report["holdout"]] == [0, 1, 2]
    assert all(len(h["nll_before"]) == 1 and h["steps"] == 6 for h in report["holdout"])
    text = render_adapt_report(report)
    assert "pair 2 out" in text and "trainable params" in text


def test_sparkline():
    assert sparkline([3.0, 2.0, 1.0]) == "█▅▁"
    assert sparkline([]) == "" and sparkline([1.0, 1.0]) == "▁▁"


def test_render_shows_every_run(tmp_path):
    run = {"steps": 2, "stopped_by": "steps", "seconds": 1.0, "tokens_per_s": 10.0, "losses": [2.0, 1.0],
           "nll_before": [0.5], "nll_after": [0.25]}
    report = {"task": "t", "model": "m", "trainable_params": 10, "load_s": 0.1, "total_s": 2.0,
              "samples": {"given": 4, "kept": 4, "shortened": 1, "dropped": 0}, **run,
              "holdout": [{"pair": 0, **run}, {"pair": 1, **run, "losses": []}]}
    text = render_adapt_report(report)
    assert "pair 0 out" in text and "pair 1 out" in text and "2.000→1.000" in text and "0.250" in text


def test_adapt_and_score_builds_the_pipelines_samples_and_stops_at_the_deadline(tiny, tokenizer, flip_task):
    import time

    from augment.config import AugmentConfig
    from augment.tasks import Task
    from ttt.holdout import adapt_and_score, hold_out, task_samples
    from ttt.lora import wrap_lora

    model = wrap_lora(tiny, LoraConfig(r=8))
    cfg = TrainConfig(steps=2, lr=1e-2, batch_tokens=600)
    one_pair = hold_out(Task("two", flip_task.train[:2], flip_task.test_inputs, flip_task.test_outputs), 0)
    off = adapt_and_score(model, tokenizer, one_pair, cfg, AugmentConfig(set="geometric", n_samples=4), 0)
    on = adapt_and_score(model, tokenizer, one_pair, cfg, AugmentConfig(set="geometric", n_samples=4, allow_single_pair=True), 0)
    assert (off["stopped_by"], off["steps"]) == ("no_samples", 0), "allow_single_pair off: no leave-one-out sample"
    assert (on["stopped_by"], on["steps"]) == ("steps", 2), "allow_single_pair is honoured"

    colors = AugmentConfig(set="geometric+color", n_samples=8, permute_background=True)
    assert any(s.augmentation.colors[0] != 0 for s in task_samples(flip_task, colors, 0)[0]), "permute_background is honoured"
    past = adapt_and_score(model, tokenizer, flip_task, TrainConfig(steps=50), colors, 0, deadline=time.monotonic() - 1)
    assert (past["steps"], past["stopped_by"]) == (0, "deadline") and len(past["nll_after"]) == 1
