"""Typed program search over the DSL: depth 1 exhaustively, then best-first deeper within a time budget.

A node is a chain of calls from the input grid `g`. Its value on train input 0 is computed at once;
its values on the other inputs (train, then test) only when needed. Nodes with the same value on train
input 0 form a *class*: every last step that maps that value to train output 0 is found once per class
(one primitive call per candidate step), and only those hits are run on the other inputs. The search
  1. applies every call of the task's table (`solve.dsl_search.calls`) to `g`: the depth-1 nodes, a
     solution wherever one reproduces every train output;
  2. pops the most promising class (right shape, most cells right and closest palette on pair 0) and
     tries every call as its last step; calls seen on depth 1 to keep their grid's shape are skipped
     where the class has the wrong shape, and calls that take no color and add none where it lacks a
     target color; `recolor_map` gets the one color map the node's grids and the targets define;
     members of a class that turn out equal on every input to a node seen before are skipped
     (behavioural deduplication);
  3. pairs the best depth-1 nodes of equal shapes under the two-grid primitives (the halves of a split
     grid combined cell by cell);
  4. with depth > 2, a popped class's first member gets children, grouped into classes the same way.
It stops at `max_solutions` distinct solutions (distinct test outputs) or the deadline. The DSL is our
own pure code, so it runs in process; no model text is executed here. Programs come out as the same
`from solve.dsl import *` source the model writes (`solve.synth.program.Program.source`).
"""

from __future__ import annotations

import heapq
import time
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from solve.dsl import registry as reg
from solve.dsl_search.calls import CONST, CUR, INPUT, QUERY, Arg, Call, CallTable, build_calls, functions
from solve.synth.program import Program, Step

# What a failing primitive raises on a grid it does not apply to (DSL contract: ValueError; numpy and
# indexing slips count too). Anything else is a bug in the DSL and propagates.
_NOT_APPLICABLE = (ValueError, IndexError, KeyError, ZeroDivisionError, TypeError, OverflowError)


_NO_QUERIES: dict = {}  # shared, never written


@dataclass(eq=False)  # compared by identity: its values are arrays
class Node:
    """A chain of calls from `g`: its value per input (None until computed), the steps computing it."""

    vals: list[np.ndarray | None]
    depth: int
    parent: Node | None = None
    call: Call | None = None
    other: Node | None = None  # the second grid of a two-grid call on two nodes
    failed: bool = False  # the call does not apply to some input
    queries: dict[Any, list[Any] | None] = field(default_factory=dict)  # query cache, per input
    # Written out only when asked for (a solution, a near miss, a child's steps): most nodes are
    # duplicates of a class seen before and never need them.
    _program: tuple[tuple[Step, ...], int] | None = None

    @property
    def steps(self) -> tuple[Step, ...]:
        """The program's steps computing this node (value 0 is g)."""
        return self._written()[0]

    @property
    def out_ref(self) -> int:
        """Index of the step value that holds this node's grid."""
        return self._written()[1]

    def _written(self) -> tuple[tuple[Step, ...], int]:
        if self._program is None:
            self._program = ((), 0) if self.parent is None else _extend_steps(self.parent, self.call, self.other)
        return self._program


@dataclass
class _Class:
    """Nodes with one value on train input 0, in the order found (shortest first)."""

    v0: np.ndarray
    score: float
    members: list[Node]
    expanded: bool = False


@dataclass
class Found:
    """A program the search found: a solution (every train pair right) or a near miss."""

    program: Program
    train_outputs: list[np.ndarray]
    test_outputs: list[np.ndarray]
    train_cells: float  # mean share of cells right over the train pairs (0 where the shape is wrong)
    depth: int

    @property
    def source(self) -> str:
        return self.program.source()

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "depth": self.depth, "train_cells": round(self.train_cells, 4)}


@dataclass
class SearchResult:
    solutions: list[Found]
    near_misses: list[Found]
    stats: dict[str, Any]


class _Clock:
    def __init__(self, seconds: float | None):
        self.start = time.monotonic()
        self.deadline = None if seconds is None else self.start + seconds

    def up(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


def search(
    train: Sequence[tuple[np.ndarray, np.ndarray]],
    test_inputs: Sequence[np.ndarray],
    depth: int = 2,
    seconds: float | None = 10.0,
    max_solutions: int = 2,
    near_misses: int = 4,
    table: CallTable | None = None,
) -> SearchResult:
    """Search programs that map every train input to its output (see the module doc)."""
    if depth < 1:
        raise ValueError(f"depth must be >= 1, got {depth}")
    if not train:
        raise ValueError("a task needs at least one train pair to search")
    return _Search(train, test_inputs, depth, seconds, max_solutions, near_misses, table).run()


class _Search:
    def __init__(self, train, test_inputs, depth, seconds, max_solutions, near_misses, table):
        self.targets = [np.asarray(y, dtype=np.uint8) for _, y in train]
        self.inputs = [np.asarray(x, dtype=np.uint8) for x, _ in train] + [np.asarray(x, dtype=np.uint8) for x in test_inputs]
        self.n_train = len(train)
        self.depth, self.max_solutions, self.n_near = depth, max_solutions, near_misses
        self.clock = _Clock(seconds)
        self.table = table or build_calls([(x, y) for x, y in zip(self.inputs, self.targets)], self.inputs[self.n_train :])
        self.fns = functions()
        self.classes: dict[bytes, _Class] = {}
        self.seen: set[bytes] = set()  # full behaviours (every input) of the nodes evaluated everywhere
        self.solutions: list[Found] = []
        self.solution_keys: set[bytes] = set()
        self.target_colors = [set(np.unique(t).tolist()) for t in self.targets]
        # Per call index, learned on depth 1: does it keep its grid's shape / add no color (prunes later).
        self.keeps_shape: dict[int, bool] = {}
        self.adds_no_color: dict[int, bool] = {}
        self.first_pair_hits: dict[bytes, list[int]] = {}
        self.stats = {"calls": len(self.table.calls), "evaluated": 0, "classes": 0, "distinct": 0, "expanded": 0,
                      "depth_reached": 0, "pruned": 0, "stopped_by": "exhausted"}  # fmt: skip

    # --- evaluation -----------------------------------------------------------------------------

    def value(self, node: Node, i: int) -> np.ndarray | None:
        """The node's value on input i, computed (with its ancestors') on first use."""
        v = node.vals[i]
        if v is not None or node.failed:
            return v
        p = node.parent
        if self.value(p, i) is None or (node.other is not None and self.value(node.other, i) is None):
            node.failed = True
            return None
        qvals = self.call_queries(node.call, p, i + 1)
        v = None if qvals is None else self.apply(node.call, p, i, node.other, qvals)
        if v is None:
            node.failed = True
        node.vals[i] = v
        return v

    def everywhere(self, node: Node) -> list[np.ndarray] | None:
        """The node's value on every input, or None when its chain fails on one."""
        out = []
        for i in range(len(self.inputs)):
            v = self.value(node, i)
            if v is None:
                return None
            out.append(v)
        return out

    def query_values(self, node: Node, q: tuple[str, tuple[Any, ...]], upto: int) -> list[Any] | None:
        """The query's value on each of the node's first `upto` inputs (None when it fails on one)."""
        got = node.queries.get(q, [])
        if got is None:
            return None
        if len(got) >= upto:
            return got
        fn, consts = self.fns[q[0]], q[1]
        out = list(got)
        for i in range(len(out), upto):
            v = self.value(node, i)
            try:
                if v is None:
                    raise ValueError("the grid failed")
                out.append(fn(v, *consts))
            except _NOT_APPLICABLE:
                node.queries[q] = None
                return None
        node.queries[q] = out
        return out

    def call_queries(self, call: Call, node: Node, upto: int) -> dict | None:
        qs = call.queries()
        if not qs:
            return _NO_QUERIES
        qvals = {}
        for q in qs:
            v = self.query_values(node, q, upto)
            if v is None:
                return None
            qvals[q] = v
        return qvals

    def apply(self, call: Call, node: Node, i: int, other: Node | None = None, qvals: dict | None = None) -> np.ndarray | None:
        """The call on input i of `node` (its values there must be known); None where it does not apply."""
        args = []
        for a in call.args:
            if a.kind == CUR:
                args.append(node.vals[i])
            elif a.kind == INPUT:
                args.append(other.vals[i] if other is not None else self.inputs[i])
            elif a.kind == CONST:
                args.append(a.value)
            else:
                args.append(qvals[a.value][i])
        self.stats["evaluated"] += 1
        try:
            out = self.fns[call.prim](*args)
        except _NOT_APPLICABLE:
            return None
        return out if isinstance(out, np.ndarray) and out.ndim == 2 else None

    def child(self, parent: Node, call: Call, other: Node | None = None) -> Node | None:
        """The call on `parent` (and `other`), evaluated on train input 0 only (None where it fails)."""
        if other is not None and self.value(other, 0) is None:
            return None
        qvals = self.call_queries(call, parent, 1)
        v0 = None if qvals is None else self.apply(call, parent, 0, other, qvals)
        if v0 is None:
            return None
        depth = parent.depth + 1 if other is None else 1 + max(parent.depth, other.depth)
        return Node([v0] + [None] * (len(self.inputs) - 1), depth, parent, call, other)

    # --- bookkeeping ----------------------------------------------------------------------------

    def key(self, values: Sequence[np.ndarray]) -> bytes:
        return b"|".join(bytes(v.shape) + v.tobytes() for v in values)

    def score0(self, v: np.ndarray) -> float:
        """Closeness to train output 0: 0.5 + 0.5 * cells right when the shape is right, 0.2 when each
        side divides or is divided by the target's, else 0; plus 0.1 * palette overlap."""
        t, colors = self.targets[0], self.target_colors[0]
        if v.shape == t.shape:
            total = 0.5 + 0.5 * float(np.mean(v == t))
        elif all(a % b == 0 or b % a == 0 for a, b in zip(v.shape, t.shape)):
            total = 0.2
        else:
            total = 0.0
        have = set(np.unique(v).tolist())
        return total + 0.1 * len(have & colors) / len(have | colors)

    def solves(self, node: Node) -> bool:
        """Every train output reproduced (inputs evaluated one by one, stopping at the first miss)."""
        for i, t in enumerate(self.targets):
            v = self.value(node, i)
            if v is None or not np.array_equal(v, t):
                return False
        return True

    def found(self, node: Node) -> Found | None:
        values = self.everywhere(node)
        if values is None:
            return None
        cells = [float(np.mean(v == t)) if v.shape == t.shape else 0.0 for v, t in zip(values, self.targets)]
        program = Program(node.steps, sum(s.returns == reg.GRID for s in node.steps))
        return Found(program, values[: self.n_train], values[self.n_train :], float(np.mean(cells)), node.depth)

    def try_solution(self, node: Node) -> None:
        if not self.solves(node):
            return
        f = self.found(node)  # None: it fails on a test input
        if f is None:
            return
        k = self.key(f.test_outputs)
        if k not in self.solution_keys:
            self.solution_keys.add(k)
            self.solutions.append(f)

    def enough(self) -> bool:
        return len(self.solutions) >= self.max_solutions

    def add_to_class(self, node: Node) -> _Class | None:
        """File the node under its value on train input 0; returns the class when it is new."""
        v0 = node.vals[0]
        k = bytes(v0.shape) + v0.tobytes()
        c = self.classes.get(k)
        if c is not None:
            c.members.append(node)
            return None
        c = self.classes[k] = _Class(v0, self.score0(v0) - 0.01 * node.depth, [node])
        return c

    # --- the search -----------------------------------------------------------------------------

    def run(self) -> SearchResult:
        root = Node(list(self.inputs), 0)
        level1 = self.depth_one(root)
        frontier = [(-c.score, i, c) for i, c in enumerate(level1)]
        heapq.heapify(frontier)
        count = len(frontier)
        if self.depth >= 2 and not self.enough() and not self.clock.up():
            self.pairs(level1)
        while frontier and self.depth >= 2 and not self.enough():
            if self.clock.up():
                self.stats["stopped_by"] = "deadline"
                break
            _, _, cls = heapq.heappop(frontier)
            self.stats["expanded"] += 1
            self.last_step(cls)
            if cls.members[0].depth + 1 < self.depth and not self.enough():
                for new in self.children(cls.members[0]):
                    count += 1
                    heapq.heappush(frontier, (-new.score, count, new))
        if self.enough():
            self.stats["stopped_by"] = "solutions"
        self.stats["classes"] = len(self.classes)
        self.stats["distinct"] = len(self.seen)
        near = self.near_misses()
        self.stats["seconds"] = round(time.monotonic() - self.clock.start, 3)
        return SearchResult(self.solutions, near, self.stats)

    def depth_one(self, root: Node) -> list[_Class]:
        """Every call on g (on train input 0 first); learns which calls keep shapes and add no color."""
        new_classes = []
        self.stats["depth_reached"] = 1
        x0 = self.inputs[0]
        colors0 = set(np.unique(x0).tolist())
        for idx, call in enumerate(self.table.calls):
            if self.clock.up():
                self.stats["stopped_by"] = "deadline"
                break
            node = self.child(root, call)
            if node is None:
                continue
            v0 = node.vals[0]
            self.keeps_shape[idx] = v0.shape == x0.shape
            self.adds_no_color[idx] = not any(a.type == reg.COLOR for a in call.args) and set(np.unique(v0).tolist()) <= colors0
            if np.array_equal(v0, self.targets[0]):
                self.try_solution(node)
                if self.enough():
                    break
            c = self.add_to_class(node)
            if c is not None:
                new_classes.append(c)
        if not self.enough():
            self.fit_color_map(root)
        return new_classes

    def fit_color_map(self, node: Node) -> None:
        """`recolor_map(node, m)` with the one map m that turns the node's train grids into the targets."""
        if "recolor_map" not in self.table.fitted:
            return
        mapping: dict[int, int] = {}
        for i, t in enumerate(self.targets):
            v = self.value(node, i)
            if v is None or v.shape != t.shape:
                return
            for a, b in set(zip(v.ravel().tolist(), t.ravel().tolist())):
                if mapping.setdefault(a, b) != b:
                    return
        mapping = {a: b for a, b in sorted(mapping.items()) if a != b}
        if mapping:
            fitted = self.child(node, Call("recolor_map", (Arg(CUR, None, reg.GRID), Arg(CONST, mapping, reg.COLOR_MAP))))
            if fitted is not None:
                self.try_solution(fitted)

    def hits_on_first_pair(self, v0: np.ndarray, probe: Node) -> list[int]:
        """Indices of the calls that turn `v0` (the probe's value on train input 0) into train output 0."""
        k0 = bytes(v0.shape) + v0.tobytes()
        if k0 in self.first_pair_hits:
            return self.first_pair_hits[k0]
        t0 = self.targets[0]
        wrong_shape = v0.shape != t0.shape
        missing_color = not self.target_colors[0] <= set(np.unique(v0).tolist())
        hits = []
        for idx, call in enumerate(self.table.calls):
            if idx % 64 == 0 and self.clock.up():
                return hits  # cut short: not remembered
            if (wrong_shape and self.keeps_shape.get(idx)) or (missing_color and self.adds_no_color.get(idx)):
                self.stats["pruned"] += 1
                continue
            qvals = self.call_queries(call, probe, 1)
            if qvals is None:
                continue
            out = self.apply(call, probe, 0, None, qvals)
            if out is not None and np.array_equal(out, t0):
                hits.append(idx)
        self.first_pair_hits[k0] = hits
        return hits

    def last_step(self, cls: _Class) -> None:
        """Every call as the last step of the class's members: found on train input 0 once, then each
        hit checked on every member that is a new behaviour."""
        cls.expanded = True
        self.stats["depth_reached"] = max(self.stats["depth_reached"], cls.members[0].depth + 1)
        hits = self.hits_on_first_pair(cls.v0, cls.members[0])
        for member in cls.members:
            if self.clock.up() or self.enough():
                return
            values = self.everywhere(member)
            if values is None:
                continue
            k = self.key(values)
            if k in self.seen:
                continue
            self.seen.add(k)
            for idx in hits:
                node = self.child(member, self.table.calls[idx])
                if node is not None:
                    self.try_solution(node)
            self.fit_color_map(member)

    def children(self, node: Node) -> list[_Class]:
        """The node's children, filed into classes; the new classes (for a deeper search)."""
        out = []
        for call in self.table.calls:
            if self.clock.up():
                break
            child = self.child(node, call)
            if child is not None:
                c = self.add_to_class(child)
                if c is not None:
                    out.append(c)
        return out

    def pairs(self, level1: list[_Class], top: int = 24) -> None:
        """Two-grid calls on two different depth-1 nodes of equal shapes (e.g. a grid's two halves)."""
        binary = [c for c in self.table.calls if c.uses_input and c.args[0].kind == CUR]
        best = [c.members[0] for c in sorted(level1, key=lambda c: -c.score)[:top]]
        halves = [c.members[0] for c in level1 if c.members[0].call.prim.endswith("_half")]
        pool = [n for n in best + [h for h in halves if h not in best] if self.everywhere(n) is not None]
        t0 = self.targets[0]
        for a in pool:
            for b in pool:
                if a is b or any(x.shape != y.shape for x, y in zip(a.vals, b.vals)):
                    continue
                for call in binary:
                    if self.clock.up() or self.enough():
                        return
                    node = self.child(a, call, b)
                    if node is not None and np.array_equal(node.vals[0], t0):
                        self.try_solution(node)

    def near_misses(self) -> list[Found]:
        """The best nodes with the right shape on every train pair, not solutions, best first."""
        if self.n_near <= 0:
            return []
        t0 = self.targets[0]
        ranked = sorted((c for c in self.classes.values() if c.v0.shape == t0.shape), key=lambda c: -c.score)
        out: list[tuple[float, Found]] = []
        for c in ranked[: 4 * self.n_near]:  # a few full evaluations: runs past the deadline by milliseconds
            f = self.found(c.members[0])
            if f is None or f.train_cells >= 1.0 or any(o.shape != t.shape for o, t in zip(f.train_outputs, self.targets)):
                continue
            out.append((f.train_cells, f))
        out.sort(key=lambda x: -x[0])
        return [f for _, f in out[: self.n_near]]


def search_task(task: Any, depth: int = 2, seconds: float | None = 10.0, max_solutions: int = 2, near_misses: int = 4) -> SearchResult:
    """`search` on an `augment.tasks.Task`."""
    return search([(p.input, p.output) for p in task.train], list(task.test_inputs), depth, seconds, max_solutions, near_misses)


def _extend_steps(node: Node, call: Call, other: Node | None = None) -> tuple[tuple[Step, ...], int]:
    """`node`'s steps (then `other`'s, renumbered) plus the call's query steps and the call."""
    steps = list(node.steps)
    other_ref = 0
    if other is not None:
        base = len(steps)
        for s in other.steps:
            steps.append(Step(s.prim, tuple(("ref", v + base if v else 0) if k == "ref" else (k, v) for k, v in s.args), s.returns))
        other_ref = other.out_ref + base if other.out_ref else 0
    qrefs = {}
    for a in call.args:
        if a.kind == QUERY and a.value not in qrefs:
            name, consts = a.value
            steps.append(Step(name, (("ref", node.out_ref), *(("const", c) for c in consts)), a.type))
            qrefs[a.value] = len(steps)
    args = []
    for a in call.args:
        if a.kind == CUR:
            args.append(("ref", node.out_ref))
        elif a.kind == INPUT:
            args.append(("ref", other_ref))
        elif a.kind == CONST:
            args.append(("const", a.value))
        else:
            args.append(("ref", qrefs[a.value]))
    steps.append(Step(call.prim, tuple(args), reg.GRID))
    return tuple(steps), len(steps)
