"""Summaries of finished task records: the end-of-run table, report.md, and numbers for ablations."""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np


def _stat(values: Sequence[float]) -> dict[str, float]:
    if not values:
        return {"mean": 0.0, "p90": 0.0}
    return {"mean": float(np.mean(values)), "p90": float(np.percentile(values, 90))}


def verified_programs(record: dict[str, Any]) -> int:
    """A task's verified programs, the DSL search's included: after its search rounds when they ran
    (solve.rounds > 0; the rounds count every program), else the first verification's plus the DSL
    search's (0 without either)."""
    stages = record.get("stages", {})
    if "verified" in stages.get("search", {}):
        return int(stages["search"]["verified"])
    return int(stages.get("verify", {}).get("verified", 0)) + dsl_verified(record)


def dsl_verified(record: dict[str, Any]) -> int:
    """The task's programs from the DSL search that verified in the sandbox (0 without the stage)."""
    return int(record.get("stages", {}).get("dsl_search", {}).get("verified", 0))


def verified_cell(record: dict[str, Any]) -> str:
    """The verified-programs cell of the run tables: "3" or, with the DSL search, "3 (dsl 1)"; "" when
    nothing was verified because no program stage ran."""
    st = record.get("stages", {})
    if "verified" not in st.get("verify", {}) and "verified" not in st.get("dsl_search", {}):
        return ""
    n = verified_programs(record)
    return f"{n} (dsl {dsl_verified(record)})" if "dsl_search" in st and "verified" in st["dsl_search"] else str(n)


def task_line(record: dict[str, Any]) -> str:
    """One line for a finished task (printed as the run goes): status, score, time, verified programs
    and, when the DSL search verified one, its first program."""
    score = "" if record.get("score") is None else f"score {record['score']:.2f}, "
    line = f"{record['task_id']}: {record['status']}, {score}{record.get('seconds', 0):.0f} s"
    cell = verified_cell(record)
    if cell:
        line += f", verified programs {cell}"
    found = record.get("stages", {}).get("dsl_search", {}).get("programs") or []
    if found and dsl_verified(record):
        line += f": {found[0]}"
    return line


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Score, failures, time per stage (mean and p90 seconds) and counts over task records."""
    scored = [r["score"] for r in records if r.get("score") is not None]
    outputs, outputs_solved = test_output_counts(records)
    stages: dict[str, list[float]] = {}
    for r in records:
        for name, info in r.get("stages", {}).items():
            stages.setdefault(name, []).append(float(info.get("seconds", 0.0)))
    verified = [verified_programs(r) for r in records]
    ttt = [r["stages"].get("ttt", {}) for r in records]
    nll = [t["nll_after"] for t in ttt if t.get("nll_after") is not None]
    nll0 = [t["nll_before"] for t in ttt if t.get("nll_before") is not None]
    loo = [r["stages"]["loo_eval"]["nll_after"] for r in records if r.get("stages", {}).get("loo_eval", {}).get("nll_after") is not None]
    return {
        "tasks": len(records),
        "failed": sum(r.get("status") == "failed" for r in records),
        "deadline": sum(r.get("status") == "deadline" for r in records),
        "scored_tasks": len(scored),
        "score": float(np.mean(scored)) if scored else None,  # Kaggle's metric: the mean over tasks
        "solved": sum(s == 1.0 for s in scored),
        "test_outputs": outputs,  # test outputs of the scored tasks
        "test_outputs_solved": outputs_solved,  # ... that either attempt got exactly right
        "test_output_fraction": outputs_solved / outputs if outputs else None,
        "seconds_per_task": _stat([float(r.get("seconds", 0.0)) for r in records]),
        "stages": {k: _stat(v) for k, v in stages.items()},
        "programs_verified_per_task": float(np.mean(verified)) if verified else 0.0,
        "tasks_with_verified_program": sum(v > 0 for v in verified),
        "frac_tasks_with_verified_program": float(np.mean([v > 0 for v in verified])) if verified else 0.0,
        "ttt_steps_mean": float(np.mean([t.get("steps", 0) for t in ttt])) if ttt else 0.0,
        "heldout_nll_before": float(np.mean(nll0)) if nll0 else None,
        "heldout_nll_after": float(np.mean(nll)) if nll else None,
        "loo_nll_after": float(np.mean(loo)) if loo else None,  # only with run.eval_loo_nll
        "heldout_nll_tasks": len(nll),  # tasks whose test outputs were known and scored (the NLL means cover only these)
    }


def test_output_counts(records: Sequence[dict[str, Any]]) -> tuple[int, int]:
    """(test outputs, test outputs solved) over the scored records: a record's score is the fraction
    of its test inputs solved and it has one attempts entry per test input."""
    total = solved = 0
    for r in records:
        if r.get("score") is not None:
            n = len(r.get("attempts") or [])
            total += n
            solved += round(r["score"] * n)
    return total, solved


def score_line(s: dict[str, Any]) -> str:
    """Both views of the score: the mean over tasks (the metric) and the fraction of test outputs solved."""
    if s["score"] is None:
        return "n/a (no solutions)"
    return (
        f"{s['score']:.4f} mean over tasks ({s['solved']}/{s['scored_tasks']} tasks solved); "
        f"test outputs solved: {s['test_outputs_solved']}/{s['test_outputs']} ({_fmt(s['test_output_fraction'])})"
    )


def _fmt(v: float | None) -> str:
    return "n/a" if v is None else f"{v:.3f}"


def isolation_line(isolation: dict[str, str] | None) -> str:
    """The report's line on what confined generated programs (`Sandbox.isolation`)."""
    if not isolation:
        return "- program sandbox isolation: not recorded"
    return "- program sandbox isolation: " + ", ".join(f"{k} {v}" for k, v in isolation.items())


def report_markdown(records: Sequence[dict[str, Any]], title: str = "arc-ttt run", isolation: dict[str, str] | None = None) -> str:
    s = summarize(records)
    score = score_line(s)
    lines = [
        f"# {title}",
        "",
        f"- tasks: {s['tasks']} (failed: {s['failed']}, out of time: {s['deadline']})",
        f"- score: {score}",
        f"- seconds per task: mean {s['seconds_per_task']['mean']:.1f}, p90 {s['seconds_per_task']['p90']:.1f}",
        f"- programs verified per task: {s['programs_verified_per_task']:.2f}; tasks with a verified program: "
        f"{s['tasks_with_verified_program']}",
        f"- held-out NLL of true test outputs (per token): before TTT {_fmt(s['heldout_nll_before'])}, after {_fmt(s['heldout_nll_after'])}",
        isolation_line(isolation),
        "",
        "| stage | mean s | p90 s |",
        "|---|---|---|",
    ]
    lines += [f"| {k} | {v['mean']:.2f} | {v['p90']:.2f} |" for k, v in s["stages"].items()]
    lines += ["", "| task | status | score | seconds | ttt steps | loss first -> last | programs verified | error |", "|---|---|---|---|---|---|---|---|"]
    for r in records:
        t = r.get("stages", {}).get("ttt", {})
        loss = f"{t['loss_first']:.3f} -> {t['loss_last']:.3f}" if t.get("loss_first") is not None else ""
        err = r["error"]["stage"] + ": " + r["error"]["type"] if r.get("error") else ""
        score_cell = "" if r.get("score") is None else f"{r['score']:.2f}"
        verified = verified_cell(r)
        lines.append(f"| {r['task_id']} | {r['status']} | {score_cell} | {r.get('seconds', 0):.1f} | {t.get('steps', '')} | {loss} | {verified} | {err} |")
    return "\n".join(lines) + "\n"
