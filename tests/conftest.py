import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _no_color(monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    # XDG_CACHE_HOME (where remote stores keep their stat and compile caches, and the local
    # key lives) is set for the whole session by _cache_home below
    monkeypatch.setenv("XDG_CACHE_HOME", os.environ["XDG_CACHE_HOME"])  # a test's change is undone
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ with what the targets generate now (review the diff)")


@pytest.fixture
def golden(request):
    """Compares generated files with tests/golden/ (or rewrites them: --update-golden)."""
    from golden import Golden

    return Golden(update=request.config.getoption("--update-golden"))


# --- the fast inner loop: modules a -m expression excludes are not imported ----------------
# `pytest -m "not airflow and not ray and not kubeflow and not slow"` would still import every
# test module to read its marks, and the Airflow, Ray and kfp test modules import those at
# module level (seconds each).  A module whose top-level `pytestmark = pytest.mark.X` (or a
# list of such) already decides -m for every test it could hold is not imported at all.


def pytest_ignore_collect(collection_path: Path, config):
    markexpr = config.getoption("markexpr", default="")
    if not markexpr or collection_path.suffix != ".py" or not collection_path.name.startswith("test_"):
        return None
    marks = _module_marks(collection_path)
    return True if marks is not None and _excluded(markexpr, marks) else None


def _module_marks(path: Path) -> set[str] | None:
    """The names in a module's top-level `pytestmark`, read without importing it (None: none)."""
    import ast

    try:
        tree = ast.parse(path.read_bytes())
    except (OSError, SyntaxError, ValueError):
        return None
    for stmt in tree.body:
        if isinstance(stmt, ast.Assign) and any(getattr(t, "id", "") == "pytestmark" for t in stmt.targets):
            values = stmt.value.elts if isinstance(stmt.value, (ast.List, ast.Tuple)) else [stmt.value]
            names = {v.attr if isinstance(v, ast.Attribute) and getattr(v.value, "attr", "") == "mark"
                     else None for v in values}  # `pytest.mark.X` only; a call or a variable: None
            return None if None in names else names
    return None


def _excluded(markexpr: str, marks: set[str]) -> bool:
    """True when `markexpr` is false for every test the module could hold: the module's marks
    are on, any other name in the expression may be on or off for a given test."""
    import itertools
    import re

    if "=" in markexpr:  # keyword matching on marks: leave it to pytest
        return False
    try:
        from _pytest.mark import expression as pytest_expression
    except ImportError:  # pytest's private API moved: import everything, as pytest does
        return False
    try:
        expression = pytest_expression.Expression.compile(markexpr)
    except (SyntaxError, getattr(pytest_expression, "ParseError", SyntaxError)):  # pytest reports it
        return False
    free = sorted(set(re.findall(r"[^\s()]+", markexpr)) - {"and", "or", "not"} - marks)
    for values in itertools.product((False, True), repeat=len(free)):
        on = marks | {name for name, value in zip(free, values) if value}
        if expression.evaluate(on.__contains__):
            return False
    return True


@pytest.fixture(scope="session", autouse=True)
def _cache_home(tmp_path_factory):
    """XDG_CACHE_HOME set before any module-scoped fixture runs, so a store that fixture fills
    has compile and stat caches signed with the key later tests read (runtime/localkey.py)."""
    saved = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.getbasetemp() / "xdg-cache")
    yield
    if saved is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = saved
