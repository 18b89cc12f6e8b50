"""PNG plots for ablations and sweeps (matplotlib, Agg backend: no display needed).

matplotlib is imported inside each function: importing this module costs nothing, and commands that
never plot never pay for it. Each figure has two panels because pass@2 is often 0 for a small model:
the held-out NLL of the true test outputs after TTT still shows which setting trains better.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # headless; must precede the pyplot import
    import matplotlib.pyplot as plt

    return plt


def _jitter(n: int, width: float = 0.25) -> list[float]:
    # Deterministic spread so identical per-task values (e.g. many 0 scores) stay visible side by side.
    return [0.0] if n == 1 else [-width / 2 + width * i / (n - 1) for i in range(n)]


def plot_ablation(rows: Sequence[dict[str, Any]], per_task: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    """Left: pass@2 bars with each task as a dot. Right: NLL after TTT, mean +- standard error with each
    task as a dot and the mean before TTT as a red tick (no bars: NLL differences are small next to
    its size, and a bar from zero would hide them)."""
    plt = _pyplot()
    names = [r["point"] for r in rows]
    x = list(range(len(rows)))
    fig, (left, right) = plt.subplots(1, 2, figsize=(max(9.0, 2.0 * len(rows) + 4), 4.4), constrained_layout=True)

    left.bar(x, [r["pass2"] or 0.0 for r in rows], color="tab:blue", alpha=0.45, width=0.6, label="mean over tasks")
    for xi, r in zip(x, rows):
        vals = [t["score"] for t in per_task.get(r["point"], []) if t["score"] is not None]
        left.scatter([xi + o for o in _jitter(len(vals))], vals, s=14, color="black", zorder=3,
                     label="one task" if xi == 0 else None)
        left.text(xi, (r["pass2"] or 0.0) + 0.02, "n/a" if r["pass2"] is None else f"{r['pass2']:.2f}",
                  ha="center", va="bottom", fontsize=8)
    left.set_ylim(-0.05, 1.05)
    left.set_ylabel("pass@2 (official scoring)")

    for xi, r in zip(x, rows):
        vals = [t["nll_after"] for t in per_task.get(r["point"], []) if t["nll_after"] is not None]
        right.scatter([xi + o for o in _jitter(len(vals))], vals, s=14, color="gray", zorder=2,
                      label="one task, after" if xi == 0 else None)
        if r["nll_after"] is not None:
            se = _stderr(vals)
            right.errorbar([xi], [r["nll_after"]], yerr=[se], fmt="D", color="tab:orange", ms=7, capsize=5, zorder=3,
                           label="mean after TTT (+- s.e.)" if xi == 0 else None)
            right.annotate(f"{r['nll_after']:.3f}", (xi, r["nll_after"]), textcoords="offset points", xytext=(9, -3),
                           fontsize=8)
        if r["nll_before"] is not None:
            right.scatter([xi], [r["nll_before"]], marker="_", s=600, color="tab:red", zorder=4,
                          label="mean before TTT" if xi == 0 else None)
    if all(r["nll_after"] is None for r in rows):
        right.text(0.5, 0.5, "not available (no known test outputs)", ha="center", va="center", transform=right.transAxes)
    right.set_ylabel("held-out NLL per token (lower is better)")
    for ax in (left, right):
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_xlim(-0.6, len(rows) - 0.4)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    n_tasks = max((r["tasks"] for r in rows), default=0)
    fig.suptitle(f"{title} ({n_tasks} tasks)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _stderr(vals: Sequence[float]) -> float:
    if len(vals) < 2:
        return 0.0
    mean = sum(vals) / len(vals)
    return (sum((v - mean) ** 2 for v in vals) / (len(vals) - 1) / len(vals)) ** 0.5


def plot_sweep(rows: Sequence[dict[str, Any]], fronts: dict[str, list[int]], path: Path, title: str) -> None:
    """pass@2 and NLL after TTT against mean seconds per task; the Pareto front joined and highlighted."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.4), constrained_layout=True)
    panels = (
        ("pass2", "pass@2 (higher is better)"),
        ("nll_after", "held-out NLL per token after TTT (lower is better)"),
    )
    xs = [r["sec_mean"] for r in rows]
    for ax, (metric, label) in zip(axes, panels):
        ys = [r[metric] for r in rows]
        front = set(fronts.get(metric, []))
        shown = [i for i, y in enumerate(ys) if y is not None]
        if not shown:
            ax.text(0.5, 0.5, "not available (no known test outputs)", ha="center", va="center", transform=ax.transAxes)
        others = [i for i in shown if i not in front]
        ax.scatter([xs[i] for i in others], [ys[i] for i in others], s=40, facecolors="none", edgecolors="gray",
                   label="point")
        on = sorted(front, key=lambda i: xs[i])
        if on:
            ax.plot([xs[i] for i in on], [ys[i] for i in on], "-o", color="tab:red", ms=7, drawstyle="steps-post",
                    label="Pareto front")
        for i in shown:
            ax.annotate(_short(rows[i]["point"]), (xs[i], ys[i]), textcoords="offset points", xytext=(5, 5), fontsize=7)
        ax.set_xlabel("mean seconds per task")
        ax.set_ylabel(label)
        if metric == "pass2":
            ax.set_ylim(-0.05, 1.05)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    fig.suptitle(title)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _short(name: str) -> str:
    # 'train.steps=8,lora.r=4' -> 'steps=8 r=4': the section is in the title, the value is what matters.
    out = []
    for part in name.split(","):
        key, sep, value = part.partition("=")
        out.append(f"{key.rsplit('.', 1)[-1]}={value}" if sep else part)
    return " ".join(out)
