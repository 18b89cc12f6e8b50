"""What the generator draws (#23.2): concept-conditioned inputs, prompt-sized grids, meaningful color
maps and source colors, and programs of the shape class asked for."""

from __future__ import annotations

import numpy as np
import pytest

from solve.dsl.registry import COLOR_MAP
from solve.synth.check import OBJECT_PRIMS, object_count
from solve.synth.inputs import SIDES, STYLES, concept_style, draw_look, styled_inputs
from solve.synth.program import SHAPE_KEEPING, random_program


@pytest.mark.parametrize("primitives,style", [
    (["largest_object", "recolor_object"], "objects"),
    (["slide", "objects"], "objects"),
    (["connect_same"], "pairs"),
    (["fill_enclosed"], "outlines"),
    (["complete_symmetry_h"], "symmetric"),
    (["flip_h", "recolor"], None),
])  # fmt: skip
def test_concept_style(primitives, style):
    assert concept_style(primitives, OBJECT_PRIMS) == style


def _inputs(style: str, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    bg, palette = draw_look(rng)
    return styled_inputs(rng, 4, style, bg, palette)


@pytest.mark.parametrize("seed", range(30))
def test_object_inputs_hold_two_objects_or_more(seed):
    grids = _inputs("objects", seed)
    assert len(grids) == 4 and all(object_count(g) >= 2 for g in grids)


@pytest.mark.parametrize("seed", range(30))
def test_pairs_inputs_hold_a_same_color_pair_in_line(seed):
    for g in _inputs("pairs", seed):
        bg = np.bincount(g.ravel()).argmax()
        lines = [*g, *g.T]
        assert any(np.count_nonzero(line == c) >= 2 for line in lines for c in set(line.tolist()) - {bg}), g


@pytest.mark.parametrize("style", STYLES)
def test_sides_fit_the_prompt_budget(style):
    sides = [s for seed in range(40) for g in _inputs(style, seed) for s in g.shape]
    assert max(sides) <= SIDES[1][1] and min(sides) >= 3
    assert np.mean([s <= SIDES[0][1] for s in sides]) > 0.6  # mostly the usual 3..10


def _constants(program, prim: str | None = None, index: int | None = None):
    return [s.args[index][1] if index is not None else s for s in program.steps if prim is None or s.prim == prim]


def test_color_maps_change_every_color_they_name_and_never_the_background():
    rng = np.random.default_rng(0)
    maps = 0
    for _ in range(3000):
        p = random_program(rng, (0, 1, 2, 5), background=0)
        for s in p.steps:
            for kind, v in s.args:
                if kind == "const" and isinstance(v, dict):
                    maps += 1
                    assert v and 0 not in v and all(k != c for k, c in v.items()), v
            if s.prim in ("recolor", "swap_colors"):
                assert s.args[1] != ("const", 0), p.source()
    assert maps > 20 and COLOR_MAP


@pytest.mark.parametrize("keep", [True, False])
def test_shape_class_steps(keep):
    rng = np.random.default_rng(1)
    for _ in range(300):
        p = random_program(rng, (0, 3, 4), keep_shape=keep, background=0)
        grid_steps = [s.prim for s in p.steps if s.returns == "Grid"]
        halves = {"left_half", "right_half", "top_half", "bottom_half"}
        kept = all(prim in SHAPE_KEEPING for prim in grid_steps)
        # keep: only shape-keeping steps; change: some step from outside that set (a split counts).
        assert kept == keep or (not keep and halves & set(grid_steps)), p.source()
