import json

import numpy as np
import pytest

from augment.tasks import Pair, Task
from solve.pipeline.modes import MODES
from solve.sandbox.verify import ProgramResult
from solve.select.vote import choose_attempts


def g(*rows):
    return np.array(rows, dtype=np.uint8)


TEST_IN = g([1, 2], [3, 4])
TASK = Task("t", (Pair(g([1, 1], [2, 2]), g([2, 2], [1, 1])),), (TEST_IN,))
TWO_TESTS = Task("t2", TASK.train, (TEST_IN, g([5, 6], [7, 8])))
A, B, C, D = g([4, 3], [2, 1]), g([3, 4], [1, 2]), g([2, 1], [4, 3]), g([1, 3], [2, 4])


def res(pid, outs, correct=1, total=1, source="x", copies=1, view="identity", logprob=None, origin="model", lookup=None):
    return ProgramResult(pid, view, source, correct, total, list(outs), {}, 0.0, None, copies, logprob=logprob, origin=origin, lookup=lookup)


def picks(task, results, extras=None, order=MODES["code"].vote_order):
    return [[(a.grid.tolist(), a.reason["tier"]) for a in p] for p in choose_attempts(task, results, extras, order)]


CASES = [
    pytest.param([res("p1", [A]), res("p2", [B]), res("p3", [B])], None, "code",
                 [(B, "verified"), (A, "verified")], id="majority_first"),
    pytest.param([res("p1", [A], source="long program"), res("p2", [B], source="short")], None, "code",
                 [(B, "verified"), (A, "verified")], id="tie_shorter_program"),
    pytest.param([res("p1", [A]), res("p2", [B])], None, "code",
                 [(A, "verified"), (B, "verified")], id="tie_earliest"),
    pytest.param([res("p1", [A]), res("p2", [B], copies=3)], None, "code",
                 [(B, "verified"), (A, "verified")], id="copies_count_as_votes"),
    pytest.param([res("p1", [A], 1, 2), res("p2", [B], 1, 1)], None, "code",
                 [(B, "verified"), (A, "partial")], id="partial_fills_second"),
    pytest.param([res("p1", [A], 1, 3), res("p2", [B], 2, 3), res("p3", [C], 0, 3)], None, "code",
                 [(B, "partial"), (A, "partial")], id="partial_by_accuracy_zero_excluded"),
    pytest.param([res("p1", [A], 1, 2)], [[(C, "tx", 0.9), (D, "tx", 0.5)]], "code",
                 [(A, "partial"), (C, "extra")], id="code_mode_partial_before_extra"),
    pytest.param([res("p1", [A], 1, 2)], [[(C, "tx", 0.9), (D, "tx", 0.5)]], "hybrid",
                 [(C, "extra"), (D, "extra")], id="hybrid_mode_extra_before_partial"),
    pytest.param([res("p1", [A])], [[(C, "tx", 0.9)]], "grid",
                 [(C, "extra"), (TEST_IN, "placeholder")], id="grid_mode_ignores_programs"),
    pytest.param([res("p1", [A]), res("p2", [A])], [[(A, "tx", 0.9)]], "hybrid",
                 [(A, "verified"), (TEST_IN, "placeholder")], id="no_duplicate_attempts"),
    pytest.param([res("p1", [TEST_IN]), res("p2", [g([7, 7], [7, 7])]), res("p3", [None])], None, "code",
                 [(TEST_IN, "placeholder"), (g([0]), "placeholder")], id="degenerate_and_failed_filtered"),
    pytest.param([], None, "code", [(TEST_IN, "placeholder"), (g([0]), "placeholder")], id="no_candidates"),
]


# The verified tier's weight: how often an output was produced (texts, copies included; one per distinct
# behaviour of DSL-search programs) + distinct views; then the shortest program, then the model's
# log-probability of the program under the task's prompt (program_scores), then first appearance.
AGREEMENT = [
    pytest.param([res("p1", [A], copies=5), res("p2", [B]), res("p3", [B])], [(A, 6), (B, 3)], id="copies_count_as_produced"),
    # The defect: two renamed copies of a wrong program (two distinct texts) outvoted a right one written three times.
    pytest.param([res("p1", [A], source="a = 1"), res("p2", [A], source="b = 1"), res("p3", [B], copies=3)], [(B, 4), (A, 3)],
                 id="renamed_copies_do_not_outvote_repeats"),
    pytest.param([res("p1", [A]), res("p2", [A]), res("p3", [B]), res("p4", [B], view="rot90")], [(B, 4), (A, 3)],
                 id="a_second_view_adds_weight"),
    pytest.param([res("p1", [A], view="rot90"), res("p2", [B]), res("p3", [B]), res("p4", [A], view="flip")], [(A, 4), (B, 3)],
                 id="two_views_two_programs_beat_two_programs_one_view"),
    pytest.param([res(f"d{k}", [A], source=f"s{k}", origin="dsl") for k in range(3)] + [res("p1", [B], copies=2)], [(B, 3), (A, 2)],
                 id="dsl_enumerations_of_one_behaviour_count_once"),
    pytest.param([res("p1", [A], logprob=-1.0, source="a longer one"), res("p2", [B], logprob=-9.0, source="short")], [(B, 2), (A, 2)],
                 id="sampled_logprob_is_no_tie_break"),
    pytest.param([res("p1", [A], source="long one"), res("p2", [B], source="short")], [(B, 2), (A, 2)], id="all_unknown_shortest"),
    pytest.param([res("p1", [TEST_IN], logprob=0.0), res("p2", [A], logprob=-5.0), res("p3", [TEST_IN], view="rot90")], [(A, 2)],
                 id="degenerate_still_filtered"),
]


@pytest.mark.parametrize("results, expected", AGREEMENT)
def test_verified_outputs_are_weighted_by_agreement(results, expected):
    (chosen,) = choose_attempts(TASK, results, None, MODES["code"].vote_order)
    verified = [(a.grid.tolist(), a.reason["agreement"]) for a in chosen if a.reason["tier"] == "verified"]
    assert verified == [(grid.tolist(), weight) for grid, weight in expected]


def test_the_reason_keeps_the_best_logprob():
    (chosen,) = choose_attempts(TASK, [res("p1", [A], logprob=-3.0), res("p2", [A]), res("p3", [A], logprob=-1.25)], None, ("verified",))
    assert chosen[0].reason["logprob"] == -1.25 and chosen[0].reason["agreement"] == 4 and "program_logprob" not in chosen[0].reason


def test_program_scores_break_ties_after_length():
    """The model's log-probability of a program under the task's prompt decides between equally supported
    outputs of equally long programs (known beats unknown); it never beats weight or length."""
    tie = [res("p1", [A], source="x = 1"), res("p2", [B], source="y = 2")]
    (chosen,) = choose_attempts(TASK, tie, None, ("verified",), program_scores={"p1": -9.0, "p2": -2.0})
    assert [a.grid.tolist() for a in chosen] == [B.tolist(), A.tolist()] and chosen[0].reason["program_logprob"] == -2.0
    (chosen,) = choose_attempts(TASK, tie, None, ("verified",), program_scores={"p2": -50.0})
    assert chosen[0].grid.tolist() == B.tolist(), "known beats unknown"
    longer = [res("p1", [A], source="x = 1"), res("p2", [B], source="y = 2 + 3")]
    (chosen,) = choose_attempts(TASK, longer, None, ("verified",), program_scores={"p1": -9.0, "p2": -2.0})
    assert chosen[0].grid.tolist() == A.tolist(), "the shorter program first"
    (chosen,) = choose_attempts(TASK, tie + [res("p3", [A])], None, ("verified",), program_scores={"p2": 0.0})
    assert chosen[0].grid.tolist() == A.tolist(), "weight first"


def test_lookup_tables_are_never_verified_and_rank_last_in_partial():
    results = [res("p1", [A], 2, 2, lookup="train output literal"), res("p2", [B], 1, 2)]
    got = picks(TASK, results)
    assert got == [[(B.tolist(), "partial"), (A.tolist(), "partial")]]


@pytest.mark.parametrize("results, extras, mode, expected", CASES)
def test_choose(results, extras, mode, expected):
    got = picks(TASK, results, extras, MODES[mode].vote_order)
    assert got == [[(grid.tolist(), tier) for grid, tier in expected]]


def test_identity_allowed_when_a_train_pair_is_identity():
    task = Task("id", (Pair(g([1]), g([1])), Pair(g([3, 3]), g([2, 2]))), (TEST_IN,))
    assert picks(task, [res("p", [TEST_IN])])[0][0] == (TEST_IN.tolist(), "verified")


def test_constant_allowed_when_a_train_output_is_constant():
    seven = g([7, 7], [7, 7])
    assert picks(TASK, [res("p", [seven])])[0][0] == (TEST_IN.tolist(), "placeholder")
    task = Task("c", (Pair(g([1, 2]), g([5, 5])),), (TEST_IN,))
    assert picks(task, [res("p", [seven])])[0][0] == (seven.tolist(), "verified")


def test_multiple_test_inputs_vote_separately():
    results = [res("p1", [A, C]), res("p2", [B, C]), res("p3", [B, D])]
    got = picks(TWO_TESTS, results)
    assert [a for a, _ in got[0]] == [B.tolist(), A.tolist()]
    assert [a for a, _ in got[1]] == [C.tolist(), D.tolist()]


def test_reasons_are_json():
    chosen = choose_attempts(TASK, [res("p1", [A]), res("p2", [A])], [[(C, "tx", 0.5)]], MODES["hybrid"].vote_order)
    data = json.loads(json.dumps([[{"grid": a.grid.tolist(), **a.reason} for a in picks] for picks in chosen]))
    assert data[0][0]["votes"] == 2 and data[0][0]["programs"] == ["p1", "p2"]
    assert data[0][1] == {"grid": C.tolist(), "tier": "extra", "source": "tx", "score": 0.5, "rank": 0}


def test_unknown_tier_rejected():
    with pytest.raises(ValueError):
        choose_attempts(TASK, [], order=("verified", "magic"))
