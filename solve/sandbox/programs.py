"""Find the program in a model's reply, and normalize program text so duplicates can be merged.

A program is Python source that defines `transform(grid)`. We prefer the last fenced code block that
defines it (models often show a draft, then the final version); otherwise we cut a bare `def transform`
out of the prose. Finding nothing is an outcome (`Extracted.source is None` with a reason), not an error.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

# An opening fence with an optional python-ish tag, the body, then a closing fence or the end of the text
# (a reply cut off by the token limit still holds a usable program).
_FENCE = re.compile(r"```[ \t]*(?:python3?|py)?[ \t]*\n(.*?)(?:\n[ \t]*```|\Z)", re.DOTALL | re.IGNORECASE)
_DEF_TRANSFORM = re.compile(r"^[ \t]*def[ \t]+transform[ \t]*\(", re.MULTILINE)
_TOP_DEF = re.compile(r"^def[ \t]+transform[ \t]*\(", re.MULTILINE)
# Lines that may sit above `def transform` in a bare program: imports, helpers, constants, decorators.
_CODEISH = re.compile(r"^(?:[ \t]+\S|import\s|from\s+\S+\s+import\s|def\s|class\s|@|#|[A-Za-z_]\w*\s*=)")
_MAX_PARSE_CHARS = 200_000  # longer texts are not parsed (deeply nested junk can be slow)
_MAX_TRIMS = 200


@dataclass(frozen=True)
class Extracted:
    """A program cut out of model text: `source` is None when none was found, with `reason` saying why."""

    source: str | None
    how: str  # "fenced", "bare" or "none"
    reason: str | None = None  # "empty", "no_transform"


def extract_program(text: str) -> Extracted:
    """The last fenced block defining `transform`, else a bare `def transform` with the code around it."""
    if not text.strip():
        return Extracted(None, "none", "empty")
    blocks = [m.group(1) for m in _FENCE.finditer(text)]
    for block in reversed(blocks):
        if _DEF_TRANSFORM.search(block):
            return Extracted(block.strip("\n") + "\n", "fenced")
    bare = _bare_program(text)
    if bare is not None:
        return Extracted(bare, "bare")
    return Extracted(None, "none", "no_transform")


def _bare_program(text: str) -> str | None:
    defs = list(_TOP_DEF.finditer(text))
    if not defs:
        return None
    lines = text.splitlines()
    def_line = text.count("\n", 0, defs[-1].start())
    start = def_line
    while start > 0 and (not lines[start - 1].strip() or _CODEISH.match(lines[start - 1])):
        start -= 1
    # Prose after the function is cut by trimming trailing lines until the rest parses.
    end = len(lines)
    for _ in range(_MAX_TRIMS):
        candidate = "\n".join(lines[start:end]).strip("\n") + "\n"
        if end <= def_line + 1 or _parses(candidate):
            return candidate
        end -= 1
    return "\n".join(lines[def_line:]).strip("\n") + "\n"  # unparsable: the sandbox records 'syntax'


def _parses(source: str) -> bool:
    if len(source) > _MAX_PARSE_CHARS:
        return False
    try:
        ast.parse(source)
    except (SyntaxError, ValueError, RecursionError, MemoryError):
        return False
    return True


def normalize_source(source: str) -> str:
    """A canonical form for deduplication: ast.unparse without comments and docstrings, with every name
    the program binds itself renamed in order of first appearance (`_v0`, `_v1`, ...), so that copies
    that differ only in variable names merge.

    Kept as written: `transform` (the entry point), names the program does not bind (DSL functions,
    builtins), imported names (`np`), dunders, and any name also used as an attribute or keyword argument (`f(axis=...)`,
    `obj.x`): renaming those could make two programs that behave differently look alike. The renaming is
    one bijection over the whole module, so two programs with the same canonical form differ only by a
    consistent renaming of their own names. Falls back to the text with trailing whitespace and blank
    lines removed when it does not parse.
    """
    if len(source) <= _MAX_PARSE_CHARS:
        try:
            tree = ast.parse(source)
            _strip_docstrings(tree)
            _rename_bound(tree)
            return ast.unparse(tree)
        except (SyntaxError, ValueError, RecursionError, MemoryError):
            pass  # not Python we can parse: fall through to the textual form
    return "\n".join(line.rstrip() for line in source.splitlines() if line.strip())


def _strip_docstrings(tree: ast.AST) -> None:
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)) and node.body:
            first = node.body[0]
            if isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant) and isinstance(first.value.value, str):
                node.body = node.body[1:] or [ast.Pass()]


_KEEP = frozenset({"transform"})


def _preorder(node: ast.AST):
    """Nodes in source order (depth first), so that 'first appearance' is the same for programs of the same shape."""
    yield node
    for child in ast.iter_child_nodes(node):
        yield from _preorder(child)


def _bound_names(tree: ast.AST) -> set[str]:
    """Names the program binds itself: assignment and loop targets, parameters, defs, except/match names."""
    bound: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            bound.add(node.id)
        elif isinstance(node, ast.arg):
            bound.add(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            bound.add(node.name)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            bound.add(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            bound.add(node.rest)
    return bound


def _fixed_names(tree: ast.AST) -> set[str]:
    """Names that must keep their spelling: used as attributes or keyword arguments somewhere."""
    fixed = set(_KEEP)
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute):
            fixed.add(node.attr)
        elif isinstance(node, ast.keyword) and node.arg:
            fixed.add(node.arg)
        elif isinstance(node, ast.alias):  # imported names keep theirs (`np` stays `np`)
            fixed.add(node.asname or node.name.split(".")[0])
    return fixed


def _rename_bound(tree: ast.AST) -> None:
    names = {n for n in _bound_names(tree) - _fixed_names(tree) if not (n.startswith("__") and n.endswith("__"))}
    canon: dict[str, str] = {}

    def new(name: str) -> str:
        if name not in names:
            return name
        return canon.setdefault(name, f"_v{len(canon)}")

    for node in _preorder(tree):
        if isinstance(node, ast.Name):
            node.id = new(node.id)
        elif isinstance(node, ast.arg):
            node.arg = new(node.arg)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            node.name = new(node.name)
        elif isinstance(node, (ast.ExceptHandler, ast.MatchAs, ast.MatchStar)) and node.name:
            node.name = new(node.name)
        elif isinstance(node, ast.MatchMapping) and node.rest:
            node.rest = new(node.rest)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            node.names = [new(n) for n in node.names]
