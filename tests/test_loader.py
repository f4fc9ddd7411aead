"""The YAML loader: positions, YAML 1.2 core scalars, safety limits, hostile input."""

from __future__ import annotations

import math
import time

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipespec.compiler import loader
from pipespec.compiler.codes import CODES
from pipespec.compiler.diagnostics import Diagnostics
from pipespec.compiler.lower import compile_file, compile_text


def load(text: str):
    diags = Diagnostics()
    doc = loader.load_text(text, "spec.yaml", diags)
    return doc, diags.items


def load_ok(text: str):
    doc, diags = load(text)
    assert diags == [], diags
    assert doc is not None
    return doc


def load_err(text: str, timeout: float = 2.0):
    t0 = time.perf_counter()
    doc, diags = load(text)
    assert time.perf_counter() - t0 < timeout
    assert doc is None
    assert diags, "expected a diagnostic"
    return diags


def codes(diags):
    return [d.code for d in diags]


# --- positions -------------------------------------------------------------------------


def test_positions_of_keys_and_values_are_one_based():
    doc = load_ok("top:\n  key: value\n  list: [a, bb]\n  nested:\n    deep: 42\n")
    assert doc.data == {"top": {"key": "value", "list": ["a", "bb"], "nested": {"deep": 42}}}
    k = doc.key_spans[("top", "key")]
    assert (k.line, k.col, k.end_line, k.end_col) == (2, 3, 2, 6)
    v = doc.spans[("top", "key")]
    assert (v.line, v.col, v.end_col) == (2, 8, 13)
    assert (doc.spans[("top", "list", 1)].line, doc.spans[("top", "list", 1)].col) == (3, 13)
    assert (doc.spans[("top", "nested", "deep")].line, doc.spans[("top", "nested", "deep")].col) == (5, 11)
    assert (doc.key_spans[("top",)].line, doc.key_spans[("top",)].col) == (1, 1)
    assert doc.spans[("top", "key")].file == "spec.yaml"


def test_span_falls_back_to_nearest_ancestor():
    doc = load_ok("a:\n  b: 1\n")
    assert doc.span(("a", "b", "missing", 3)) == doc.spans[("a", "b")]
    assert doc.key_span(("a", "b")).col == 3


def test_expression_span_inside_plain_and_quoted_scalars():
    doc = load_ok('plain: x + yy\nquoted: "x + yy"\n')
    s = doc.expr_span(("plain",), 4, 6)
    assert (s.line, s.col, s.end_col) == (1, 12, 14)
    q = doc.expr_span(("quoted",), 4, 6)
    assert (q.line, q.col, q.end_col) == (2, 14, 16)


def test_expression_span_inside_block_scalar():
    doc = load_ok("expr: |\n  a +\n    bad_col\n")
    value = doc.data["expr"]
    start = value.index("bad_col")
    s = doc.expr_span(("expr",), start, start + 7)
    assert (s.line, s.col) == (3, 5)


# --- YAML 1.2 core scalars ----------------------------------------------------------------


def test_yaml_12_core_scalars():
    doc = load_ok("on: 1\noff: x\nyes: no\ny: Yes\nn: n\nd: 2026-01-01\nts: 2026-01-01T10:00:00\n"
                  "h: 0x1F\no: 0o17\nf: 1.5e3\nt: true\nT: True\n"
                  "nl: ~\nnull2: null\ne: 1_000\nq: '5'\nsexa: 1:30\nneg: -7\nold_octal: 017\n")
    data = doc.data
    assert "on" in data and data["on"] == 1
    assert data["off"] == "x"
    assert data["yes"] == "no" and data["y"] == "Yes" and data["n"] == "n"
    assert data["d"] == "2026-01-01" and isinstance(data["d"], str)
    assert data["ts"] == "2026-01-01T10:00:00"
    assert data["h"] == 31 and data["o"] == 15
    assert data["f"] == 1500.0 and isinstance(data["f"], float)
    assert data["t"] is True and data["T"] is True
    assert data["nl"] is None and data["null2"] is None
    assert data["e"] == "1_000"  # YAML 1.1 only
    assert data["q"] == "5"
    assert data["sexa"] == "1:30"  # YAML 1.1 sexagesimal is gone
    assert data["neg"] == -7
    assert data["old_octal"] == 17  # 1.2: a leading zero is decimal


def test_special_floats_resolve_but_are_rejected_in_specs():
    assert loader.resolve_plain(".inf") == math.inf and loader.resolve_plain("-.Inf") == -math.inf
    assert math.isnan(loader.resolve_plain(".nan"))
    _, diags = load("a: .inf\nb: -.inf\nc: .nan\nd: 1\n")
    assert [(d.code, d.span.line) for d in diags] == [("E0104", 1), ("E0104", 2), ("E0104", 3)]


def test_keys_stay_their_source_text():
    doc = load_ok("on: a\n1: b\ntrue: c\nnull: d\n")
    assert list(doc.data) == ["on", "1", "true", "null"]


def test_explicit_standard_tags():
    doc = load_ok("a: !!str 1\nb: !!int '7'\nc: !!float 2\n")
    assert doc.data == {"a": "1", "b": 7, "c": 2.0}
    assert codes(load_err("a: !!int abc\n")) == ["E0006"]


def test_utf8_bom_is_accepted():
    diags = Diagnostics()
    text = loader.decode_source("\ufeffa: 1\n".encode("utf-8"), "x.yaml", diags)
    assert diags.items == [] and load_ok(text).data == {"a": 1}


# --- duplicate keys ----------------------------------------------------------------------


def test_duplicate_key_is_reported_at_second_occurrence():
    _, diags = load("a: 1\nb:\n  c: 1\n  c: 2\nz: 3\n")
    assert codes(diags) == ["E0004"]
    d = diags[0]
    assert (d.span.line, d.span.col) == (4, 3)
    assert "'c'" in d.message
    assert "line 3" in d.hint


def test_every_duplicate_key_is_reported():
    _, diags = load("a: 1\nb: 2\na: 3\nb: 4\n")
    assert sorted((d.code, d.span.line) for d in diags) == [("E0004", 3), ("E0004", 4)]
    assert [d.hint for d in sorted(diags, key=lambda d: d.span.line)] == [
        "first defined at line 1; remove one of them", "first defined at line 2; remove one of them"]


def test_duplicate_keys_through_compile_text():
    r = compile_text("pipespec: 1\npipeline: x\npipeline: y\n", "s.yaml")
    assert r.ir is None
    assert [(d.code, d.span.line, d.span.col) for d in r.diagnostics] == [("E0004", 3, 1)]


def test_same_key_in_different_mappings_is_fine():
    assert load_ok("a: {x: 1}\nb: {x: 2}\n").data == {"a": {"x": 1}, "b": {"x": 2}}


# --- aliases, merge keys, tags ------------------------------------------------------------


def _billion_laughs(levels: int) -> str:
    lines = ['l0: &l0 ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    for i in range(1, levels + 1):
        lines.append(f"l{i}: &l{i} [" + ",".join([f"*l{i - 1}"] * 10) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("levels", [9, 12])
def test_alias_bomb_is_stopped_quickly(levels):
    diags = load_err(_billion_laughs(levels), timeout=1.0)
    assert codes(diags) == ["E0005"]
    assert diags[0].span is not None


def test_alias_bomb_through_compile_text():
    t0 = time.perf_counter()
    r = compile_text("pipespec: 1\npipeline: x\n" + _billion_laughs(9).replace("l0:", "description:", 0), "s.yaml")
    assert time.perf_counter() - t0 < 2.0
    assert r.ir is None and "E0005" in codes(r.diagnostics)


def test_large_legitimate_spec_is_not_mistaken_for_an_alias_bomb():
    # ~300,000 YAML nodes, far below MAX_NODES, but nested three levels deep: each node must be
    # counted once, not once per enclosing container
    n = 300_000
    assert n * 4 > loader.MAX_NODES > n + 10
    doc = load_ok("a:\n  b:\n    c: [" + ",".join(["1"] * n) + "]\n")
    assert len(doc.data["a"]["b"]["c"]) == n


def test_small_aliases_are_expanded():
    doc = load_ok("a: &x [1, 2]\nb: *x\n")
    assert doc.data == {"a": [1, 2], "b": [1, 2]}


def test_recursive_alias():
    assert codes(load_err("a: &x [1, *x]\n")) == ["E0002"]
    assert codes(load_err("a: &x\n  b: *x\n")) == ["E0002"]


def test_undefined_alias():
    assert codes(load_err("a: *nope\n")) == ["E0002"]


def test_merge_key_is_rejected():
    diags = load_err("base: &b {x: 1}\nderived:\n  <<: *b\n  y: 2\n")
    assert codes(diags) == ["E0006"]
    assert (diags[0].span.line, diags[0].span.col) == (3, 3)


def test_alias_as_key_and_complex_keys_are_rejected():
    assert codes(load_err("a: &k key\n*k : 1\n")) == ["E0006"]
    assert codes(load_err("? [a, b]\n: 1\n")) == ["E0006"]
    assert codes(load_err("? {a: 1}\n: 1\n")) == ["E0006"]


@pytest.mark.parametrize("text", [
    "a: !!python/object/apply:os.system ['touch {marker}']\n",
    "a: !!python/object/new:os.system ['touch {marker}']\n",
    "a: !!python/name:os.system\n",
    "!!python/object/apply:os.system\n- touch {marker}\n",
    "a: !custom x\n",
    "a: !!set {x, y}\n",
    "a: !!binary aGVsbG8=\n",
])
def test_custom_tags_are_rejected_and_nothing_executes(text, tmp_path):
    marker = tmp_path / "pwned"
    diags = load_err(text.replace("{marker}", str(marker)))
    assert codes(diags) == ["E0006"]
    assert not marker.exists()


def test_custom_tag_through_compile_text(tmp_path):
    marker = tmp_path / "pwned"
    r = compile_text(f"pipespec: 1\npipeline: !!python/object/apply:os.system ['touch {marker}']\n")
    assert codes(r.diagnostics) == ["E0006"]
    assert not marker.exists()


# --- document shape --------------------------------------------------------------------------


def test_multi_document_stream():
    diags = load_err("a: 1\n---\nb: 2\n")
    assert codes(diags) == ["E0003"]
    assert diags[0].span.line == 2


@pytest.mark.parametrize("text, kind", [("- a\n- b\n", "list"), ("hello\n", ""), ("42\n", ""), ("true\n", ""),
                                        ("", "empty"), ("# only a comment\n", "empty"), ("---\n", "empty"),
                                        ("null\n", "empty")])
def test_non_mapping_root(text, kind):
    diags = load_err(text)
    assert codes(diags) == ["E0003"]
    assert "mapping" in diags[0].message and kind in diags[0].message
    assert diags[0].span.line in (1, 2) and diags[0].span.col == 1


# --- syntax errors ---------------------------------------------------------------------------


def test_tab_indentation():
    diags = load_err("a:\n\tb: 1\n")
    assert codes(diags) == ["E0002"]
    assert (diags[0].span.line, diags[0].span.col) == (2, 1)


def test_tab_indentation_has_a_hint_about_tabs():
    diags = load_err("a:\n\tb: 1\n")
    assert diags[0].hint and "tab" in diags[0].hint


def test_bad_indentation():
    diags = load_err("a:\n  b: 1\n c: 2\n")
    assert codes(diags) == ["E0002"]
    assert diags[0].span.line == 3


def test_unclosed_flow_and_quote():
    d1 = load_err("a: [1, 2\nb: 3\n")
    d2 = load_err('a: "abc\n')
    assert codes(d1) == ["E0002"] and codes(d2) == ["E0002"]
    assert d1[0].span is not None and d2[0].span is not None


def test_mapping_value_in_plain_scalar_has_hint():
    diags = load_err("a: b: c\n")
    assert codes(diags) == ["E0002"]
    assert "quote" in diags[0].hint


def test_control_characters():
    assert codes(load_err("a: \x01\n")) == ["E0002"]


@pytest.mark.parametrize("text", ["[" * 100_000, "{" * 100_000, "a:\n" + "".join(" " * i + "- \n" for i in range(0, 400, 2)),
                                  "a: " + "[" * 100 + "]" * 100 + "\n"], ids=["brackets", "braces", "block", "flow100"])
def test_deep_nesting_is_e0005_not_a_crash(text):
    diags = load_err(text)
    # `{{` makes a mapping a key, which is refused (E0006) unless the YAML parser's own depth
    # limit (libyaml >= 0.2.6, in PyYAML 6.0.4 wheels) stops it first, which is also E0005
    expected = [["E0005"], ["E0006"]] if text.startswith("{") else [["E0005"]]
    assert codes(diags) in expected


def test_nesting_at_the_limit_is_fine():
    depth = loader.MAX_DEPTH - 1
    doc = load_ok("a: " + "[" * depth + "1" + "]" * depth + "\n")
    value = doc.data["a"]
    for _ in range(depth):
        value = value[0]
    assert value == 1


# --- files ----------------------------------------------------------------------------------------


def _read(path: str):
    diags = Diagnostics()
    text = loader.read_source(path, diags)
    return text, diags.items


def test_binary_file(tmp_path):
    p = tmp_path / "bin.yaml"
    p.write_bytes(b"\x7fELF\x02\x01\x01\x00\x00\x00junk")
    text, diags = _read(str(p))
    assert text is None and codes(diags) == ["E0001"]
    r = compile_file(str(p))
    assert r.ir is None and codes(r.diagnostics) == ["E0001"]


def test_invalid_utf8(tmp_path):
    p = tmp_path / "latin1.yaml"
    p.write_bytes("pipespec: 1\npipeline: caf\xe9\n".encode("latin-1"))
    r = compile_file(str(p))
    assert codes(r.diagnostics) == ["E0001"]
    assert "UTF-8" in r.diagnostics[0].message


def test_missing_file_and_directory(tmp_path):
    r = compile_file(str(tmp_path / "nope.yaml"))
    assert r.ir is None and codes(r.diagnostics) == ["E0001"]
    assert "not found" in r.diagnostics[0].message
    r = compile_file(str(tmp_path))
    assert r.ir is None and codes(r.diagnostics) == ["E0001"]
    assert "directory" in r.diagnostics[0].message


def test_file_size_limit(tmp_path, monkeypatch):
    monkeypatch.setattr(loader, "MAX_FILE_BYTES", 100)
    p = tmp_path / "big.yaml"
    p.write_text("a: " + "x" * 200 + "\n")
    _, diags = _read(str(p))
    assert codes(diags) == ["E0005"]


# --- property tests ---------------------------------------------------------------------------------

PROPS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
KNOWN = set(CODES)

YAML_BITS = ["a", "b", "pipespec", "pipeline", "features", "from", "where", ":", ": ", "- ", "\n", "  ",
             "\t", "[", "]", "{", "}", ",", "&x ", "*x", "!!str ", "!tag ", "<<", "'", '"', "#", "---",
             "...", "|", ">", "?", "1", "0x", ".inf", "~", "${params.x}", "%YAML 1.2\n", "\\", "é", "\x00",
             "\ufeff", "\r"]


def _only_our_diagnostics(text: str):
    result = compile_text(text, "fuzz.yaml")
    assert isinstance(result.diagnostics, list)
    assert {d.code for d in result.diagnostics} <= KNOWN
    for d in result.diagnostics:
        assert d.span is None or (d.span.line >= 1 and d.span.col >= 1)
    if result.ir is None:
        assert result.errors, "no IR but no error either"


@PROPS
@given(st.lists(st.sampled_from(YAML_BITS), max_size=50).map("".join))
def test_yamlish_text_never_raises(text):
    _only_our_diagnostics(text)


@PROPS
@given(st.text(max_size=300))
def test_random_text_never_raises(text):
    _only_our_diagnostics(text)


@PROPS
@given(st.binary(max_size=300))
def test_random_bytes_never_raise(data):
    diags = Diagnostics()
    text = loader.decode_source(data, "fuzz.yaml", diags)
    assert {d.code for d in diags.items} <= KNOWN
    if text is None:
        assert codes(diags.items) == ["E0001"]
    else:
        _only_our_diagnostics(text)


@PROPS
@given(st.binary(max_size=200))
def test_random_files_never_raise(tmp_path_factory, data):
    p = tmp_path_factory.mktemp("fz") / "f.yaml"
    p.write_bytes(data)
    r = compile_file(str(p))
    assert {d.code for d in r.diagnostics} <= KNOWN
    assert r.ir is None or not r.errors


SPEC_KEYS = ["pipespec", "pipeline", "params", "sources", "features", "models", "gates", "rollout", "targets",
             "from", "join", "where", "columns", "select", "drop", "group_by", "aggregate", "format", "path",
             "schema", "estimator", "target", "metrics", "require", "model", "table", "steps", "traffic"]
scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6),
                    st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                    st.sampled_from(["csv", "x > 1", "sum(x)", "${params.seed}", "int64", "churn", "1h",
                                     "sklearn.linear_model.LogisticRegression", "roc_auc"]))
keys = st.one_of(st.sampled_from(SPEC_KEYS), st.text(min_size=1, max_size=10))
documents = st.recursive(scalars, lambda children: st.one_of(
    st.lists(children, max_size=4), st.dictionaries(keys, children, max_size=5)), max_leaves=30)
spec_like = st.fixed_dictionaries(
    {"pipespec": st.sampled_from([1, 2, "1"]), "pipeline": st.sampled_from(["p", "Bad Name", "x-1"])},
    optional={k: documents for k in ["params", "sources", "features", "models", "gates", "rollout", "targets"]})


@PROPS
@given(st.one_of(documents, spec_like), st.booleans())
def test_valid_yaml_documents_only_yield_our_diagnostics(doc, flow):
    text = yaml.safe_dump(doc, default_flow_style=flow, allow_unicode=True, sort_keys=False)
    _only_our_diagnostics(text)
