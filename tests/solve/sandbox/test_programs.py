import pytest

from solve.sandbox.programs import extract_program, normalize_source

FN = "def transform(grid):\n    return grid\n"


@pytest.mark.parametrize(
    "text, expected_source, how",
    [
        pytest.param(f"Here:\n```python\n{FN}```\nDone.", FN, "fenced", id="fenced"),
        pytest.param(f"```python\ndef transform(g):\n    return 1\n```\nBetter:\n```python\n{FN}```", FN, "fenced",
                     id="last_block_wins"),
        pytest.param(f"```python\n{FN}```\n```python\nprint('test')\n```", FN, "fenced", id="last_defining_block"),
        pytest.param(f"```py\n{FN}```", FN, "fenced", id="py_tag"),
        pytest.param(f"```\n{FN}```", FN, "fenced", id="untagged"),
        pytest.param(f"```python\n{FN}", FN, "fenced", id="unterminated_fence"),
        pytest.param(f"The idea is to copy.\nimport numpy as np\n\n{FN}\nThis works because of symmetry.",
                     f"import numpy as np\n\n{FN}", "bare", id="bare_with_import_and_prose"),
        pytest.param(f"{FN}", FN, "bare", id="bare_only"),
    ],
)
def test_extract(text, expected_source, how):
    got = extract_program(text)
    assert (got.source, got.how) == (expected_source, how)


@pytest.mark.parametrize(
    "text, reason",
    [
        pytest.param("", "empty", id="empty"),
        pytest.param("I cannot solve this.", "no_transform", id="prose"),
        pytest.param("```python\ndef solve(g):\n    return g\n```", "no_transform", id="wrong_name"),
    ],
)
def test_extract_nothing(text, reason):
    got = extract_program(text)
    assert got.source is None and got.reason == reason and got.how == "none"


@pytest.mark.parametrize(
    "a, b, same",
    [
        pytest.param(FN, "def transform(grid):  # copy\n\n    return grid", True, id="comments_blank_lines"),
        pytest.param(FN, 'def transform(grid):\n    """Doc."""\n    return grid\n', True, id="docstring"),
        pytest.param(FN, "def transform(grid):\n    return (grid)\n", True, id="redundant_parens"),
        pytest.param(FN, "def transform(grid):\n    return grid[::-1]\n", False, id="different_code"),
        pytest.param("def transform(:\n  x", "def transform(:   \n\n  x", True, id="syntax_error_whitespace"),
        pytest.param("def transform(:\n  x", "def transform(:\n  y", False, id="syntax_error_different"),
    ],
)
def test_normalize(a, b, same):
    assert (normalize_source(a) == normalize_source(b)) is same
