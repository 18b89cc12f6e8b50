"""PNG plots for ablations and sweeps (matplotlib, Agg backend: no display needed).

matplotlib is imported inside each function: importing this module costs nothing, and commands that
never plot never pay for it. Each figure has two panels because pass@2 is often 0 for a small model:
the held-out NLL of the true test outputs after TTT still shows which setting trains better. With
several seeds (`plot_seeds`) a third and fourth panel show paired differences against the baseline.
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


def plot_seeds(
    rows: Sequence[dict[str, Any]],
    diffs: Sequence[dict[str, Any]],
    seed_rows: Sequence[dict[str, Any]],
    seed_diffs: Sequence[dict[str, Any]],
    fronts: dict[str, list[int]],
    path: Path,
    title: str,
    vs_time: bool,
) -> None:
    """An experiment run at several seeds. Top: pass@2 and NLL after TTT per point, mean +- std over
    seeds with each seed as a gray dot (against mean seconds per task for a sweep, Pareto front in red;
    by point for an ablation). Bottom: paired differences against the baseline (first point), mean +-
    std over seeds with each seed's difference as a dot; a bar crossing 0 is within seed noise."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(max(11.0, 1.6 * len(rows) + 6), 8.4), constrained_layout=True)
    for ax, (metric, label) in zip(axes[0], (("pass2", "pass@2 (higher is better)"),
                                            ("nll_after", "held-out NLL per token after TTT (lower is better)"))):
        if vs_time:
            _seed_panel_vs_time(ax, rows, seed_rows, fronts.get(metric, []), metric)
        else:
            _seed_panel(ax, [r["point"] for r in rows], rows, seed_rows, metric)
        ax.set_ylabel(label)
        if metric == "pass2":
            ax.set_ylim(-0.05, 1.05)
    base = diffs[0]["baseline"] if diffs else (rows[0]["point"] if rows else "")
    for ax, (metric, label) in zip(axes[1], (("pass2", "pass@2"), ("nll_after", "NLL after TTT"))):
        _seed_panel(ax, [d["point"] for d in diffs], diffs, seed_diffs, metric)
        ax.axhline(0.0, color="black", lw=0.8)
        ax.set_ylabel(f"paired difference in {label}\n(point - {base}, mean over tasks)")
    if axes[0][0].get_legend_handles_labels()[0]:
        axes[0][0].legend(fontsize=7, loc="best")
    n_seeds = max((r["seeds"] for r in rows), default=0)
    fig.suptitle(f"{title} ({n_seeds} seeds, mean +- std)")
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _seed_panel(ax: Any, names: list[str], rows: Sequence[dict[str, Any]], seed_rows: Sequence[dict[str, Any]], metric: str) -> None:
    """Per name on a categorical x axis: mean +- std as a diamond with error bar, each seed as a dot."""
    x = list(range(len(names)))
    for xi, r in zip(x, rows):
        vals = [s[metric] for s in seed_rows if s["point"] == r["point"] and s.get(metric) is not None]
        ax.scatter([xi + o for o in _jitter(len(vals))], vals, s=14, color="gray", zorder=2,
                   label="one seed" if xi == 0 else None)
        if r.get(metric) is not None:
            ax.errorbar([xi], [r[metric]], yerr=[r.get(f"{metric}_std") or 0.0], fmt="D", color="tab:blue", ms=7,
                        capsize=5, zorder=3, label="mean +- std over seeds" if xi == 0 else None)
            ax.annotate(f"{r[metric]:.3f}", (xi, r[metric]), textcoords="offset points", xytext=(9, -3), fontsize=8)
    if not any(r.get(metric) is not None for r in rows):
        ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
    ax.set_xticks(x, names, rotation=20, ha="right")
    ax.set_xlim(-0.6, max(len(names), 1) - 0.4)
    ax.grid(axis="y", alpha=0.3)


def _seed_panel_vs_time(ax: Any, rows: Sequence[dict[str, Any]], seed_rows: Sequence[dict[str, Any]], front: list[int],
                        metric: str) -> None:
    """Metric against mean seconds per task: each seed as a gray dot, each point's mean +- std (both axes)."""
    dots = [s for s in seed_rows if s.get(metric) is not None]
    ax.scatter([s["sec_mean"] for s in dots], [s[metric] for s in dots], s=12, color="lightgray", label="one seed")
    shown = [i for i, r in enumerate(rows) if r.get(metric) is not None]
    for i in shown:
        r = rows[i]
        ax.errorbar([r["sec_mean"]], [r[metric]], xerr=[r.get("sec_mean_std") or 0.0], yerr=[r.get(f"{metric}_std") or 0.0],
                    fmt="o", color="tab:blue", ms=6, capsize=4, label="mean +- std" if i == shown[0] else None)
        ax.annotate(_short(r["point"]), (r["sec_mean"], r[metric]), textcoords="offset points", xytext=(5, 5), fontsize=7)
    on = sorted(front, key=lambda i: rows[i]["sec_mean"])
    if on:
        ax.plot([rows[i]["sec_mean"] for i in on], [rows[i][metric] for i in on], "-o", color="tab:red", ms=4,
                drawstyle="steps-post", label="Pareto front (means)", zorder=1)
    if not shown:
        ax.text(0.5, 0.5, "not available (no known test outputs)", ha="center", va="center", transform=ax.transAxes)
    ax.set_xlabel("mean seconds per task")
    ax.grid(alpha=0.3)
