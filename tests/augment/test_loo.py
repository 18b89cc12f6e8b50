"""Leave-one-out samples: counts, consistency with the original task, dedup, seeding."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from augment.loo import BuildReport, Sample, build_samples, leave_one_out
from augment.sets import SETS, augmentation_stream, get_set
from augment.tasks import Pair, Task, load_dataset
from augment.transforms import Augmentation


def rng(seed: int = 0) -> np.random.Generator:
    return np.random.default_rng(seed)


def generic_task(n_train: int = 4, seed: int = 0, task_id: str = "generic") -> Task:
    """Random non-square grids with several colors: no symmetry, so no duplicate samples."""
    r = np.random.default_rng(seed)
    def g(h, w):
        return r.integers(0, 10, size=(h, w), dtype=np.uint8)
    train = tuple(Pair(g(3, 5), g(4, 2)) for _ in range(n_train))
    return Task(task_id, train, (g(3, 5),), (g(4, 2),))


def symmetric_grid(n: int, colors: tuple[int, ...]) -> np.ndarray:
    """Concentric square rings: invariant under all 8 dihedral elements."""
    i, j = np.indices((n, n))
    ring = np.minimum(np.minimum(i, j), np.minimum(n - 1 - i, n - 1 - j))
    return np.array(colors, dtype=np.uint8)[ring % len(colors)]


def symmetric_task(n_train: int = 3) -> Task:
    train = tuple(
        Pair(symmetric_grid(3 + k, (k % 10, (k + 1) % 10)), symmetric_grid(5 + k, ((k + 2) % 10, (k + 3) % 10, 9)))
        for k in range(n_train)
    )
    return Task("sym", train, (symmetric_grid(4, (1, 2)),))


def expected_sample(task: Task, s: Sample, allow_single_pair: bool = False) -> tuple[tuple[Pair, ...], Pair]:
    """Rebuild a sample's grids from the original task, its augmentation and held-out index."""
    h = s.held_out
    if len(task.train) == 1 and allow_single_pair:
        ctx = task.train
    else:
        ctx = task.train[:h] + task.train[h + 1 :]
    aug = s.augmentation
    order = aug.order if aug.order is not None else range(len(ctx))
    new_ctx = tuple(Pair(aug.apply_grid(ctx[i].input), aug.apply_grid(ctx[i].output)) for i in order)
    return new_ctx, Pair(aug.apply_grid(task.train[h].input), aug.apply_grid(task.train[h].output))


def same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.shape == b.shape and np.array_equal(a, b)


def assert_consistent(task: Task, samples: list[Sample], allow_single_pair: bool = False) -> None:
    for s in samples:
        ctx, held = expected_sample(task, s, allow_single_pair)
        assert s.task_id == task.id
        assert len(s.context) == len(ctx)
        for got, want in zip(s.context, ctx):
            assert same(got.input, want.input) and same(got.output, want.output), s.augmentation.name
        assert same(s.query, held.input) and same(s.target, held.output), s.augmentation.name
        # ...and inverting the augmentation gives the original held-out pair back.
        assert same(s.augmentation.invert_grid(s.query), task.train[s.held_out].input)
        assert same(s.augmentation.invert_grid(s.target), task.train[s.held_out].output)


def assert_report_adds_up(report: BuildReport, samples: list[Sample]) -> None:
    assert report.kept == len(samples)
    assert report.generated == report.kept + sum(report.dropped.values())
    d = report.to_dict()
    assert d["kept"] == report.kept and d["generated"] == report.generated


def keys(samples: list[Sample]) -> list[bytes]:
    return [s.key() for s in samples]


# ---- leave-one-out structure --------------------------------------------------------------


@pytest.mark.parametrize("n", [2, 3, 5, 8])
def test_leave_one_out_counts(n):
    task = generic_task(n)
    bases, notes = leave_one_out(task)
    assert notes == []
    assert [idx for _, _, idx in bases] == list(range(n))
    for ctx, held, idx in bases:
        assert len(ctx) == n - 1
        assert held is task.train[idx]
        assert all(p is not held for p in ctx)
        assert list(ctx) == [p for i, p in enumerate(task.train) if i != idx]


@pytest.mark.parametrize("set_name", list(SETS))
@pytest.mark.parametrize("n", [2, 3, 5])
def test_every_held_out_index_is_covered_and_context_has_n_minus_1(set_name, n):
    task = generic_task(n, seed=n)
    samples, report = build_samples(task, get_set(set_name), 16, rng(1))
    assert {s.held_out for s in samples} == set(range(n))
    assert all(len(s.context) == n - 1 for s in samples)
    assert_report_adds_up(report, samples)


@pytest.mark.parametrize("set_name", list(SETS))
def test_every_sample_is_consistent_with_the_original_task(set_name):
    task = generic_task(4, seed=7)
    samples, report = build_samples(task, get_set(set_name), 40, rng(3))
    assert samples
    assert_consistent(task, samples)
    assert_report_adds_up(report, samples)


@pytest.fixture(scope="module")
def eval_tasks() -> list[Task]:
    return load_dataset("arc-agi-1/evaluation").tasks[:25]


def test_samples_of_real_tasks_are_consistent(eval_tasks):
    for i, task in enumerate(eval_tasks):
        spec = get_set("all" if i % 2 else "geometric+color")
        samples, report = build_samples(task, spec, 12, rng(i), permute_background=bool(i % 3 == 0))
        assert len(samples) >= 12, report.to_dict()
        assert_consistent(task, samples)
        assert_report_adds_up(report, samples)
        assert len(set(keys(samples))) == len(samples)


# ---- counts and dedup --------------------------------------------------------------------------


@pytest.mark.parametrize("set_name", ["color", "geometric+color", "all"])
@pytest.mark.parametrize("n_samples", [1, 7, 32])
def test_generic_task_gets_exactly_the_requested_count(set_name, n_samples):
    n = 3
    samples, report = build_samples(generic_task(n), get_set(set_name), n_samples, rng(0))
    assert len(samples) == max(n_samples, n)
    assert len(set(keys(samples))) == len(samples)  # all distinct
    assert report.notes == []
    # Round-robin: every held-out pair is a target about equally often.
    counts = Counter(s.held_out for s in samples)
    assert max(counts.values()) - min(counts.values()) <= 1


def test_identity_comes_first_for_each_held_out_pair():
    n = 4
    samples, _ = build_samples(generic_task(n), get_set("geometric+color"), 32, rng(0))
    assert [s.held_out for s in samples[:n]] == list(range(n))
    assert all(s.augmentation.is_identity for s in samples[:n])


@pytest.mark.parametrize("n", [2, 4])
def test_geometric_on_generic_task_gives_8n_distinct(n):
    samples, report = build_samples(generic_task(n), get_set("geometric"), 100, rng(0))
    assert len(samples) == 8 * n
    assert len(set(keys(samples))) == 8 * n
    assert sorted(Counter(s.augmentation.dihedral for s in samples).values()) == [n] * 8
    assert report.dropped == {}
    assert any(f"only {8 * n} distinct samples" in note and "asked for 100" in note for note in report.notes)


def test_symmetric_grid_really_is_symmetric():
    g = symmetric_grid(5, (1, 2, 3))
    for d in range(8):
        assert same(Augmentation(d).apply_grid(g), g)


@pytest.mark.parametrize("n", [2, 3, 5])
def test_dedup_on_fully_symmetric_task(n):
    task = symmetric_task(n)
    samples, report = build_samples(task, get_set("geometric"), 32, rng(0))
    assert len(samples) == n  # every dihedral image of every sample is the identity image
    assert sorted(s.held_out for s in samples) == list(range(n))
    assert len(set(keys(samples))) == n
    assert report.generated == 8 * n
    assert report.dropped == {"duplicate (symmetric grids)": 7 * n}
    assert any(f"only {n} distinct samples exist under set 'geometric' (asked for 32)" in m for m in report.notes)
    assert_consistent(task, samples)
    assert_report_adds_up(report, samples)


@pytest.mark.parametrize("n", [2, 3])
def test_dedup_tells_shapes_apart(n):
    # Constant 1xk rows: every dihedral image is either the same 1xk row or a kx1 column with the
    # same bytes; the two are different samples, so 2 distinct per held-out pair.
    train = tuple(Pair(np.full((1, 2 + k), k + 1, np.uint8), np.full((1, 3 + k), k + 2, np.uint8)) for k in range(n))
    task = Task("rows", train, (np.full((1, 2), 1, np.uint8),))
    samples, report = build_samples(task, get_set("geometric"), 32, rng(0))
    assert len(samples) == 2 * n
    assert Counter(s.query.shape[0] == 1 for s in samples) == {True: n, False: n}
    assert report.dropped == {"duplicate (symmetric grids)": 6 * n}
    assert_consistent(task, samples)


def test_symmetric_task_with_colors_still_fills_up():
    task = symmetric_task(3)
    samples, report = build_samples(task, get_set("geometric+color"), 32, rng(0))
    assert len(samples) == 32 and len(set(keys(samples))) == 32
    # Fresh colors each draw: distinct even though the geometry adds nothing.
    assert report.notes == []
    assert_consistent(task, samples)


@pytest.mark.parametrize("n", [2, 3, 6])
@pytest.mark.parametrize("n_samples", [0, 1, 32])
def test_none_set_gives_exactly_n_samples(n, n_samples):
    task = generic_task(n)
    samples, report = build_samples(task, get_set("none"), n_samples, rng(0))
    assert len(samples) == n
    assert [s.held_out for s in samples] == list(range(n))
    assert all(s.augmentation.is_identity for s in samples)
    assert_consistent(task, samples)
    assert report.generated == n and report.dropped == {}
    if n_samples > n:
        assert any("only" in m and "'none'" in m for m in report.notes)
    else:
        assert report.notes == []


# ---- seeding ---------------------------------------------------------------------------------


def _signature(samples: list[Sample]) -> list[tuple]:
    return [(s.held_out, s.augmentation, s.key()) for s in samples]


@pytest.mark.parametrize("set_name", ["color", "geometric+color", "all"])
def test_same_seed_same_samples(set_name):
    task = generic_task(4)
    a, ra = build_samples(task, get_set(set_name), 24, rng(42))
    b, rb = build_samples(task, get_set(set_name), 24, rng(42))
    assert _signature(a) == _signature(b)
    assert ra.to_dict() == rb.to_dict()


@pytest.mark.parametrize("set_name", ["color", "geometric+color", "all"])
def test_different_seeds_different_samples(set_name):
    task = generic_task(4)
    a, _ = build_samples(task, get_set(set_name), 24, rng(1))
    b, _ = build_samples(task, get_set(set_name), 24, rng(2))
    assert _signature(a) != _signature(b)
    assert set(keys(a)) != set(keys(b))


def test_stream_is_seeded_and_starts_with_identity():
    for name, spec in SETS.items():
        s1 = augmentation_stream(spec, 3, rng(9))
        s2 = augmentation_stream(spec, 3, rng(9))
        first = [a for a, _ in zip(s1, range(20))]
        assert first == [a for a, _ in zip(s2, range(20))], name
        assert first[0].is_identity, name


# ---- single pair ---------------------------------------------------------------------------


def single_pair_task() -> Task:
    g = np.arange(6, dtype=np.uint8).reshape(2, 3)
    return Task("one", (Pair(g, g + 1),), (g,))


@pytest.mark.parametrize("set_name", list(SETS))
def test_single_pair_task_gives_no_samples_and_a_note(set_name):
    samples, report = build_samples(single_pair_task(), get_set(set_name), 8, rng(0))
    assert samples == []
    assert report.kept == 0 and report.generated == 0
    assert len(report.notes) == 1
    assert "task one has one train pair" in report.notes[0] and "allow_single_pair" in report.notes[0]


@pytest.mark.parametrize("set_name", list(SETS))
def test_single_pair_task_with_allow_single_pair(set_name):
    task = single_pair_task()
    samples, report = build_samples(task, get_set(set_name), 8, rng(0), allow_single_pair=True)
    assert len(samples) >= 1
    assert all(s.held_out == 0 and len(s.context) == 1 for s in samples)
    assert_consistent(task, samples, allow_single_pair=True)
    assert any("used as both context and target" in m for m in report.notes)
    if set_name != "none":
        assert len(samples) == 8


# ---- background ----------------------------------------------------------------------------


@pytest.mark.parametrize("set_name", ["color", "geometric+color", "all"])
def test_background_kept_unless_permute_background(set_name):
    task = generic_task(3)
    kept, _ = build_samples(task, get_set(set_name), 64, rng(0), permute_background=False)
    assert all(s.augmentation.colors[0] == 0 for s in kept)
    for s in kept:  # cells that are 0 stay 0, and only they
        orig = task.train[s.held_out]
        assert same(s.query == 0, s.augmentation.apply_grid(orig.input) == 0)
        assert same(s.query == 0, Augmentation(s.augmentation.dihedral).apply_grid(orig.input) == 0)
        assert same(s.target == 0, Augmentation(s.augmentation.dihedral).apply_grid(orig.output) == 0)
    permuted, _ = build_samples(task, get_set(set_name), 64, rng(0), permute_background=True)
    assert any(s.augmentation.colors[0] != 0 for s in permuted)
    assert_consistent(task, permuted)


# ---- property: any small task -----------------------------------------------------------------


@st.composite
def small_tasks(draw):
    n = draw(st.integers(2, 4))
    shape = st.tuples(st.integers(1, 6), st.integers(1, 6))
    g = hnp.arrays(np.uint8, shape, elements=st.integers(0, 9))
    return Task("h", tuple(Pair(draw(g), draw(g)) for _ in range(n)), (draw(g),))


@settings(max_examples=100, deadline=None)
@given(small_tasks(), st.sampled_from(list(SETS)), st.integers(0, 20), st.integers(0, 2**32 - 1), st.booleans())
def test_any_task_any_set(task, set_name, n_samples, seed, permute_background):
    samples, report = build_samples(task, get_set(set_name), n_samples, rng(seed), permute_background)
    n = len(task.train)
    if len(samples) < n:  # fewer samples than pairs only when identical pairs were deduplicated
        assert report.dropped.get("duplicate (symmetric grids)", 0) > 0
    assert len(samples) <= max(n_samples, n)
    assert len(set(keys(samples))) == len(samples)
    assert_consistent(task, samples)
    assert_report_adds_up(report, samples)
    if len(samples) < n_samples:
        assert any(f"only {len(samples)} distinct samples" in m for m in report.notes)
    if not permute_background:
        assert all(s.augmentation.colors[0] == 0 for s in samples)
