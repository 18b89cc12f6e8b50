"""Grid text format: exact round trip, and a parser that rejects anything malformed with a reason."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from augment.gridtext import GridParseError, grid_to_text, parse_prefix_grid, text_to_grid

SETTINGS = settings(max_examples=100, deadline=None)

grids = hnp.arrays(
    np.uint8, st.tuples(st.integers(1, 30), st.integers(1, 30)), elements=st.integers(0, 9)
)


@SETTINGS
@given(grids)
def test_round_trip(g):
    text = grid_to_text(g)
    back = text_to_grid(text)
    assert back.dtype == np.uint8 and back.shape == g.shape and np.array_equal(back, g)
    # One line per row plus the header; one character per cell.
    lines = text.split("\n")
    assert lines[0] == f"{g.shape[0]}x{g.shape[1]}"
    assert len(lines) == g.shape[0] + 1 and all(len(ln) == g.shape[1] for ln in lines[1:])
    assert not text.endswith("\n")


@SETTINGS
@given(grids, st.sampled_from(["", "\n", "\n\n", "  \n"]), st.sampled_from(["", "\n", "\n\n  \n"]))
def test_surrounding_blank_lines_are_allowed(g, before, after):
    assert np.array_equal(text_to_grid(before + grid_to_text(g) + after), g)


@SETTINGS
@given(grids, st.text(max_size=40))
def test_prefix_parser_ignores_trailing_text(g, tail):
    text = grid_to_text(g) + "\n" + tail
    assert np.array_equal(parse_prefix_grid(text), g)


@SETTINGS
@given(grids, grids)
def test_prefix_parser_takes_only_the_first_grid(a, b):
    assert np.array_equal(parse_prefix_grid(grid_to_text(a) + "\n" + grid_to_text(b)), a)


def test_exact_format():
    g = np.array([[0, 1], [2, 0], [7, 7]], np.uint8)
    assert grid_to_text(g) == "3x2\n01\n20\n77"
    assert grid_to_text(np.array([[5]], np.uint8)) == "1x1\n5"


def test_prefix_parser_examples():
    assert parse_prefix_grid("2x2\n12\n34\n<|im_end|>garbage").tolist() == [[1, 2], [3, 4]]
    assert parse_prefix_grid("\n\n1x3\n000\n\nand then 9x9").tolist() == [[0, 0, 0]]
    assert parse_prefix_grid("1x1\n9").tolist() == [[9]]


# (id, text, fragment the message must contain)
BAD_TEXTS = [
    ("empty", "", "empty text"),
    ("only-blank-lines", "\n  \n\n", "empty text"),
    ("ragged-short-row", "2x3\n012\n01", "row 1 has 2 cells, header says 3"),
    ("ragged-long-row", "2x2\n01\n012", "row 1 has 3 cells, header says 2"),
    ("no-header", "01\n23", "first line '01' is not a shape header like '3x4'"),
    ("header-with-spaces", "2 x 2\n01\n23", "is not a shape header"),
    ("header-capital-X", "2X2\n01\n23", "is not a shape header"),
    ("header-comma", "2,2\n01\n23", "is not a shape header"),
    ("header-negative", "-1x2\n01", "is not a shape header"),
    ("header-extra-text", "Output: 2x2\n01\n23", "is not a shape header"),
    ("header-unicode-digits", "\u0661x\u0662\n01", "is not a shape header"),  # ARABIC-INDIC 1x2
    ("header-fullwidth-digits", "\uff11x\uff11\n0", "is not a shape header"),
    ("header-31x31", "31x31\n" + "\n".join(["0" * 31] * 31), "shape 31x31 is outside 1x1..30x30"),
    ("header-31x1", "31x1\n" + "\n".join(["0"] * 31), "shape 31x1 is outside 1x1..30x30"),
    ("header-1x31", "1x31\n" + "0" * 31, "shape 1x31 is outside 1x1..30x30"),
    ("header-0x0", "0x0", "shape 0x0 is outside"),
    ("header-0x3", "0x3\n", "shape 0x3 is outside"),
    ("too-few-rows", "3x2\n01\n23", "header says 3 rows, found 2"),
    ("too-many-rows", "1x2\n01\n23", "header says 1 rows, found 2"),
    ("trailing-text-not-allowed", "1x2\n01\ndone", "header says 1 rows, found 2"),
    ("blank-line-inside", "2x2\n01\n\n23", "header says 2 rows, found 3"),
    ("letter", "2x2\n0a\n23", "row 0 has a character that is not a digit 0-9: '0a'"),
    ("space-between-cells", "1x5\n0 1 2", "row 0 has a character that is not a digit 0-9"),
    ("minus-sign", "1x2\n-1", "row 0 has a character that is not a digit"),
    ("unicode-digit", "1x2\n0\u0663", "row 0 has a character that is not a digit"),  # ARABIC-INDIC THREE
    ("superscript-digit", "1x2\n0\u00b2", "row 0 has a character that is not a digit"),
    ("fullwidth-digit", "1x2\n0\uff11", "row 0 has a character that is not a digit"),
]


@pytest.mark.parametrize("text,reason", [pytest.param(t, r, id=i) for i, t, r in BAD_TEXTS])
def test_parser_rejects_with_reason(text, reason):
    with pytest.raises(GridParseError) as info:
        text_to_grid(text)
    assert reason in str(info.value)


@pytest.mark.parametrize(
    "text,reason",
    [
        pytest.param("", "empty text", id="empty"),
        pytest.param("   \n\n", "empty text", id="blank"),
        pytest.param("hello\n2x2\n01\n23", "first line 'hello' is not a shape header", id="no-header"),
        pytest.param("3x2\n01\n23", "header says 3 rows, found 2", id="too-few-rows"),
        pytest.param("2x2\n01\n2", "row 1 has 1 cells, header says 2", id="ragged"),
        pytest.param("2x2\n01\nab\n99", "row 1 has a character that is not a digit", id="bad-char"),
        pytest.param("31x31\n" + "\n".join(["0" * 31] * 31), "shape 31x31 is outside", id="31x31"),
        pytest.param("0x0\n\n", "shape 0x0 is outside", id="0x0"),
        pytest.param("\u0661x\u0661\n5\n", "is not a shape header", id="unicode-header"),
    ],
)
def test_prefix_parser_rejects_with_reason(text, reason):
    with pytest.raises(GridParseError) as info:
        parse_prefix_grid(text)
    assert reason in str(info.value)


def test_parse_error_is_a_value_error():
    assert issubclass(GridParseError, ValueError)


@SETTINGS
@given(grids, st.data())
def test_corrupting_one_cell_is_rejected(g, data):
    lines = grid_to_text(g).split("\n")
    r = data.draw(st.integers(1, len(lines) - 1))
    c = data.draw(st.integers(0, len(lines[r]) - 1))
    bad = data.draw(st.sampled_from(list("aX.-#") + ["\u0663"]))
    lines[r] = lines[r][:c] + bad + lines[r][c + 1 :]
    with pytest.raises(GridParseError, match="not a digit 0-9"):
        text_to_grid("\n".join(lines))


@SETTINGS
@given(grids, st.data())
def test_dropping_a_row_is_rejected(g, data):
    lines = grid_to_text(g).split("\n")
    r = data.draw(st.integers(1, len(lines) - 1))
    del lines[r]
    with pytest.raises(GridParseError, match=f"header says {g.shape[0]} rows, found {g.shape[0] - 1}"):
        text_to_grid("\n".join(lines))
