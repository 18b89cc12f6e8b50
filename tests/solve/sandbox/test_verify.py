import numpy as np
import pytest

from augment.tasks import Pair, Task
from augment.transforms import Augmentation
from solve.sandbox.config import SandboxConfig
from solve.sandbox.pool import Sandbox
from solve.sandbox.verify import Candidate, verify

rng = np.random.default_rng(0)
INPUTS = [rng.integers(0, 10, (3, 4)).astype(np.uint8) for _ in range(4)]
TASK = Task(  # answer: mirror left-right
    "mirror", tuple(Pair(g, g[:, ::-1].copy()) for g in INPUTS[:3]), (INPUTS[3],), (INPUTS[3][:, ::-1].copy(),)
)
FLIP_LR = "def transform(g):\n    return [r[::-1] for r in g]\n"
FLIP_UD = "def transform(g):\n    return g[::-1]\n"
ROT90 = Augmentation(dihedral=1, colors=(0, 2, 1, 4, 3, 6, 5, 8, 7, 9))


@pytest.fixture(scope="module")
def sandbox():
    with Sandbox(SandboxConfig(workers=2, timeout_s=1.0)) as sb:
        yield sb


def test_verified_in_plain_and_augmented_views(sandbox):
    # In the rot90 view, mirroring left-right of the original is mirroring up-down.
    results = verify(TASK, [Candidate("plain", FLIP_LR), Candidate("view", FLIP_UD, ROT90)], sandbox)
    for r in results:
        assert (r.train_correct, r.train_total, r.program_error, r.errors) == (3, 3, None, {})
        assert r.test_outputs[0].dtype == np.uint8
        np.testing.assert_array_equal(r.test_outputs[0], TASK.test_outputs[0])
    assert [r.view_name for r in results] == ["identity", ROT90.name]


def test_wrong_view_program_fails(sandbox):
    (r,) = verify(TASK, [Candidate("view", FLIP_LR, ROT90)], sandbox)
    assert r.train_correct == 0 and not r.verified


def test_partial_and_errors(sandbox):
    # Right on train pair 0 only (it recognizes that input), failing elsewhere.
    first = TASK.train[0].input.tolist()
    src = f"def transform(g):\n    if g == {first}:\n        return [r[::-1] for r in g]\n    raise ValueError\n"
    (r,) = verify(TASK, [Candidate("p", src)], sandbox)
    assert (r.train_correct, r.train_total) == (1, 3)
    assert r.errors == {"exception:ValueError": 3} and r.test_outputs == [None]
    assert r.train_accuracy == pytest.approx(1 / 3)


def test_dedupe_by_view_and_normalized_source(sandbox):
    cands = [
        Candidate("a", FLIP_LR),
        Candidate("b", FLIP_LR.replace("\n", "  # same\n", 1)),
        Candidate("c", FLIP_LR, ROT90),
        Candidate("d", "x = (\n"),
    ]
    results = verify(TASK, cands, sandbox)
    assert [(r.program_id, r.copies, r.duplicate_ids) for r in results] == [
        ("a", 2, ("b",)), ("c", 1, ()), ("d", 1, ())]
    assert results[2].program_error == "syntax" and results[2].errors == {"syntax": 4}


def test_train_outputs_are_kept_in_the_views_frame(sandbox):
    """What test-time search needs: per train pair the program's output (in its view's frame) or its error,
    the share of cells right, and the best known log-probability of its copies."""
    first = TASK.train[0].input.tolist()
    src = f"def transform(g):\n    if g == {first}:\n        raise ValueError\n    return [r[::-1] for r in g][::-1]\n"
    cands = [Candidate("p", src, logprob=-7.0), Candidate("q", src + "\n", logprob=-3.5), Candidate("v", FLIP_UD, ROT90),
             Candidate("s", "x = (\n")]
    part, view, broken = verify(TASK, cands, sandbox)
    assert part.logprob == -3.5 and view.logprob is None
    assert part.train_outputs[0] is None and part.train_errors == ["exception:ValueError", None, None]
    for out, pair in zip(part.train_outputs[1:], TASK.train[1:]):
        np.testing.assert_array_equal(out, pair.input[::-1, ::-1])  # rotated 180: right where the rows are palindromes
    expected_cells = np.mean([0.0] + [np.mean(p.input[::-1, ::-1] == p.output) for p in TASK.train[1:]])
    assert part.train_cells == pytest.approx(expected_cells)
    in_view = ROT90.apply_task(TASK)
    for out, pair in zip(view.train_outputs, in_view.train):
        np.testing.assert_array_equal(out, pair.output)  # the view's frame, not the task's
    assert view.train_cells == 1.0 and view.train_errors == [None] * 3
    assert broken.train_outputs == [None] * 3 and broken.train_errors == ["syntax"] * 3 and broken.train_cells == 0.0


def lookup_source(pairs, fallback: str) -> str:
    """A program that answers each train input with its train output, written out; `fallback` otherwise."""
    lines = ["def transform(g):"]
    lines += [f"    if g == {p.input.tolist()}:\n        return {p.output.tolist()}" for p in pairs]
    return "\n".join(lines) + f"\n    return {fallback}\n"


def test_lookup_tables_never_verify(sandbox):
    """Right on every train pair by holding the answers (a train output literal), or by answering the test
    input with a train output: not verified, with the reason; the real rule still verifies."""
    literal = lookup_source(TASK.train, "[r[::-1] for r in g]")
    first = TASK.train[0]
    chosen = (  # holds train inputs only: an input it does not know gets pair 1's answer
        f"def transform(g):\n    if g not in {[p.input.tolist() for p in TASK.train]}:\n"
        f"        g = {first.input.tolist()}\n    return [r[::-1] for r in g]\n"
    )
    got = {r.program_id: r for r in verify(TASK, [Candidate("rule", FLIP_LR), Candidate("literal", literal), Candidate("chosen", chosen)], sandbox)}
    assert all(r.train_correct == 3 for r in got.values())
    assert got["rule"].verified and got["rule"].lookup is None
    assert not got["literal"].verified and got["literal"].lookup == "train output literal"
    assert not got["chosen"].verified and got["chosen"].lookup == "test output is train output 1"


def test_single_cells_and_repeated_outputs_are_not_lookups(sandbox):
    """A 1x1 answer a rule names, and a test answer equal to a train output when train outputs repeat
    (a choice among a few outputs), stay verified."""
    one, two = np.array([[1]], np.uint8), np.array([[2]], np.uint8)
    xs = [np.array([[v, 0]], np.uint8) for v in (1, 2, 1, 2)]
    task = Task("pick", (Pair(xs[0], one), Pair(xs[1], two), Pair(xs[2], one)), (xs[3],), (two,))
    src = "def transform(g):\n    return [[1]] if g[0][0] == 1 else [[2]]\n"
    (r,) = verify(task, [Candidate("p", src)], sandbox)
    assert r.verified and r.lookup is None
    big = [np.full((2, 2), v, np.uint8) for v in (1, 2)]
    task = Task("pick2", (Pair(xs[0], big[0]), Pair(xs[1], big[1]), Pair(xs[2], big[0])), (xs[3],), (big[1],))
    spelled = "def transform(g):\n    return [[1, 1], [1, 1]] if g[0][0] == 1 else [[2, 2], [2, 2]]\n"
    for r in verify(task, [Candidate("p", "def transform(g):\n    v = g[0][0]\n    return [[v, v], [v, v]]\n"), Candidate("q", spelled)], sandbox):
        assert r.verified and r.lookup is None, r.program_id
