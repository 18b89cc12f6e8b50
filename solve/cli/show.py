"""`arc-ttt show RUN_DIR TASK_ID`: one task's story in the terminal, from what the run saved.

Reads the task's record (DIR/results.jsonl) and its artifacts (DIR/tasks/<task_id>.json, written with
`run.save_candidates`): the train pairs and test inputs as colored grids, the programs the model wrote
with their train accuracy, the grid candidates with their scores, the chosen attempts and why, and the
truth when the run knew it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Sequence

import numpy as np
import typer
from rich.markup import escape
from rich.text import Text

from solve.cli.common import console, fail


def _grid(value: Any) -> np.ndarray:
    return np.asarray(value, dtype=np.uint8)


def _same(a: Any, b: Any) -> bool:
    return a is not None and b is not None and np.array_equal(_grid(a), _grid(b))


def _mark(grid: Any, truth: Any) -> str:
    """' ✓' / ' ✗' against the truth, '' when the truth is unknown."""
    if truth is None:
        return ""
    return " ✓" if _same(grid, truth) else " ✗"


def reason_text(reason: dict[str, Any]) -> str:
    """A vote reason (solve.select.vote) in a few words."""
    tier = reason.get("tier", "?")
    if tier in ("verified", "partial"):
        return (
            f"{tier} program(s) {', '.join(reason.get('programs', []))}: votes {reason.get('votes')}, "
            f"train accuracy {reason.get('train_accuracy')}, views {', '.join(reason.get('views', []))}"
        )
    if tier == "extra":
        return f"grid candidate #{reason.get('rank')}: {reason.get('source')}"
    if tier == "placeholder":
        return f"placeholder ({reason.get('kind')}): nothing better was found"
    return str(reason)


def _last_record(run_dir: Path, task_id: str) -> dict[str, Any] | None:
    from solve.pipeline.rundir import read_results

    found = [r for r in read_results(run_dir / "results.jsonl") if r.get("task_id") == task_id]
    return found[-1] if found else None  # a resumed run appends: the last record wins


def _header(record: dict[str, Any] | None, task_id: str) -> None:
    if record is None:
        console.rule(f"task {task_id}: no record in results.jsonl")
        return
    score = "unknown (no solutions)" if record.get("score") is None else f"{record['score']:.2f}"
    console.rule(f"task {task_id}: {record.get('status')}, score {score}, {record.get('seconds', 0):.1f} s")
    parts = []
    for name, info in record.get("stages", {}).items():
        extra = ""
        if name == "ttt" and info.get("loss_first") is not None:
            extra = f" ({info.get('steps')} steps, loss {info['loss_first']:.3f}→{info['loss_last']:.3f})"
        parts.append(f"{name} {info.get('seconds', 0):.2f}s{extra}")
    console.print("stages: " + " · ".join(parts), highlight=False)
    if record.get("error"):
        e = record["error"]
        console.print(f"[red]error in {e['stage']}:[/] {e['type']}: {escape(e['message'][:300])}", highlight=False)


def _task_grids(task: dict[str, Any]) -> None:
    from augment.render import grids_row

    console.rule("train pairs")
    for i, pair in enumerate(task["train"]):
        console.print(grids_row([(f"train {i} in", _grid(pair["input"])), (f"train {i} out", _grid(pair["output"]))]))
    console.rule("test inputs")
    for i, item in enumerate(task["test"]):
        shown = [(f"test {i} in", _grid(item["input"]))]
        if "output" in item:
            shown.append((f"test {i} truth", _grid(item["output"])))
        console.print(grids_row(shown))


def _programs(programs: Sequence[dict[str, Any]], limit: int, source_lines: int) -> None:
    from rich.table import Table

    parsed = [p for p in programs if p.get("source") is not None and p.get("origin") != "dsl"]
    dsl = sum(p.get("origin") == "dsl" for p in programs)
    console.rule(f"programs: {len(programs) - dsl} sampled, {len(parsed)} extracted" + (f", {dsl} from the DSL search" if dsl else ""))
    if not programs:
        return
    # Best first: verified, then by train accuracy; texts without a program last, in sampling order.
    ranked = sorted(enumerate(programs), key=lambda ip: (ip[1].get("source") is None, -ip[1].get("train_accuracy", -1.0), ip[0]))
    table = Table(show_lines=True)
    for col in ("id", "view", "train", "error", "source (or what was written)"):
        table.add_column(col, overflow="fold")
    for _, p in ranked[: limit or len(ranked)]:
        body = p.get("source") if p.get("source") is not None else f"[no program extracted]\n{p.get('text') or ''}"
        lines = body.splitlines()
        snippet = "\n".join(lines[:source_lines]) + (f"\n... ({len(lines) - source_lines} more lines)" if len(lines) > source_lines else "")
        train = "" if "train_total" not in p else f"{p['train_correct']}/{p['train_total']}" + (" verified" if p.get("verified") else "")
        dup = f" (= {p['duplicate_of']})" if p.get("duplicate_of") else ""
        # Text, not markup: what a model writes may contain [brackets] that rich would take for styles.
        origin = f"\n(dsl {p.get('kind', '')})" if p.get("origin") == "dsl" else ""
        table.add_row(f"{p.get('id') or '-'}{dup}{origin}", p["view"], train, p.get("error") or "", Text(snippet))
    console.print(table)


def _grid_candidates(data: dict[str, Any], truths: Sequence[Any], limit: int) -> None:
    from augment.render import grids_row

    guesses = data.get("grids", [])
    console.rule(f"grid predictions: {len(guesses)}, {sum(g['grid'] is not None for g in guesses)} parsed")
    for g in guesses:
        if g["grid"] is None:
            console.print(f"test {g['test_index']} under {g['view']}: unparsed ({escape(g['error'])})", highlight=False)
    for i, cands in enumerate(data.get("candidates", [])):
        truth = truths[i] if i < len(truths) else None
        shown = cands[: limit or len(cands)]
        console.print(f"test {i}: {len(cands)} distinct candidate(s), product-of-experts over views {', '.join(data.get('score_views', []))}")
        for k, c in enumerate(shown):
            per_view = ", ".join(f"{v} {x:.2f}" for v, x in c.get("per_view", {}).items())
            console.print(f"  #{k}: score {c['score']:.2f} ({per_view}); predicted under {', '.join(c['views'])}{_mark(c['grid'], truth)}",
                          highlight=False)
        if shown:
            console.print(grids_row([(f"#{k} {c['score']:.2f}{_mark(c['grid'], truth)}", _grid(c["grid"])) for k, c in enumerate(shown)]))


def _attempts(record: dict[str, Any], truths: Sequence[Any]) -> None:
    from augment.render import grids_row

    console.rule("chosen attempts")
    for i, (att, reasons) in enumerate(zip(record.get("attempts", []), record.get("reasons", []))):
        truth = truths[i] if i < len(truths) else None
        shown = [(f"test {i} {key}{_mark(att[key], truth)}", _grid(att[key])) for key in ("attempt_1", "attempt_2")]
        if truth is not None:
            shown.append((f"test {i} truth", _grid(truth)))
        console.print(grids_row(shown))
        for key, reason in zip(("attempt_1", "attempt_2"), reasons):
            console.print(f"  {key}: {reason_text(reason)}", highlight=False)


def show(
    run_dir: Annotated[Path, typer.Argument(help="run directory (of `arc-ttt run`)")],
    task_id: Annotated[str, typer.Argument(help="task id")],
    programs: Annotated[int, typer.Option(help="programs to list, best first (0 = all)")] = 10,
    candidates: Annotated[int, typer.Option(help="grid candidates to list per test input (0 = all)")] = 5,
    source_lines: Annotated[int, typer.Option(help="lines of each program to print")] = 12,
) -> None:
    """One task's story: its grids, the programs and grid candidates the model produced with their
    scores, the chosen attempts and why, and the truth when known."""
    from solve.pipeline.artifacts import artifacts_path, read_artifacts

    if not run_dir.is_dir():
        raise fail(f"{run_dir}: not a directory")
    record = _last_record(run_dir, task_id)
    data = read_artifacts(run_dir, task_id)
    if record is None and data is None:
        raise fail(f"{run_dir}: no task {task_id!r} (neither in results.jsonl nor in {artifacts_path(run_dir, task_id).parent})")
    _header(record, task_id)
    if data is None:
        console.print(f"[yellow]no candidates saved[/] ({artifacts_path(run_dir, task_id)} is missing: run.save_candidates was off, "
                      "or the placement does not save them); attempts and reasons only")
        truths: list[Any] = []
    else:
        truths = [item.get("output") for item in data["task"]["test"]]
        _task_grids(data["task"])
        _programs(data.get("programs", []), programs, source_lines)
        _grid_candidates(data, truths, candidates)
        for note in data.get("truncated", []):
            console.print(f"[yellow]note:[/] {note}")
    if record is not None:
        _attempts(record, truths)
