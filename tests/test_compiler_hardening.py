"""Compiler hardening: names validated whole (a trailing newline is not a name), one home for
the name patterns, and values the IR reader would refuse never compiled in the first place."""

from __future__ import annotations

from pathlib import Path

import pytest
from pipespec.compiler import ir
from pipespec.compiler.ir import Graph
from pipespec.compiler.lower import compile_text

ROOT = Path(__file__).resolve().parent.parent
HEAD = """\
pipespec: 1
pipeline: p
params: {n: 5}
"""
SOURCE = "{format: csv, path: s.csv, schema: {age: int64}}"


def codes(text: str) -> list[tuple[str, int, int]]:
    return [(d.code, d.span.line, d.span.col) for d in compile_text(text, "p.yaml").diagnostics]


@pytest.mark.parametrize("section, body", [
    ("sources", SOURCE),
    ("features", "{from: s}"),
    ("models", ("{from: s, target: age, estimator: sklearn.linear_model.LinearRegression, "
               "metrics: [r2]}")),
    ("gates", "{table: s, require: row_count() > 0}"),
])
def test_a_section_key_with_a_trailing_newline_is_an_invalid_name(section, body):
    extra = "" if section == "sources" else f"sources:\n  s: {SOURCE}\n"
    text = HEAD + extra + f'{section}:\n  "x\\n": {body}\n'
    line = text.count("\n")
    assert ("E0104", line, 3) in codes(text)
    assert compile_text(text).ir is None


def test_a_param_name_with_a_trailing_newline_is_an_invalid_name():
    assert codes('pipespec: 1\npipeline: p\nparams: {"n\\n": 1}\n') == [("E0104", 3, 10)]


def test_the_pipeline_name_is_matched_whole():
    assert codes('pipespec: 1\npipeline: "p\\n"\n') == [("E0104", 2, 11)]


def test_a_param_reference_followed_by_a_newline_is_text_not_the_typed_value():
    text = HEAD + 'sources:\n  s: {format: csv, path: "${params.n}\\n", schema: {age: int64}}\n'
    result = compile_text(text)
    assert result.ok and result.ir.nodes[0].path == "5\n"


def test_every_compiled_name_reads_back():
    text = HEAD + f"sources:\n  s: {SOURCE}\nfeatures:\n  f: {{from: s}}\n"
    graph = compile_text(text).ir
    assert Graph.from_json(graph.to_json()) == graph



def test_lowering_builds_every_id_from_the_prefix_table(monkeypatch):
    spec = ROOT / "specs" / "valid" / "churn_full.yaml"
    for kind, prefix in list(ir.ID_PREFIX.items()):
        monkeypatch.setitem(ir.ID_PREFIX, kind, f"x{prefix}")
    result = compile_text(spec.read_text(), str(spec), base_dir=str(spec.parent))
    assert result.ok, result.errors
    kinds = {n.kind for n in result.ir.nodes}
    assert kinds == set(ir.NODE_KINDS)
    assert all(n.id.startswith("x") for n in result.ir.nodes)
    assert all(n.id == ir.node_id(n.kind, n.name) for n in result.ir.nodes)
    assert Graph.from_json(result.ir.to_json()) == result.ir
