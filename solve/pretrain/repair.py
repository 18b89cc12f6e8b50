"""Repair samples: a known program, broken by one change, shown as test-time search shows a wrong program.

Test-time search revises wrong programs (`solve.pipeline.search`: a refinement prompt shows one program
and its outcome on every train pair, `ttt.prompts.fit_revision_prompt`). A prior trained only on
code-from-examples has never seen that prompt. A repair sample teaches it: take a task whose program is
known (a synthetic corpus, or `arc-ttt dsl corpus`), change ONE thing in the program, run the mutant in
the real sandbox (`solve.sandbox.verify`, so each pair's outcome is exactly what inference shows), and
train on the refinement prompt showing the mutant, whose answer is the original program.

Mutations (`MUTATIONS`), on the program's straight-line `name = prim(args)` lines (parsed from its
source; every corpus program has that form):
  - "primitive": the call's primitive replaced by another registry primitive of the same signature
    (parameter types and result type);
  - "constant": one constant argument, by its parameter's type: a colour to another colour of the task's
    palette (every colour in its grids), an Int/Index/Offset by +-1, a Bool flipped, a direction or named
    choice to another of `CHOICES` (`PARAM_CHOICES` where the parameter takes fewer), one entry of a
    colour map to another palette colour;
  - "drop": a grid-valued step removed; later uses of its result use its first grid argument instead
    (not in a program of one grid step: that would leave `return g`).
Only the changed lines are rewritten (`ast.unparse` of the statement), so a mutant reads like its
original. A mutant is kept when inference could show it in a refinement prompt: it returned a grid on at
least one train pair, is wrong on at least one (a mutant that still verifies is no repair), and is no
lookup table. Tasks whose original program does not verify in the sandbox give no samples.

Which mutants a task gets is a pure function of (seed, the task's index): the candidates of each kind
are shuffled with `numpy.random.default_rng([seed, index])` and interleaved kind by kind (the first kind
drawn too), then run in that order until `per_task` are kept.
"""

from __future__ import annotations

import ast
import hashlib
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from augment.tasks import Task
from solve.dsl.registry import BOOL, CHOICES, COLOR, COLOR_MAP, GRID, INDEX, INT, OFFSET, PARAM_CHOICES, Primitive, by_name
from solve.pipeline.search import attempted
from solve.pretrain.data import Example
from solve.sandbox.programs import normalize_source
from solve.sandbox.verify import Candidate, ProgramResult, verify
from ttt.prompts import program_answer

MUTATIONS = ("primitive", "constant", "drop")
BATCH = 4  # mutants run per kept sample asked for, per sandbox call


@dataclass(frozen=True)
class Mutant:
    kind: str  # one of MUTATIONS
    what: str  # the change, for people: "line 3: flip_h -> flip_v"
    source: str


@dataclass
class RepairCounts:
    """What making repair samples did, for the pretrain report and model card."""

    per_task: int = 0  # samples asked per task
    tasks: int = 0
    tasks_with_repairs: int = 0
    original_not_verified: int = 0  # tasks skipped: their own program did not verify in the sandbox
    candidates: int = 0  # mutants the tasks' programs allow
    run: int = 0  # mutants run in the sandbox
    kept: Counter = field(default_factory=Counter)  # mutation kind -> samples kept
    still_verified: int = 0  # discarded: right on every train pair
    no_grid: int = 0  # discarded: no grid on any train pair (an error everywhere)
    lookup: int = 0  # discarded: a lookup table

    def to_dict(self) -> dict[str, Any]:
        return {"repairs_per_task": self.per_task, "tasks": self.tasks, "tasks_with_repairs": self.tasks_with_repairs, "original_not_verified": self.original_not_verified,
                "candidates": self.candidates, "run": self.run, "kept": sum(self.kept.values()),
                "kept_by_kind": {k: self.kept[k] for k in MUTATIONS}, "still_verified": self.still_verified,
                "no_grid": self.no_grid, "lookup": self.lookup}


@dataclass(frozen=True)
class _Line:
    """One `name = prim(args)` statement of the program."""

    stmt: ast.Assign
    target: str
    prim: Primitive | None  # None: not a registry primitive (e.g. to_array)


def _lines(tree: ast.Module) -> list[_Line]:
    fn = next((n for n in tree.body if isinstance(n, ast.FunctionDef) and n.name == "transform"), None)
    if fn is None:
        return []
    registry = by_name()
    out = []
    for stmt in fn.body:
        if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                and isinstance(stmt.value, ast.Call) and isinstance(stmt.value.func, ast.Name)):
            out.append(_Line(stmt, stmt.targets[0].id, registry.get(stmt.value.func.id)))
    return out


def _param(prim: Primitive, call: ast.Call, node: ast.expr) -> tuple[str, str] | None:
    """(parameter name, type) of an argument node of `call`."""
    for j, a in enumerate(call.args):
        if a is node:
            return (prim.params[j].name, prim.params[j].type) if j < len(prim.params) else None
    for kw in call.keywords:
        if kw.value is node:
            p = next((p for p in prim.params if p.name == kw.arg), None)
            return (p.name, p.type) if p else None
    return None


def palette(task: Task) -> tuple[int, ...]:
    """Every colour in the task's grids (train inputs and outputs, test inputs), sorted."""
    grids = [g for p in task.train for g in (p.input, p.output)] + list(task.test_inputs)
    return tuple(sorted({int(v) for g in grids for v in np.unique(g)}))


def _alternatives(prim: str, name: str, type_: str, value: Any, colors: tuple[int, ...]) -> list[Any]:
    """The values one constant may change to (none for types not mutated)."""
    if (prim, name) in PARAM_CHOICES:
        return [v for v in PARAM_CHOICES[(prim, name)] if v != value]
    if type_ == COLOR and isinstance(value, int):
        others = [c for c in colors if c != value]
        return others or [c for c in range(10) if c != value]
    if type_ in (INT, INDEX, OFFSET) and isinstance(value, int) and not isinstance(value, bool):
        return [value - 1, value + 1]
    if type_ == BOOL and isinstance(value, bool):
        return [not value]
    if type_ in CHOICES:
        return [v for v in CHOICES[type_] if v != value]
    if type_ == COLOR_MAP and isinstance(value, dict):
        return [{**value, k: c} for k in value for c in colors if c != value[k]]
    return []


def _literal(node: ast.expr) -> tuple[bool, Any]:
    try:
        return True, ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return False, None


def _with_lines(source: str, changes: dict[int, str | None]) -> str:
    """`source` with line number k (1-based) replaced by changes[k] (None: removed), indentation kept."""
    lines = source.split("\n")
    for k in sorted(changes, reverse=True):
        old = lines[k - 1]
        if changes[k] is None:
            del lines[k - 1]
        else:
            lines[k - 1] = old[: len(old) - len(old.lstrip())] + changes[k]
    return "\n".join(lines)


class _Rename(ast.NodeTransformer):
    def __init__(self, old: str, new: str):
        self.old, self.new = old, new

    def visit_Name(self, node: ast.Name) -> ast.Name:
        return ast.Name(self.new, node.ctx) if node.id == self.old and isinstance(node.ctx, ast.Load) else node


def mutants(source: str, colors: Sequence[int]) -> list[Mutant]:
    """Every single-change mutant of `source` (see the module doc), in program order; none when it does not parse."""
    import copy

    try:
        tree = ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return []
    lines = _lines(tree)
    registry = by_name()
    colors = tuple(colors)
    out: list[Mutant] = []
    grid_steps = sum(ln.prim is not None and ln.prim.returns == GRID for ln in lines)
    for ln in lines:
        call, prim, no = ln.stmt.value, ln.prim, ln.stmt.lineno
        if prim is None or ln.stmt.end_lineno != no:
            continue
        for other in registry.values():  # primitive: another of the same signature
            if other.name != prim.name and other.returns == prim.returns and other.param_types == prim.param_types:
                stmt = copy.deepcopy(ln.stmt)
                stmt.value.func = ast.Name(other.name, ast.Load())
                out.append(Mutant("primitive", f"line {no}: {prim.name} -> {other.name}", _with_lines(source, {no: ast.unparse(stmt)})))
        for j, node in enumerate([*call.args, *(kw.value for kw in call.keywords)]):  # constant: one argument
            is_const, value = _literal(node)
            param = _param(prim, call, node) if is_const else None
            if param is None:
                continue
            for new in _alternatives(prim.name, param[0], param[1], value, colors):
                stmt = copy.deepcopy(ln.stmt)
                if j < len(call.args):
                    stmt.value.args[j] = ast.parse(repr(new), mode="eval").body
                else:
                    stmt.value.keywords[j - len(call.args)].value = ast.parse(repr(new), mode="eval").body
                out.append(Mutant("constant", f"line {no}: {param[0]} {value!r} -> {new!r}", _with_lines(source, {no: ast.unparse(stmt)})))
        grid_args = [a for a, p in zip(call.args, prim.params) if p.type == GRID and isinstance(a, ast.Name)]
        # drop: later uses read the step's first grid argument. Not the only grid step: that mutant is
        # `return g`, a draft with nothing of the program left to repair.
        if prim.returns == GRID and grid_args and grid_steps > 1:
            changes: dict[int, str | None] = {no: None}
            later = [n for n in ast.walk(tree) if isinstance(n, ast.stmt) and getattr(n, "lineno", 0) > no]
            rename = _Rename(ln.target, grid_args[0].id)
            for stmt in later:
                if isinstance(stmt, (ast.Assign, ast.Return)) and stmt.end_lineno == stmt.lineno:
                    new_stmt = rename.visit(copy.deepcopy(stmt))
                    if ast.dump(new_stmt) != ast.dump(stmt):
                        changes[stmt.lineno] = ast.unparse(new_stmt)
            out.append(Mutant("drop", f"line {no}: {ln.target} = {prim.name}(...) dropped", _with_lines(source, changes)))
    original = normalize_source(source)
    seen, unique = {original}, []
    for m in out:
        key = normalize_source(m.source)
        if key not in seen:
            seen.add(key)
            unique.append(m)
    return unique


def draw_order(candidates: Sequence[Mutant], seed: int, index: int) -> list[Mutant]:
    """The order a task's mutants are tried in: each kind shuffled, then kinds interleaved (the first drawn
    too), all from `numpy.random.default_rng([seed, index])`."""
    rng = np.random.default_rng([seed, index])
    groups = {k: [m for m in candidates if m.kind == k] for k in MUTATIONS}
    groups = {k: [g[i] for i in rng.permutation(len(g)).tolist()] for k, g in groups.items()}
    kinds = [MUTATIONS[i] for i in rng.permutation(len(MUTATIONS)).tolist()]
    out = []
    for r in range(max((len(g) for g in groups.values()), default=0)):
        out += [groups[k][r] for k in kinds if r < len(groups[k])]
    return out


def is_repairable(r: ProgramResult) -> bool:
    """Inference would show it in a refinement prompt, and it is wrong: a grid on some train pair, wrong on some, no lookup table."""
    return r.lookup is None and r.train_correct < r.train_total and any(o is not None for o in r.train_outputs)


def task_repairs(task: Task, source: str, index: int, per_task: int, seed: int, sandbox: Any,
                 counts: RepairCounts | None = None) -> list[tuple[Mutant, ProgramResult]]:
    """Up to `per_task` (mutant, its sandbox result) of one task, in draw order (see the module doc)."""
    counts = counts if counts is not None else RepairCounts()
    counts.tasks += 1
    order = draw_order(mutants(source, palette(task)), seed, index)
    counts.candidates += len(order)
    kept: list[tuple[Mutant, ProgramResult]] = []
    if per_task <= 0 or not order:
        return kept
    first = True
    for start in range(0, len(order), BATCH * per_task):
        batch = order[start : start + BATCH * per_task]
        cands = [Candidate(f"{task.id}:original", source)] if first else []
        cands += [Candidate(f"{task.id}:m{start + k}", m.source) for k, m in enumerate(batch)]
        results = {r.program_id: r for r in verify(task, cands, sandbox)}
        if first:
            first = False
            if not results[f"{task.id}:original"].verified:
                counts.original_not_verified += 1
                return kept
        for k, m in enumerate(batch):
            r = results[f"{task.id}:m{start + k}"]  # mutants are distinct (normalized), so each has its own result
            counts.run += 1
            if is_repairable(r):
                kept.append((m, r))
                counts.kept[m.kind] += 1
                if len(kept) == per_task:
                    counts.tasks_with_repairs += 1
                    return kept
            elif r.train_correct == r.train_total and r.train_total:
                counts.still_verified += 1
            elif r.lookup is not None:
                counts.lookup += 1
            else:
                counts.no_grid += 1
    counts.tasks_with_repairs += bool(kept)
    return kept


def repair_example(task: Task, source: str, mutant: Mutant, result: ProgramResult) -> Example:
    """The training example: the refinement prompt showing the mutant with its sandbox outcomes
    (`solve.pipeline.search.attempted`, as test-time search builds it) -> the original program."""
    return Example("program", task.train, None, (), program_answer(source), f"{task.id}:repair:{mutant.kind}:{mutant.what}",
                   attempts=(attempted(result),))


def repair_pick(tasks: Sequence[Task], n: int | None) -> list[Task]:
    """The `n` tasks (all for None) with the smallest id hashes, in their given order: which tasks give
    repair samples depends on the ids alone, not on the corpus order or size."""
    if n is None or n >= len(tasks):
        return list(tasks)
    keep = set(sorted((hashlib.sha256(t.id.encode()).digest(), t.id) for t in tasks)[:n])
    return [t for t in tasks if (hashlib.sha256(t.id.encode()).digest(), t.id) in keep]


def repair_examples(tasks: Sequence[Task], sources: dict[str, str], per_task: int, seed: int, sandbox: Any = None,
                    sandbox_config: Any = None) -> tuple[list[Example], RepairCounts]:
    """Repair examples of `tasks` (task i draws its mutants from (seed, i)), with counts. `sandbox`: a running
    `solve.sandbox.pool.Sandbox`; without one, one is started with `sandbox_config` for this call."""
    counts = RepairCounts(per_task)
    if per_task <= 0 or not tasks:
        return [], counts
    if sandbox is None:
        from solve.sandbox.pool import Sandbox

        with Sandbox(sandbox_config) as sb:  # started only when there is work for it
            return repair_examples(tasks, sources, per_task, seed, sb)
    out = []
    for i, t in enumerate(tasks):
        if t.id in sources:
            out += [repair_example(t, sources[t.id], m, r) for m, r in task_repairs(t, sources[t.id], i, per_task, seed, sandbox, counts)]
    return out, counts
