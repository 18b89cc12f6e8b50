"""Peak host RAM of a per_gpu start: N workers loading the model at once, or one at a time
(`placement.stagger_starts`).

    nice -n 10 .venv/bin/python bench/per_gpu_start_ram.py                  # 4 CPU workers, Qwen2.5-0.5B shape
    python bench/per_gpu_start_ram.py --set model.source=/kaggle/input/arc-ttt-model --set model.device=auto  # GPUs

Each row starts the workers of `--config` (per_gpu, `--workers` of them) in this process, as `arc-ttt run`
does, and stops them once every worker is ready (solve.placement.per_gpu.start_workers_only). Every 50 ms
it sums the memory of this process and all its descendants (workers and their sandbox pools): RSS (what
the issue asks for; pages shared between processes, such as a mmapped checkpoint, count once per process)
and PSS (shared pages split among their sharers: what the processes hold together). Peak = the largest sum
from launch until the last worker reported its model loaded. Load paths: `random` builds the random model
in place (`model.source=random:<preset>`); `checkpoint` first saves that model as a HF directory and loads
it with from_pretrained, the path a real model takes (its transient copies are what staggering spreads out).
On a CPU the loaded models themselves stay in host RAM, so N of them are there either way; on GPUs only the
load's transient is in host RAM.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import threading
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
GIB = 2**30


class TreeMemory:
    """Samples the summed RSS and PSS of this process and its descendants every `interval_s` seconds."""

    def __init__(self, interval_s: float = 0.05):
        self.interval_s = interval_s
        self.samples: list[tuple[float, int, int]] = []  # (time.time(), rss bytes, pss bytes)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> TreeMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        me = psutil.Process()
        while not self._stop.is_set():
            rss = pss = 0
            for proc in [me, *me.children(recursive=True)]:
                try:
                    info = proc.memory_full_info()  # smaps_rollup: rss and pss
                except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
                    continue
                rss += info.rss
                pss += getattr(info, "pss", info.rss)
            self.samples.append((time.time(), rss, pss))
            self._stop.wait(self.interval_s)

    def peak(self, until: float) -> tuple[float, float]:
        """(peak RSS, peak PSS) in GiB over the samples taken up to `until` (time.time())."""
        kept = [s for s in self.samples if s[0] <= until] or self.samples[:1]
        return max(s[1] for s in kept) / GIB, max(s[2] for s in kept) / GIB


def save_checkpoint(cfg, out: Path) -> str:
    """Save `cfg.model`'s random model (with its tokenizer) as a HF directory under `out`; its path."""
    from ttt.models import load_model

    model, tokenizer = load_model(cfg.model.model_copy(update={"device": "cpu"}))
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    del model
    return str(out)


def measure(cfg, stagger: bool, load: str) -> dict:
    from rich.console import Console

    from solve.placement.per_gpu import start_workers_only

    cfg = cfg.model_copy(update={"placement": cfg.placement.model_copy(update={"stagger_starts": stagger})})
    out = Path(tempfile.mkdtemp(prefix="per-gpu-start-"))
    try:
        with TreeMemory() as mem:
            launch = time.time()
            slots = start_workers_only(cfg, out, Console(stderr=True))
        ends = [s.loads[-1][1] for s in slots if s.loads]
        loaded = len(ends) == len(slots) and all(s.state != "retired" for s in slots)
        until = max(ends) if ends else time.time()
        rss, pss = mem.peak(until)
        held = [s[1] for s in mem.samples if s[0] <= until][-1:] or [0]
        each = [end - start for s in slots for start, end in s.loads]
        return {"workers": len(slots), "stagger": stagger, "load": load, "peak_rss_gib": rss, "peak_pss_gib": pss,
                "rss_at_loaded_gib": held[0] / GIB, "seconds": until - launch, "load_s": sum(each) / max(1, len(each)),
                "all_loaded": loaded}
    finally:
        shutil.rmtree(out, ignore_errors=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default=str(ROOT / "configs" / "kaggle-l4x4.yaml"))
    p.add_argument("--set", action="append", default=[], help="config override (repeatable)")
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--source", default="random:qwen2.5-0.5b", help="model.source unless --set gives one")
    p.add_argument("--loads", default="random,checkpoint", help="load paths to measure (random: source as is)")
    args = p.parse_args()
    from solve.pipeline.runconfig import load_config

    sets = [f"model.source={args.source}", "model.device=cpu", "placement.mode=per_gpu",
            f"placement.workers={args.workers}", *args.set]
    cfg = load_config(args.config, sets)
    rows = []
    for load in args.loads.split(","):
        tmp = None
        run_cfg = cfg
        if load == "checkpoint":
            tmp = Path(tempfile.mkdtemp(prefix="per-gpu-start-model-"))
            source = save_checkpoint(cfg, tmp / "model")
            run_cfg = cfg.model_copy(update={"model": cfg.model.model_copy(update={"source": source})})
        try:
            for stagger in (False, True):
                rows.append(measure(run_cfg, stagger, load))
                print(rows[-1], flush=True)
        finally:
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n{cfg.model.source}, dtype {cfg.model.dtype}, device {cfg.model.device}\n")
    print("| workers | load | stagger | peak host RSS (GiB) | peak host PSS (GiB) | RSS when all loaded (GiB) | s to all loaded "
          "| s per load (mean) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        flag = "" if r["all_loaded"] else " (not all loaded)"
        print(f"| {r['workers']} | {r['load']} | {'on' if r['stagger'] else 'off'} | {r['peak_rss_gib']:.2f} | "
              f"{r['peak_pss_gib']:.2f} | {r['rss_at_loaded_gib']:.2f} | {r['seconds']:.1f}{flag} | {r['load_s']:.1f} |")


if __name__ == "__main__":
    main()
