"""The conformance corpus: specs/valid must compile cleanly; every specs/invalid
file must give exactly the diagnostics its header expects, at the expected places.

Header format of an invalid spec (one line per expected error, in any order):
    # expect: E0203 at 28:14
"""

import re
from pathlib import Path

import pytest

from pipespec.compiler.codes import CODES
from pipespec.compiler.ir import Graph
from pipespec.compiler.lower import compile_file

ROOT = Path(__file__).resolve().parent.parent
VALID = sorted((ROOT / "specs" / "valid").glob("*.yaml"))
INVALID = sorted((ROOT / "specs" / "invalid").glob("*.yaml"))
EXPECT = re.compile(r"^#\s*expect:\s*(E\d{4})\s+at\s+(\d+):(\d+)\s*$", re.M)


def expectations(path: Path) -> list[tuple[str, int, int]]:
    text = path.read_bytes().decode("utf-8", errors="replace")
    found = [(c, int(line), int(col)) for c, line, col in EXPECT.findall(text)]
    sidecar = path.with_suffix(".expect")
    if sidecar.exists():
        found += [(c, int(line), int(col)) for c, line, col in EXPECT.findall(sidecar.read_text())]
    return sorted(found)


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_valid_spec_compiles(path):
    result = compile_file(str(path))
    assert [d for d in result.diagnostics if d.severity == "error"] == []
    text = result.ir.to_json()
    assert Graph.from_json(text) == result.ir
    assert Graph.from_json(text).to_json() == text
    assert compile_file(str(path)).ir.to_json() == text  # deterministic


@pytest.mark.parametrize("path", INVALID, ids=lambda p: p.name)
def test_invalid_spec_reports_expected_diagnostics(path):
    expected = expectations(path)
    assert expected, f"{path.name} has no '# expect: CODE at LINE:COL' header"
    result = compile_file(str(path))
    assert result.ir is None
    got = sorted((d.code, d.span.line if d.span else 0, d.span.col if d.span else 0)
                 for d in result.diagnostics if d.severity == "error")
    assert got == expected


def test_corpus_sizes():
    assert len(VALID) >= 20
    assert len(INVALID) >= 40


def test_every_code_has_an_invalid_example():
    covered = {c for p in INVALID for c, _, _ in expectations(p)}
    errors = {c for c in CODES if c.startswith("E")}  # warnings are tested in test_warnings.py
    missing = sorted(c for c in errors - covered - CLI_ONLY_CODES if not c.startswith("E08"))
    assert missing == []


# codes only reachable from the command line (overrides), exercised in test_cli.py;
# E08xx are run-time codes, exercised by the runtime tests
CLI_ONLY_CODES = {"E0702"}


def test_spec_md_documents_every_code_and_links_existing_files():
    text = (ROOT / "SPEC.md").read_text()
    assert sorted(c for c in CODES if f"| {c} |" not in text) == []
    links = re.findall(r"\]\((specs/invalid/[^)]+)\)", text)
    assert links and [p for p in links if not (ROOT / p).exists()] == []
