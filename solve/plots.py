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
    """Bars of the point means with each task's value as a dot: pass@2 left, NLL after TTT right."""
    plt = _pyplot()
    names = [r["point"] for r in rows]
    x = list(range(len(rows)))
    fig, axes = plt.subplots(1, 2, figsize=(max(8.0, 2.2 * len(rows) + 3), 4.2), constrained_layout=True)
    panels = (
        ("pass2", "score", "pass@2 (official scoring)", "tab:blue"),
        ("nll_after", "nll_after", "held-out NLL per token after TTT (lower is better)", "tab:orange"),
    )
    for ax, (metric, task_key, label, color) in zip(axes, panels):
        means = [r[metric] if r[metric] is not None else 0.0 for r in rows]
        ax.bar(x, means, color=color, alpha=0.45, width=0.6, label="mean over tasks")
        for xi, r in zip(x, rows):
            vals = [t[task_key] for t in per_task.get(r["point"], []) if t[task_key] is not None]
            offs = _jitter(len(vals))
            ax.scatter([xi + o for o in offs], vals, s=14, color="black", zorder=3,
                       label="one task" if xi == 0 else None)
            if r[metric] is None:
                ax.text(xi, 0, "n/a", ha="center", va="bottom", fontsize=8)
            else:
                ax.text(xi, r[metric], f"{r[metric]:.3g}", ha="center", va="bottom", fontsize=8, color="dimgray")
        if metric == "nll_after":
            before = [(xi, r["nll_before"]) for xi, r in zip(x, rows) if r["nll_before"] is not None]
            if before:
                ax.scatter([b[0] for b in before], [b[1] for b in before], marker="_", s=500, color="tab:red",
                           zorder=4, label="mean NLL before TTT")
        else:
            ax.set_ylim(-0.05, 1.05)
        ax.set_xticks(x, names, rotation=20, ha="right")
        ax.set_ylabel(label)
        ax.grid(axis="y", alpha=0.3)
        ax.legend(fontsize=7, loc="best")
    n_tasks = max((r["tasks"] for r in rows), default=0)
    fig.suptitle(f"{title} ({n_tasks} tasks)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


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
