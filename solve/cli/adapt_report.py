"""`arc-ttt adapt`'s report as a terminal table: losses, a loss sparkline, NLL before and after."""

from __future__ import annotations

import io
from typing import Any, Sequence

SPARK = "▁▂▃▄▅▆▇█"


def sparkline(values: Sequence[float]) -> str:
    if not values:
        return ""
    lo, hi = min(values), max(values)
    span = (hi - lo) or 1.0
    return "".join(SPARK[min(len(SPARK) - 1, int((v - lo) / span * len(SPARK)))] for v in values)


def _fmt(values: Sequence[float]) -> str:
    return ", ".join(f"{v:.3f}" for v in values) if values else "-"


def render_adapt_report(report: dict[str, Any], width: int = 120) -> str:
    """The report as a rich table (plain text, no color codes) for a terminal."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"TTT on task {report['task']} ({report['model']})", show_header=True)
    for col in ("run", "steps", "stop", "s", "tok/s", "loss first→last", "loss curve", "NLL before", "NLL after"):
        table.add_column(col, no_wrap=col in ("run", "loss curve"))
    runs = [("test", report)] + [(f"pair {h['pair']} out", h) for h in report.get("holdout", [])]
    for name, r in runs:
        losses = r["losses"]
        table.add_row(
            name,
            str(r["steps"]),
            r["stopped_by"],
            f"{r['seconds']:.1f}",
            f"{r['tokens_per_s']:.0f}",
            f"{losses[0]:.3f}→{losses[-1]:.3f}" if losses else "-",
            sparkline(losses),
            _fmt(r["nll_before"]),
            _fmt(r["nll_after"]),
        )
    console = Console(file=io.StringIO(), width=width, color_system=None)
    console.print(table)
    s = report["samples"]
    console.print(
        f"trainable params {report['trainable_params']:,}; samples kept {s['kept']}/{s['given']} "
        f"(shortened {s['shortened']}, dropped {s['dropped']}); load {report['load_s']:.1f}s, total {report['total_s']:.1f}s"
    )
    return console.file.getvalue()
