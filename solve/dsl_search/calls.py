"""The calls a DSL search may make on one task: every grid-valued primitive with its arguments filled.

A `Call` is one line of a program that takes the grid being transformed (`cur`) and returns a grid:
`flip_h(cur)`, `recolor(cur, 3, 5)`, `recolor_object(cur, largest_object(cur, True), 2)`,
`hconcat(cur, g)`. Its non-grid arguments are constants drawn from the task itself (its colors, the
size ratios between its inputs and outputs, a color map the pairs define) or query calls on `cur`
(its most common color, its largest object...), so one call means the same thing on every input.

The table is built from `solve.dsl.registry`, so a primitive added there is searched without a change
here; an argument type with no constants and no query is simply not searchable (`CallTable.skipped`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cache
from itertools import product
from typing import Any, Callable, Sequence

import numpy as np

import solve.dsl as dsl
from solve.dsl import registry as reg

# Where an argument comes from: the grid being transformed, the task's input grid (for two-grid
# primitives), a constant, or a query call on `cur`.
CUR, INPUT, CONST, QUERY = "cur", "input", "const", "query"

# Argument combinations kept per primitive, constants first. A primitive with a parameter of one of the
# registry's enumerable concept types (regions, object filters and actions, combine ops...) keeps up to
# WIDE_COMBOS, all-constant ones first (what such a rule varies is its choice and its colors); others
# keep MAX_COMBOS. Keeps depth 1 at ~3-4k calls per task.
MAX_COMBOS = 96
WIDE_COMBOS = 320
_NARROW_CHOICES = (reg.BOOL, reg.DIRECTION)


@dataclass(frozen=True)
class Arg:
    kind: str  # CUR, INPUT, CONST or QUERY
    value: Any = None  # the constant, or for QUERY a (primitive name, constant args) pair
    type: str = ""


@dataclass(frozen=True)
class Call:
    """One grid-valued primitive with every argument decided."""

    prim: str
    args: tuple[Arg, ...]

    def __post_init__(self) -> None:
        # Asked for on every evaluation: computed once.
        object.__setattr__(self, "_queries", tuple(a.value for a in self.args if a.kind == QUERY))

    @property
    def uses_input(self) -> bool:
        return any(a.kind == INPUT for a in self.args)

    def queries(self) -> tuple[tuple[str, tuple[Any, ...]], ...]:
        return self._queries  # type: ignore[attr-defined]

    def text(self) -> str:
        """Readable form, for logs and tests: `recolor(cur, 3, 5)`."""
        parts = []
        for a in self.args:
            if a.kind == QUERY:
                name, consts = a.value
                parts.append(f"{name}({', '.join(['cur', *map(repr, consts)])})")
            elif a.kind == CONST:
                parts.append(repr(a.value))
            else:
                parts.append("g" if a.kind == INPUT else "cur")
        return f"{self.prim}({', '.join(parts)})"


@dataclass
class CallTable:
    """The calls for one task, and the registry entries the search could not fill (with why)."""

    calls: list[Call]
    fitted: list[str]  # primitives whose argument is fitted per parent (recolor_map): see search.fit_color_map
    skipped: dict[str, str] = field(default_factory=dict)


@cache
def functions() -> dict[str, Callable[..., Any]]:
    """Every registry primitive's function by name."""
    return {p.name: getattr(dsl, p.name) for p in reg.REGISTRY}


def task_palette(grids: Sequence[np.ndarray]) -> tuple[int, ...]:
    """Every color that appears in the grids, sorted."""
    seen = np.zeros(10, dtype=bool)
    for g in grids:
        seen[np.unique(g)] = True
    return tuple(int(c) for c in np.flatnonzero(seen))


def size_constants(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> tuple[int, ...]:
    """Small ints worth trying as sizes and factors: 1-3, every whole ratio between an output's and its
    input's sides (either way), and an output side that is the same in every pair."""
    found = {1, 2, 3}
    for x, y in pairs:
        for a, b in ((y.shape[0], x.shape[0]), (y.shape[1], x.shape[1]), (x.shape[0], y.shape[0]), (x.shape[1], y.shape[1])):
            if b and a % b == 0 and 1 <= a // b <= 10:
                found.add(a // b)
    for axis in (0, 1):
        sides = {y.shape[axis] for _, y in pairs}
        if len(sides) == 1:
            found.add(sides.pop())
    return tuple(sorted(n for n in found if 1 <= n <= 30))


def pair_color_map(pairs: Sequence[tuple[np.ndarray, np.ndarray]]) -> dict[int, int] | None:
    """The one cell-wise color map that turns every input into its output (changed colors only), or
    None when the shapes differ, two cells of one color go to different colors, or nothing changes."""
    mapping: dict[int, int] = {}
    for x, y in pairs:
        if x.shape != y.shape:
            return None
        for a, b in set(zip(x.ravel().tolist(), y.ravel().tolist())):
            if mapping.setdefault(a, b) != b:
                return None
    changed = {a: b for a, b in sorted(mapping.items()) if a != b}
    return changed or None


def constants(type_: str, prim: str, param: str, palette: tuple[int, ...], sizes: tuple[int, ...], color_map: dict | None) -> list[Any]:
    """The constants tried for one parameter (empty: the type has none, only queries)."""
    if (prim, param) in reg.PARAM_CHOICES:
        return list(reg.PARAM_CHOICES[(prim, param)])
    if type_ in reg.CHOICES:  # the registry's enumerable types (directions, regions, object filters...)
        return list(reg.CHOICES[type_])
    if type_ == reg.COLOR:
        return list(palette)
    if type_ == reg.INT:
        return list(sizes)
    if type_ == reg.INDEX:
        return [0, 1, 2]
    if type_ == reg.OFFSET:
        return [-1, 1, -2, 2, -3, 3]
    if type_ == reg.BOOL:
        return [False, True]
    if type_ == reg.DIRECTION:
        return list(dsl.DIRECTIONS)
    if type_ == reg.COLOR_MAP:
        return [color_map] if color_map else []
    return []


def query_options(type_: str, palette: tuple[int, ...], sizes: tuple[int, ...], color_map: dict | None) -> list[tuple[str, tuple[Any, ...]]]:
    """Query calls on `cur` that give a value of `type_`: registry primitives whose first parameter is
    the grid and whose others take constants, each with its constants filled."""
    out = []
    for p in reg.returning(type_):
        if not p.params or p.params[0].type != reg.GRID:
            continue
        rest = p.params[1:]
        if any(q.type == reg.GRID for q in rest):
            continue
        options = [constants(q.type, p.name, q.name, palette, sizes, color_map) for q in rest]
        if any(not o for o in options):
            continue
        out += [(p.name, tuple(combo)) for combo in product(*options)]
    return out


def build_calls(
    pairs: Sequence[tuple[np.ndarray, np.ndarray]], test_inputs: Sequence[np.ndarray], max_combos: int = MAX_COMBOS,
    wide_combos: int = WIDE_COMBOS,
) -> CallTable:
    """Every call worth trying on this task (see the module doc)."""
    palette = task_palette([g for p in pairs for g in p] + list(test_inputs))
    sizes = size_constants(pairs)
    cmap = pair_color_map(pairs)
    calls: list[Call] = []
    fitted: list[str] = []
    skipped: dict[str, str] = {}
    queries: dict[str, list] = {}
    for prim in reg.returning(reg.GRID):
        grid_params = [p for p in prim.params if p.type == reg.GRID]
        if not grid_params:
            skipped[prim.name] = "takes no grid (a constant output)"
            continue
        if prim.name == "recolor_map":
            fitted.append(prim.name)  # its map is fitted to each parent's grids (search.fit_color_map)
        # Grid sources: the first grid parameter is `cur`; a second one is the task input, or `cur` again.
        grid_sources = [(CUR,)] if len(grid_params) == 1 else [(CUR, INPUT), (INPUT, CUR), (CUR, CUR)] if len(grid_params) == 2 else []
        if not grid_sources:
            skipped[prim.name] = f"{len(grid_params)} grid parameters"
            continue
        options: list[list[Arg]] = []
        const_options: list[list[Arg]] = []
        for p in prim.params:
            if p.type == reg.GRID:
                continue
            consts = [Arg(CONST, v, p.type) for v in constants(p.type, prim.name, p.name, palette, sizes, cmap)]
            if p.type not in queries:
                queries[p.type] = query_options(p.type, palette, sizes, cmap)
            # Colors and counts: constants first (the pairs usually fix them), then queries.
            found = consts + [Arg(QUERY, q, p.type) for q in queries[p.type]]
            if not found:
                break
            options.append(found)
            const_options.append(consts)
        else:
            wide = any(p.type in reg.CHOICES and p.type not in _NARROW_CHOICES for p in prim.params)
            cap = wide_combos if wide else max_combos
            combos = _wide_product(options, const_options, cap) if wide else []
            if len(combos) < cap:
                taken = set(map(_ids, combos))
                combos += [c for c in _capped_product(options, cap) if _ids(c) not in taken][: cap - len(combos)]
            for sources in grid_sources:
                for combo in combos:
                    calls.append(Call(prim.name, _place(prim, sources, combo)))
            continue
        skipped[prim.name] = f"no constant or query for parameter type {p.type}"
    return CallTable(calls, fitted, skipped)


def _wide_product(options: list[list[Arg]], const_options: list[list[Arg]], cap: int) -> list[tuple[Arg, ...]]:
    """For a primitive with an enumerable concept parameter: every constant of the parameters that have
    constants (its choices, the task's colors), and for query-only parameters (objects, masks) as many
    of their first queries as the cap leaves room for."""
    fixed = 1
    for c in const_options:
        fixed *= len(c) or 1
    room = max(1, cap // fixed)
    n_query_only = sum(not c for c in const_options)
    per_query = max(1, int(room ** (1 / n_query_only))) if n_query_only else 1
    lists = [c if c else o[:per_query] for o, c in zip(options, const_options)]
    return list(product(*lists))[:cap]


def _ids(combo: tuple[Arg, ...]) -> tuple[int, ...]:
    return tuple(id(a) for a in combo)


def _place(prim: reg.Primitive, sources: tuple[str, ...], combo: tuple[Arg, ...]) -> tuple[Arg, ...]:
    grids, others, args = iter(sources), iter(combo), []
    for p in prim.params:
        args.append(Arg(next(grids), None, reg.GRID) if p.type == reg.GRID else next(others))
    return tuple(args)


def _capped_product(options: list[list[Arg]], cap: int) -> list[tuple[Arg, ...]]:
    """The first `cap` combinations in an order that varies every parameter early: the product of each
    parameter's first k options, for growing k, so a cap keeps the most likely values of all of them."""
    if not options:
        return [()]
    out: list[tuple[Arg, ...]] = []
    seen: set[tuple[int, ...]] = set()  # by index: a constant may be unhashable (a color map)
    longest = max(len(o) for o in options)
    for k in range(1, longest + 1):
        for picks in product(*(range(min(k, len(o))) for o in options)):
            if picks not in seen:
                seen.add(picks)
                out.append(tuple(o[i] for o, i in zip(options, picks)))
                if len(out) >= cap:
                    return out
    return out
