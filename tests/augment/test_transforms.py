"""Laws of the invertible augmentations: D8, color permutations, train-order shuffles."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from augment.tasks import Pair, Task
from augment.transforms import (
    DIHEDRAL_NAMES,
    IDENTITY_COLORS,
    Augmentation,
    dihedral,
    dihedral_inverse,
    dihedral_then,
    random_colors,
)

SETTINGS = settings(max_examples=100, deadline=None)


def grids(max_side: int = 30) -> st.SearchStrategy[np.ndarray]:
    shape = st.tuples(st.integers(1, max_side), st.integers(1, max_side))
    return hnp.arrays(np.uint8, shape, elements=st.integers(0, 9))


color_perms = st.permutations(list(range(10))).map(tuple)
# Permutations that fix 0 (background kept).
bg_color_perms = st.permutations(list(range(1, 10))).map(lambda p: (0, *p))
augmentations = st.builds(
    Augmentation,
    dihedral=st.integers(0, 7),
    colors=st.one_of(color_perms, bg_color_perms, st.just(IDENTITY_COLORS)),
)


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and a.dtype == b.dtype and np.array_equal(a, b)


# ---- grid-level laws -------------------------------------------------------------------------


@SETTINGS
@given(grids())
def test_every_dihedral_element_inverts(g):
    for d in range(8):
        aug = Augmentation(d)
        out = aug.apply_grid(g)
        assert out.shape == (g.shape if d in (0, 2, 4, 5) else g.shape[::-1]), DIHEDRAL_NAMES[d]
        assert same(aug.invert_grid(out), g), DIHEDRAL_NAMES[d]
        assert same(aug.inverse().apply_grid(out), g), DIHEDRAL_NAMES[d]


@SETTINGS
@given(grids(), st.one_of(color_perms, bg_color_perms))
def test_every_color_permutation_inverts(g, colors):
    aug = Augmentation(colors=colors)
    out = aug.apply_grid(g)
    assert same(out, np.array(colors, dtype=np.uint8)[g])  # new = colors[old], cell by cell
    assert same(aug.invert_grid(out), g)
    assert same(aug.inverse().apply_grid(out), g)


@SETTINGS
@given(grids(), augmentations)
def test_apply_then_invert_is_identity(g, aug):
    out = aug.apply_grid(g)
    assert out.dtype == np.uint8 and out.flags["C_CONTIGUOUS"]
    assert same(aug.invert_grid(out), g)
    assert same(aug.inverse().apply_grid(out), g)
    # Also the other way round: invert first, then apply.
    assert same(aug.apply_grid(aug.invert_grid(g)), g)


@SETTINGS
@given(grids(), augmentations, augmentations)
def test_then_is_apply_a_then_b_and_its_inverse_undoes_it(g, a, b):
    ab = a.then(b)
    assert same(ab.apply_grid(g), b.apply_grid(a.apply_grid(g)))
    assert same(ab.invert_grid(ab.apply_grid(g)), g)
    assert same(ab.inverse().apply_grid(ab.apply_grid(g)), g)
    # (a then b)^-1 == b^-1 then a^-1
    assert ab.inverse() == b.inverse().then(a.inverse())
    assert a.then(a.inverse()).is_identity


@SETTINGS
@given(augmentations, augmentations, augmentations)
def test_then_is_associative(a, b, c):
    assert a.then(b).then(c) == a.then(b.then(c))


def test_geometry_and_color_commute():
    rng = np.random.default_rng(0)
    g = rng.integers(0, 10, size=(4, 7), dtype=np.uint8)
    for d in range(8):
        colors = random_colors(rng, keep_background=False)
        lut = np.array(colors, dtype=np.uint8)
        assert same(Augmentation(d, colors).apply_grid(g), dihedral(d, lut[g]))
        assert same(Augmentation(d, colors).apply_grid(g), lut[dihedral(d, g)])


# ---- the dihedral group ----------------------------------------------------------------------


GENERIC = {
    # Distinct cells, so no dihedral element other than identity fixes them.
    "2x3": np.arange(6, dtype=np.uint8).reshape(2, 3),
    "3x3": np.arange(9, dtype=np.uint8).reshape(3, 3),
}


def _index_of(img: np.ndarray, images: list[np.ndarray]) -> int:
    hits = [i for i, im in enumerate(images) if same(im, img)]
    assert len(hits) == 1, "image not found exactly once among the 8 dihedral images"
    return hits[0]


@pytest.mark.parametrize("key", GENERIC)
def test_eight_dihedral_elements_are_distinct(key):
    g = GENERIC[key]
    images = [dihedral(d, g) for d in range(8)]
    keys = {bytes(im.shape) + im.tobytes() for im in images}
    assert len(keys) == 8
    assert len(set(DIHEDRAL_NAMES)) == 8


@pytest.mark.parametrize("key", GENERIC)
def test_dihedral_elements_match_their_names(key):
    g = GENERIC[key]
    expected = {
        "identity": g,
        "rot90": np.rot90(g),
        "rot180": g[::-1, ::-1],
        "rot270": np.rot90(g, -1),
        "flip_ud": g[::-1],
        "flip_lr": g[:, ::-1],
        "transpose": g.T,
        "anti_transpose": g[::-1, ::-1].T,
    }
    for d, name in enumerate(DIHEDRAL_NAMES):
        assert np.array_equal(dihedral(d, g), expected[name]), name


@pytest.mark.parametrize("a,b", list(itertools.product(range(8), range(8))))
def test_composition_table_is_closed_and_correct(a, b):
    c = dihedral_then(a, b)
    assert 0 <= c < 8
    for g in GENERIC.values():
        images = [dihedral(d, g) for d in range(8)]
        composed = dihedral(b, dihedral(a, g))
        assert _index_of(composed, images) == c  # closure: a then b is one of the 8
        assert same(Augmentation(a).then(Augmentation(b)).apply_grid(g), composed)


def test_group_axioms():
    table = [[dihedral_then(a, b) for b in range(8)] for a in range(8)]
    for a in range(8):
        assert sorted(table[a]) == list(range(8))  # each row a permutation (Latin square)
        assert sorted(row[a] for row in table) == list(range(8))
        assert table[0][a] == a and table[a][0] == a  # 0 is the identity
        inv = dihedral_inverse(a)
        assert table[a][inv] == 0 and table[inv][a] == 0
    # D8 is not abelian: rot90 then flip_lr != flip_lr then rot90
    assert table[1][5] != table[5][1]
    # element orders: identity 1, rot90/rot270 4, the rest 2
    orders = []
    for a in range(8):
        x, k = a, 1
        while x != 0:
            x, k = dihedral_then(x, a), k + 1
        orders.append(k)
    assert sorted(orders) == [1, 2, 2, 2, 2, 2, 4, 4]


# ---- color permutations -----------------------------------------------------------------------


@pytest.mark.parametrize("keep_background", [True, False])
def test_random_colors_are_bijections(keep_background):
    rng = np.random.default_rng(123)
    moved_zero = 0
    seen = set()
    for _ in range(200):
        colors = random_colors(rng, keep_background=keep_background)
        assert isinstance(colors, tuple) and len(colors) == 10
        assert sorted(colors) == list(range(10))
        assert all(type(c) is int for c in colors)
        if keep_background:
            assert colors[0] == 0
        moved_zero += colors[0] != 0
        seen.add(colors)
        Augmentation(colors=colors)  # accepted as a valid permutation
    assert len(seen) > 150  # actually random
    if not keep_background:
        assert moved_zero > 100  # 0 is permuted like any other color (expected ~180/200)


def test_random_colors_is_seeded():
    a = [random_colors(np.random.default_rng(5)) for _ in range(3)]
    assert a[0] == a[1] == a[2]
    assert random_colors(np.random.default_rng(5)) != random_colors(np.random.default_rng(6))


@SETTINGS
@given(grids(), bg_color_perms)
def test_background_fixed_keeps_zero_cells(g, colors):
    out = Augmentation(colors=colors).apply_grid(g)
    assert np.array_equal(out == 0, g == 0)


# ---- task-level ----------------------------------------------------------------------------


@st.composite
def tasks(draw):
    n_train = draw(st.integers(1, 5))
    n_test = draw(st.integers(1, 2))
    g = grids(max_side=8)
    train = tuple(Pair(draw(g), draw(g)) for _ in range(n_train))
    tests = tuple(draw(g) for _ in range(n_test))
    outs = draw(st.one_of(st.none(), st.just(tuple(draw(g) for _ in range(n_test)))))
    return Task("t", train, tests, outs)


@st.composite
def task_and_aug(draw):
    task = draw(tasks())
    order = draw(st.one_of(st.none(), st.permutations(list(range(len(task.train)))).map(tuple)))
    aug = Augmentation(draw(st.integers(0, 7)), draw(color_perms), order)
    return task, aug


@SETTINGS
@given(task_and_aug())
def test_apply_task_equals_apply_grid_on_every_grid(ta):
    task, aug = ta
    out = aug.apply_task(task)
    assert out.id == task.id
    order = aug.order if aug.order is not None else range(len(task.train))
    assert len(out.train) == len(task.train)
    for new, i in zip(out.train, order):
        assert same(new.input, aug.apply_grid(task.train[i].input))
        assert same(new.output, aug.apply_grid(task.train[i].output))
    assert len(out.test_inputs) == len(task.test_inputs)
    for new, old in zip(out.test_inputs, task.test_inputs):
        assert same(new, aug.apply_grid(old))
    if task.test_outputs is None:
        assert out.test_outputs is None
    else:
        assert all(same(n, aug.apply_grid(o)) for n, o in zip(out.test_outputs, task.test_outputs))


def _tasks_equal(a: Task, b: Task) -> bool:
    if len(a.train) != len(b.train) or len(a.test_inputs) != len(b.test_inputs):
        return False
    ok = all(same(p.input, q.input) and same(p.output, q.output) for p, q in zip(a.train, b.train))
    ok &= all(same(x, y) for x, y in zip(a.test_inputs, b.test_inputs))
    if (a.test_outputs is None) != (b.test_outputs is None):
        return False
    if a.test_outputs is not None:
        ok &= all(same(x, y) for x, y in zip(a.test_outputs, b.test_outputs))
    return ok


@SETTINGS
@given(task_and_aug())
def test_inverse_restores_task_and_train_order(ta):
    task, aug = ta
    assert _tasks_equal(aug.inverse().apply_task(aug.apply_task(task)), task)
    assert _tasks_equal(aug.then(aug.inverse()).apply_task(task), task)


@SETTINGS
@given(task_and_aug(), st.data())
def test_then_on_tasks_composes_orders(ta, data):
    task, a = ta
    n = len(task.train)
    b_order = data.draw(st.one_of(st.none(), st.permutations(list(range(n))).map(tuple)))
    b = Augmentation(data.draw(st.integers(0, 7)), data.draw(color_perms), b_order)
    assert _tasks_equal(a.then(b).apply_task(task), b.apply_task(a.apply_task(task)))


def test_order_permutes_train_pairs_explicitly():
    train = tuple(Pair(np.full((1, 1), i, np.uint8), np.full((1, 2), i, np.uint8)) for i in range(4))
    task = Task("t", train, (np.zeros((1, 1), np.uint8),))
    aug = Augmentation(order=(2, 0, 3, 1))
    out = aug.apply_task(task)
    assert [int(p.input[0, 0]) for p in out.train] == [2, 0, 3, 1]
    back = aug.inverse().apply_task(out)
    assert [int(p.input[0, 0]) for p in back.train] == [0, 1, 2, 3]
    assert aug.inverse().order == (1, 3, 0, 2)


def test_apply_task_rejects_order_of_wrong_length():
    task = Task("t42", (Pair(np.zeros((1, 1), np.uint8), np.zeros((1, 1), np.uint8)),) * 2, (np.zeros((1, 1), np.uint8),))
    with pytest.raises(ValueError, match=r"t42.*3 entries for 2 train pairs"):
        Augmentation(order=(0, 1, 2)).apply_task(task)


# ---- names and validation --------------------------------------------------------------------


def test_names_are_readable_and_unique():
    assert Augmentation().name == "identity" and Augmentation().is_identity
    assert Augmentation(order=(0, 1, 2)).is_identity
    assert Augmentation(1, (0, 2, 1, 3, 4, 5, 6, 7, 8, 9), (2, 0, 1)).name == "rot90+c0213456789+o2,0,1"
    rng = np.random.default_rng(0)
    augs = {Augmentation(d, random_colors(rng), None) for d in range(8) for _ in range(20)}
    assert len({a.name for a in augs}) == len(augs)


def test_augmentations_are_hashable_values():
    a = Augmentation(3, tuple(reversed(range(10))), (1, 0))
    b = Augmentation(3, tuple(reversed(range(10))), (1, 0))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != Augmentation(3, tuple(reversed(range(10))), (0, 1))


@pytest.mark.parametrize(
    "kwargs,match",
    [
        pytest.param({"dihedral": 8}, "dihedral index 8 is not in 0..7", id="dihedral-8"),
        pytest.param({"dihedral": -1}, "dihedral index -1 is not in 0..7", id="dihedral-negative"),
        pytest.param({"dihedral": 100}, "dihedral index 100", id="dihedral-100"),
        pytest.param({"colors": (0, 0, 2, 3, 4, 5, 6, 7, 8, 9)}, "not a permutation of 0..9", id="colors-repeated"),
        pytest.param({"colors": tuple(range(9))}, "not a permutation of 0..9", id="colors-too-few"),
        pytest.param({"colors": tuple(range(11))}, "not a permutation of 0..9", id="colors-too-many"),
        pytest.param({"colors": tuple(range(1, 11))}, "not a permutation of 0..9", id="colors-out-of-range"),
        pytest.param({"order": (0, 0, 1)}, "not a permutation", id="order-repeated"),
        pytest.param({"order": (1, 2)}, "not a permutation", id="order-out-of-range"),
    ],
)
def test_validation_errors(kwargs, match):
    with pytest.raises(ValueError, match=match):
        Augmentation(**kwargs)
