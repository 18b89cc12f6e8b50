"""Sampling: the grid token budget, seeds that stay local, parsing and mapping back through a view."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from augment.gridtext import grid_to_text
from augment.tasks import Pair, Task
from augment.transforms import Augmentation
from ttt.decoding.sample import generate, grid_text_tokens, grid_token_budget, output_shape_bounds, parse_guess
from ttt.prompts import end_ids, grid_prompt_ids


def shaped_task(pairs: list[tuple[tuple[int, int], tuple[int, int]]], test: tuple[int, int]) -> Task:
    """A task whose grids only have the given shapes (contents do not matter for the budget)."""
    def grid(shape):
        return np.ones(shape, dtype=np.uint8)

    return Task("shapes", tuple(Pair(grid(i), grid(o)) for i, o in pairs), (grid(test),))


@pytest.mark.parametrize(
    "pairs, test, bound",
    [
        pytest.param([((2, 2), (6, 6)), ((1, 1), (3, 3))], (4, 4), (12, 12), id="upscale-x3-larger-test"),
        pytest.param([((3, 3), (6, 3)), ((2, 4), (4, 4))], (5, 5), (10, 5), id="tile-rows-x2"),
        pytest.param([((4, 4), (2, 2)), ((6, 6), (3, 3))], (10, 10), (5, 5), id="halve"),
        pytest.param([((5, 5), (3, 3)), ((7, 2), (3, 3))], (10, 10), (3, 3), id="constant-output"),
        pytest.param([((2, 2), (4, 4)), ((3, 3), (5, 5))], (6, 6), (8, 8), id="border-plus-2"),
        pytest.param([((2, 3), (2, 3)), ((5, 4), (5, 4))], (7, 9), (7, 9), id="same-shape"),
        pytest.param([((2, 2), (6, 6))], (3, 3), (9, 9), id="one-pair: max of constant 6, ratio 9, offset 7"),
        pytest.param([((2, 2), (3, 5)), ((4, 1), (1, 1))], (4, 4), (6, 10), id="no-rule: max of outputs, test, max ratio"),
        pytest.param([((2, 2), (6, 6)), ((1, 1), (3, 3))], (15, 15), (30, 30), id="capped-at-30"),
    ],
)
def test_output_shape_bounds(pairs, test, bound):
    assert output_shape_bounds(shaped_task(pairs, test)) == [bound]


def test_budget_covers_an_upscaled_test_output(tokenizer):
    """The bug this replaced: the budget followed the largest train output, so a test input larger than
    the train inputs of an upscaling task had its output cut off and never parsed."""
    rng = np.random.default_rng(0)
    def up(g):
        return np.kron(g, np.ones((3, 3), dtype=np.uint8))

    train = tuple(Pair(g, up(g)) for g in (rng.integers(0, 10, (2, 2), dtype=np.uint8), rng.integers(0, 10, (3, 2), dtype=np.uint8)))
    x = rng.integers(0, 10, (6, 7), dtype=np.uint8)
    task = Task("up", train, (x,), (up(x),))
    truth_tokens = len(tokenizer.encode(grid_to_text(up(x)), add_special_tokens=False)) + len(end_ids(tokenizer))
    assert truth_tokens <= grid_token_budget(task, tokenizer)
    assert grid_text_tokens(18, 21) == truth_tokens - len(end_ids(tokenizer)), "one token per character of grid text"
    largest_train_output = (9 + 1) * (6 + 1) + 16  # the old rule
    assert largest_train_output < truth_tokens


def test_generate_keeps_the_global_rng_and_is_deterministic_per_seed(tiny, tokenizer, flip_task):
    prompt = grid_prompt_ids(tokenizer, flip_task.train, flip_task.test_inputs[0])

    def sample(seed):
        return generate(tiny, tokenizer, [prompt], 3, 8, 1.0, 1.0, 4, seed)

    torch.manual_seed(123)
    before = torch.get_rng_state()
    first = sample(5)
    assert torch.equal(torch.get_rng_state(), before), "the caller's RNG was reseeded"
    torch.manual_seed(999)  # whatever the caller did before, the same seed gives the same samples
    assert sample(5) == first
    assert sample(6) != first
    assert len(first) == 1 and len(first[0]) == 3 and len(set(first[0])) > 1


@pytest.mark.parametrize("dihedral", range(8))
def test_a_guess_is_parsed_and_mapped_back_through_its_view(dihedral):
    truth = np.arange(6, dtype=np.uint8).reshape(2, 3)
    view = Augmentation(dihedral, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9))
    seen = view.apply_grid(truth)  # what the model writes under this view
    guess = parse_guess(0, view, grid_to_text(seen) + "\n<junk after the grid>", False)
    assert guess.error is None and np.array_equal(guess.grid, truth)
    bad = parse_guess(0, view, "3x3\n012", False)
    assert bad.grid is None and "rows" in bad.error and bad.text == "3x3\n012"
