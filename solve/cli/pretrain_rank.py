"""One rank of `arc-ttt pretrain` under `placement.mode: deepspeed` (started by the deepspeed launcher
that `arc-ttt pretrain` runs; see solve.cli.prior): data-parallel LoRA pretraining with ZeRO-2.

    python -m deepspeed.launcher.runner --num_gpus N --no_local_rank --module solve.cli.pretrain_rank \\
        --config CONFIG --corpus DIR [--corpus DIR2 ...] --out MODEL_DIR [--stop-after K]
"""

from __future__ import annotations

import argparse
import os
import sys

from rich.console import Console


def main(argv: list[str] | None = None) -> int:
    import torch

    from solve.pipeline.runconfig import load_config
    from solve.placement.ds_rank import init_ranks
    from solve.pretrain.data import CorpusError
    from solve.pretrain.recipe import PretrainError, pretrain

    ap = argparse.ArgumentParser(prog="solve.cli.pretrain_rank", description=__doc__.splitlines()[0])
    ap.add_argument("--config", required=True)
    ap.add_argument("--corpus", action="append", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--stop-after", type=int, default=None)
    ap.add_argument("--command", default=None, help="the user's command, for the model card")
    args = ap.parse_args(argv)
    cfg = load_config(args.config, [])
    rank, world, local_rank, _ = init_ranks(cfg.placement.collective_timeout_s)
    cuda = torch.cuda.is_available()
    if not cuda:  # ranks share the host's cores
        torch.set_num_threads(max(1, len(os.sched_getaffinity(0)) // int(os.environ.get("LOCAL_WORLD_SIZE", world))))
    else:
        torch.cuda.set_device(local_rank)
    console = Console(stderr=True)
    try:
        pretrain(cfg, args.corpus, args.out, console, progress=rank == 0 and sys.stderr.isatty(), stop_after=args.stop_after,
                 zero_stage=cfg.placement.zero_stage, device=f"cuda:{local_rank}" if cuda else "cpu", command=args.command)
    except (CorpusError, PretrainError) as e:
        console.print(f"[red]error[/] (rank {rank}): {e}")
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
