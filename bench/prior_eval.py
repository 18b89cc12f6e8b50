"""The program prior with and without: parse / run / verify rates of sampled programs on the held-out
synthetic tasks of a pretraining config (the same split `arc-ttt pretrain` evaluates on), real sandbox.

    .venv/bin/python bench/prior_eval.py --config configs/pretrain-cpu.yaml --corpus runs/synth-s0 [--adapter DIR]

Without --adapter the base model is measured (a fresh LoRA computes exactly the base model). Prints one JSON line.
"""

from __future__ import annotations

import argparse
import json
import time


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", required=True)
    p.add_argument("--corpus", action="append", required=True)
    p.add_argument("--adapter", default=None, help="a prior made by `arc-ttt pretrain` (default: none, the base model)")
    p.add_argument("--set", dest="overrides", action="append", default=[])
    args = p.parse_args()

    from solve.pipeline.runconfig import load_config
    from solve.pretrain.data import choose_tasks, load_corpus
    from solve.pretrain.evaluate import evaluate_prior
    from solve.sandbox.pool import Sandbox
    from ttt.lora import reset_adapter, wrap_lora
    from ttt.models import load_model

    cfg = load_config(args.config, args.overrides)
    corpus = load_corpus(args.corpus)
    _, heldout, _ = choose_tasks(corpus, cfg.pretrain.max_grid_side, cfg.pretrain.heldout_tasks)
    model, tokenizer = load_model(cfg.model)
    model = wrap_lora(model, cfg.lora, args.adapter)
    reset_adapter(model, cfg.train.seed)
    start = time.monotonic()
    with Sandbox(cfg.sandbox) as sandbox:
        result = evaluate_prior(model, tokenizer, heldout, sandbox, cfg.solve, cfg.pretrain.eval_programs, cfg.run.seed)
    print(json.dumps({"adapter": args.adapter, **result, "seconds": round(time.monotonic() - start, 1)}))


if __name__ == "__main__":
    main()
