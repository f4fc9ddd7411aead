import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def root() -> Path:
    return ROOT


@pytest.fixture(autouse=True)
def _no_color(monkeypatch, tmp_path_factory):
    monkeypatch.setenv("NO_COLOR", "1")
    # remote stores keep their stat and compile caches under XDG_CACHE_HOME: not in $HOME
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")


def pytest_addoption(parser):
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite tests/golden/ with what the targets generate now (review the diff)")


@pytest.fixture
def golden(request):
    """Compares generated files with tests/golden/ (or rewrites them: --update-golden)."""
    from golden import Golden

    return Golden(update=request.config.getoption("--update-golden"))
