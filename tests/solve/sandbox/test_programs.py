import pytest

from solve.sandbox.programs import extract_program, normalize_source

FN = "def transform(grid):\n    return grid\n"
RENAMED_A = (
    "import numpy as np\nfrom solve.dsl import *\n\ndef helper(x):\n    return x + 1\n\n"
    "def transform(grid):\n    out = np.array(grid)\n    for i, row in enumerate(out):\n        out[i] = helper(row)\n"
    "    return [[v for v in r] for r in out]\n"
)
RENAMED_B = (
    "import numpy as np\nfrom solve.dsl import *\n\ndef inc(y):  # one more\n    return y + 1\n\n"
    "def transform(g):\n    res = np.array(g)\n    for k, line in enumerate(res):\n        res[k] = inc(line)\n"
    "    return [[c for c in q] for q in res]\n"
)


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
        # Renamed copies merge (the defect: ast.unparse alone kept every variable name).
        pytest.param(RENAMED_A, RENAMED_B, True, id="renamed_variables"),
        pytest.param("def transform(grid):\n    return rotate(grid)\n", "def transform(grid):\n    return flip(grid)\n", False,
                     id="dsl_calls_keep_their_names"),
        pytest.param("def transform(grid):\n    a = 1\n    b = 2\n    return a - b\n",
                     "def transform(grid):\n    a = 1\n    b = 2\n    return b - a\n", False, id="which_name_where"),
        pytest.param("import numpy as np\ndef transform(g):\n    return np.sum(g, axis=0)\n",
                     "import numpy as np\ndef transform(g):\n    axis = 0\n    return np.sum(g, k=axis)\n", False,
                     id="keyword_names_kept"),
        pytest.param("def h(a):\n    return a\ndef transform(g):\n    return h(a=g)\n",
                     "def h(b):\n    return b\ndef transform(g):\n    return h(a=g)\n", False, id="keyword_bound_name_kept"),
    ],
)
def test_normalize(a, b, same):
    assert (normalize_source(a) == normalize_source(b)) is same
