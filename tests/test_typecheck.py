"""Type rules, checked end to end through compile_text on small inline specs."""

from __future__ import annotations

import textwrap

import pytest
from pipespec.compiler.diagnostics import render_text
from pipespec.compiler.lower import compile_text

HEAD = """\
pipespec: 1
pipeline: t
params:
  k: 3
  ratio: 0.5
  name: "hi"
  flag: true
sources:
  src:
    format: csv
    path: x.csv
    schema: {i32: int32, i64: int64, f32: float32, f64: float64, s: string, d: date, ts: timestamp, b: bool, g: string}
features:
"""
HEAD_LINES = HEAD.count("\n")  # the feature body starts on line HEAD_LINES + 3


def feature(body: str, name: str = "f", source: str = "src") -> str:
    return f"  {name}:\n    from: {source}\n" + textwrap.indent(textwrap.dedent(body), "    ")


def compile_(text: str):
    return compile_text(text, "t.yaml")


def diags(text: str):
    return [(d.code, d.span.line if d.span else None, d.span.col if d.span else None)
            for d in compile_(text).diagnostics]


def schema_of(body: str, name: str = "f") -> dict[str, str]:
    r = compile_(HEAD + feature(body, name))
    assert r.errors == [], [(d.code, d.message) for d in r.errors]
    return dict(r.tables[name])


def only_error(body: str):
    r = compile_(HEAD + feature(body))
    assert r.ir is None
    assert len(r.diagnostics) == 1, [(d.code, d.message) for d in r.diagnostics]
    return r.diagnostics[0]


# --- numeric promotion ------------------------------------------------------------------


@pytest.mark.parametrize("expr, expected", [
    ("i32 + i64", "int64"),
    ("i32 + i32", "int32"),
    ("i64 + f64", "float64"),
    ("i32 + f32", "float64"),
    ("i64 * f32", "float64"),
    ("f32 * f32", "float32"),
    ("f32 + f64", "float64"),
    ("i64 / i64", "float64"),
    ("f32 / f32", "float64"),
    ("i32 % i32", "int32"),
    ("i64 - 1", "int64"),
    ("i32 + 1", "int64"),  # an integer literal is int64
    ("f32 * 1.5", "float64"),
    ("-i32", "int32"),
    ("-f32", "float32"),
    ("i64 + params.k", "int64"),
    ("f32 * params.ratio", "float64"),
    ("i64 > f64", "bool"),
    ("d < ts", "bool"),
    ("s == params.name", "bool"),
    ("b and params.flag", "bool"),
    ("abs(i32)", "int32"),
    ("sqrt(i64)", "float64"),
    ("round(f32, 2)", "float32"),
    ("year(d)", "int64"),
    ("days_between(d, ts)", "int64"),
    ("length(s)", "int64"),
    ("lower(s)", "string"),
    ("clip(i32, 0, 10)", "int64"),
])
def test_expression_result_types(expr, expected):
    assert schema_of(f"columns:\n  out: {expr}\n")["out"] == expected


def test_columns_see_earlier_columns_and_replace_types():
    schema = schema_of("columns:\n  a: i32 + 1.0\n  b: a * 2\n  i32: cast(i32, \"string\")\n")
    assert schema["a"] == "float64" and schema["b"] == "float64"
    assert schema["i32"] == "string"
    assert list(schema)[:2] == ["i32", "i64"]  # replaced in place, order kept


# --- operator errors ----------------------------------------------------------------------


@pytest.mark.parametrize("expr", ["d > 5", "d == 1.5", "ts < i64", "d == s"])
def test_date_comparison_with_number_or_string(expr):
    d = only_error(f"where: {expr}\n")
    assert d.code == "E0206"
    assert "compare" in d.message
    assert "date(" in d.hint


def test_date_comparison_with_date_literal_is_fine():
    assert "d" in schema_of('where: d >= date("2026-01-01") and ts < timestamp("2026-01-01T10:00:00")\n')


@pytest.mark.parametrize("expr", ["s + 1", "s * 2", "s - s", "-s", "b + 1", "d + 1"])
def test_arithmetic_on_non_numbers(expr):
    d = only_error(f"columns:\n  out: {expr}\n")
    assert d.code == "E0206"


def test_string_arithmetic_hint():
    d = only_error("columns:\n  out: s + 1\n")
    assert "string" in d.hint
    assert (d.span.line, d.span.col, d.span.end_col) == (HEAD_LINES + 4, 12, 17)


@pytest.mark.parametrize("expr", ["i64 and b", "not s", "b or 1"])
def test_logic_on_non_booleans(expr):
    assert only_error(f"where: {expr}\n").code == "E0206"


@pytest.mark.parametrize("expr, found", [("i64 + 1", "int64"), ("s", "string"), ("coalesce(f64, 1.0)", "float64")])
def test_where_must_be_boolean(expr, found):
    d = only_error(f"where: {expr}\n")
    assert d.code == "E0207"
    assert found in d.message
    assert (d.span.line, d.span.col) == (HEAD_LINES + 3, 12)


def test_bool_ordering_is_rejected():
    assert only_error("where: b < true\n").code == "E0206"


# --- aggregates ---------------------------------------------------------------------------------


def test_aggregate_in_columns():
    d = only_error("columns:\n  total: sum(i64)\n")
    assert d.code == "E0208"
    assert (d.span.col, d.span.end_col) == (14, 22)


def test_aggregate_in_where():
    assert only_error("where: max(i64) > 1\n").code == "E0208"


def test_bare_column_in_aggregate():
    d = only_error("group_by: [g]\naggregate:\n  a: sum(i64) + i64\n")
    assert d.code == "E0208"
    assert "i64" in d.message
    assert d.span.col == 21


def test_group_key_in_aggregate_is_allowed_and_output_order():
    schema = schema_of("group_by: [g, s]\naggregate:\n  n: count()\n  mx: max(d)\n  m: mean(i32)\n"
                       "  t: sum(f32) + sum(i32)\n  c: count_distinct(s)\n")
    assert list(schema.items()) == [("g", "string"), ("s", "string"), ("n", "int64"), ("mx", "date"),
                                    ("m", "float64"), ("t", "float64"), ("c", "int64")]


def test_aggregate_result_types():
    schema = schema_of("group_by: [g]\naggregate:\n  a: sum(i32)\n  b2: sum(f32)\n  c: sum(b)\n  e: stddev(i64)\n")
    assert schema == {"g": "string", "a": "int64", "b2": "float64", "c": "int64", "e": "float64"}


def test_nested_aggregates():
    d = only_error("group_by: [g]\naggregate:\n  a: sum(max(i64))\n")
    assert d.code == "E0208"
    assert "nested" in d.message


def test_aggregate_without_an_aggregate_function():
    assert only_error("group_by: [g]\naggregate:\n  a: 1 + 2\n").code == "E0208"


# --- functions ----------------------------------------------------------------------------------


def test_unknown_function_with_did_you_mean():
    d = only_error("columns:\n  out: sqrtt(f64)\n")
    assert d.code == "E0202"
    assert "did you mean 'sqrt'" in d.hint
    assert (d.span.col, d.span.end_col) == (12, 22)


def test_unknown_function_reports_only_the_function():
    # the argument is fine; the call's failure must not cascade
    r = compile_(HEAD + feature("columns:\n  out: lenght(s) + 1\n  more: out * 2\n"))
    assert [d.code for d in r.diagnostics] == ["E0202"]
    assert "length" in r.diagnostics[0].hint


@pytest.mark.parametrize("expr", ["sqrt(f64, 2)", "sqrt()", "clip(i64, 1)", "if_else(b, 1)", "lower()"])
def test_wrong_arity(expr):
    d = only_error(f"columns:\n  out: {expr}\n")
    assert d.code == "E0204"
    assert "argument" in d.message


@pytest.mark.parametrize("expr, code", [("sqrt(s)", "E0205"), ("year(i64)", "E0205"), ("lower(i64)", "E0205"),
                                         ("round(f64, i64)", "E0205"), ("contains(s, g)", "E0205"),
                                         ('date("2026-13-01")', "E0211"), ('date(s)', "E0205")])
def test_argument_types(expr, code):
    assert only_error(f"columns:\n  out: {expr}\n").code == code


# --- casts ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("expr, expected", [
    ('cast(i64, "float32")', "float32"), ('cast(s, "int64")', "int64"), ('cast(d, "string")', "string"),
    ('cast(ts, "date")', "date"), ('cast(s, "date")', "date"), ('cast(i32, "bool")', "bool"),
    ('cast(b, "int32")', "int32"), ('cast(null, "float64")', "float64"),
])
def test_cast_rules(expr, expected):
    assert schema_of(f"columns:\n  out: {expr}\n")["out"] == expected


@pytest.mark.parametrize("expr, code", [('cast(d, "int64")', "E0205"), ('cast(i64, "date")', "E0205"),
                                         ('cast(b, "timestamp")', "E0205"), ('cast(i64, "int8")', "E0211"),
                                         ('cast(i64, s)', "E0205")])
def test_bad_casts(expr, code):
    assert only_error(f"columns:\n  out: {expr}\n").code == code


# --- unification ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("expr, expected", [
    ("coalesce(i32, f32)", "float64"), ("coalesce(i32, i64)", "int64"), ("coalesce(null, d)", "date"),
    ("coalesce(f32, f32, null)", "float32"), ("coalesce(d, ts)", "timestamp"),
    ("if_else(b, i32, i64)", "int64"), ("if_else(b, d, ts)", "timestamp"), ("if_else(b, s, null)", "string"),
    ("if_else(i64 > 0, 1, 2.5)", "float64"), ("fill_null(f32, 0)", "float64"),
])
def test_coalesce_and_if_else_unify(expr, expected):
    assert schema_of(f"columns:\n  out: {expr}\n")["out"] == expected


@pytest.mark.parametrize("expr", ["coalesce(s, i64)", "if_else(b, s, 1)", "if_else(b, d, 1)", "if_else(i64, 1, 2)"])
def test_unification_failures(expr):
    assert only_error(f"columns:\n  out: {expr}\n").code == "E0205"


def test_null_only_column_has_no_type():
    assert only_error("columns:\n  out: \"null\"\n").code == "E0211"


@pytest.mark.parametrize("literal", ["9223372036854775808", "-9223372036854775809",
                                     "99999999999999999999", "9" * 40])
def test_an_integer_literal_outside_int64_is_out_of_range(literal):
    d = only_error(f"where: i64 >= {literal}\n")
    assert (d.code, d.span.col, d.span.end_col) == ("E0211", 19, 19 + len(literal))
    assert "out of range" in d.message and "64-bit" in d.hint


@pytest.mark.parametrize("literal", ["9" * 41, "9" * 4301])
def test_an_integer_literal_too_long_to_convert_is_out_of_range(literal):
    d = only_error(f"where: i64 >= {literal}\n")
    assert (d.code, d.span.col, d.span.end_col) == ("E0211", 19, 19 + len(literal))


@pytest.mark.parametrize("literal", ["9223372036854775807", "-9223372036854775808",
                                     "-(9223372036854775808)", "1e300"])
def test_int64_bounds_and_large_floats_are_in_range(literal):
    schema_of(f"where: i64 >= {literal}\n")


def test_a_float_literal_that_overflows_is_out_of_range():
    assert only_error("where: f64 < 1e999\n").code == "E0211"


def test_an_integer_param_override_outside_int64_is_refused():
    text = HEAD + feature("where: i64 >= params.k\n")
    for value in ("9223372036854775808", "9" * 5000):
        r = compile_text(text, "t.yaml", overrides=[f"k={value}"])
        assert [(d.code, "64-bit" in d.message) for d in r.diagnostics] == [("E0702", True)]
    assert compile_text(text, "t.yaml", overrides=["k=-9223372036854775808"]).ok


# --- in lists and is null ---------------------------------------------------------------------------------


def test_in_list_type_mismatch():
    d = only_error("where: s in [\"a\", 2]\n")
    assert d.code == "E0206"
    assert d.span.col == 23


def test_in_list_ok_with_params_and_numeric_mix():
    schema_of("where: s in [\"a\", params.name] and i32 not in [1, params.k, 2.5] and d in [date(\"2026-01-01\")]\n")


def test_in_list_items_must_be_literals():
    assert only_error("where: i64 in [i32]\n").code == "E0206"


@pytest.mark.parametrize("expr", ["s is null", "(i64 + 1) is not null", "d is null and b"])
def test_is_null_is_boolean(expr):
    assert schema_of(f"columns:\n  out: {expr}\n")["out"] == "bool"


def test_unknown_column_and_param():
    d = only_error("where: nope > 1\n")
    assert d.code == "E0203"
    d = only_error("where: i64 > params.kk\n")
    assert d.code == "E0209" and "'k'" in d.hint


# --- gates and rollout -----------------------------------------------------------------------------------

MODEL = """\
  ready:
    from: src
    columns:
      y: i64 > 0
    select: [i32, f64, b, y]
models:
  m:
    from: ready
    target: y
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [roc_auc, accuracy]
gates:
{gates}
rollout:
  model: m
  strategy: canary
  steps: [{{traffic: 50}}, {{traffic: 100}}]
  rollback_if: {rollback}
"""


def model_spec(gates: str, rollback: str = "error_rate > 0.05") -> str:
    return HEAD + MODEL.format(gates=textwrap.indent(textwrap.dedent(gates), "  "), rollback=rollback)


def test_model_spec_baseline_compiles():
    r = compile_(model_spec("good:\n  model: m\n  require: [roc_auc >= 0.7, accuracy > production.accuracy - 0.01]\n"
                            "rows:\n  table: ready\n  require: [row_count() > 100, null_fraction(f64) < 0.1, "
                            "mean(f64) > 0, min(i32) >= 0, distinct_count(b) == 2]\n",
                            "error_rate > 0.05 or latency_p99_ms > 250 or prediction_drift > 0.2"))
    assert r.errors == [], [(d.code, d.message) for d in r.errors]
    kinds = {n.id: n.kind for n in r.ir.nodes}
    assert kinds["gate.good"] == "Gate" and kinds["gate.rows"] == "Gate"
    assert r.ir.node("gate.rows").subject == "table"


@pytest.mark.parametrize("require, code", [
    ("f1 >= 0.7", "E0210"), ("production.f1 < 1", "E0210"), ("roc_auc", "E0207"), ("roc_auc + 1", "E0207"),
    ("staging.roc_auc > 0", "E0203"), ("sqrt(roc_auc) > 0", None),
])
def test_model_gate_metrics(require, code):
    r = compile_(model_spec(f"g:\n  model: m\n  require: [\"{require}\"]\n"))
    if code is None:
        assert r.errors == []
    else:
        assert [d.code for d in r.diagnostics] == [code]


def test_unknown_metric_hint_lists_model_metrics():
    r = compile_(model_spec("g:\n  model: m\n  require: [acuracy > 0.5]\n"))
    (d,) = r.diagnostics
    assert d.code == "E0210" and "accuracy" in d.hint


@pytest.mark.parametrize("require", ["f64 > 1", "mean(f64 + 1) > 0", "sqrt(f64) > 1", "null_fraction(1) < 0.5"])
def test_table_gate_checks(require):
    r = compile_(model_spec(f"g:\n  table: ready\n  require: [\"{require}\"]\n"))
    assert [d.code for d in r.diagnostics] == ["E0601"], [(d.code, d.message) for d in r.diagnostics]


def test_table_gate_unknown_column():
    r = compile_(model_spec("g:\n  table: ready\n  require: [null_fraction(nope) < 0.5]\n"))
    assert [d.code for d in r.diagnostics] == ["E0203"]


@pytest.mark.parametrize("rollback, code", [("error_rat > 0.1", "E0210"), ("roc_auc > 0.5", "E0210"),
                                            ("latency_p50_ms", "E0207"), ("production.error_rate > 0", "E0203")])
def test_rollback_if_uses_serving_metrics(rollback, code):
    r = compile_(model_spec("g:\n  model: m\n  require: [roc_auc > 0.5]\n", f'"{rollback}"'))
    assert [d.code for d in r.diagnostics] == [code]


# --- one mistake, one diagnostic; independent mistakes, all diagnostics ------------------------------------


@pytest.mark.parametrize("body", [
    "columns:\n  a: nope + 1\n  b: a * 2\n  c: a + b\n",
    "where: nope > 1\ncolumns:\n  a: i64 + 1\n",
    "columns:\n  a: s + 1\n  b: a > 2 and a < 5\n",
    "columns:\n  a: (nope + 1) * 2 > 3 and not (i64 < 1)\n",
])
def test_one_mistake_gives_one_diagnostic(body):
    r = compile_(HEAD + feature(body) + feature("columns:\n  z: a + 1\n", name="downstream", source="f"))
    assert len(r.diagnostics) == 1, [(d.code, d.message) for d in r.diagnostics]


def test_independent_errors_are_all_reported():
    text = (HEAD + feature("where: i64 > nope1\n", "f1") + feature("columns:\n  x: s * 2\n", "f2")
            + feature("group_by: [g]\naggregate:\n  a: i64\n", "f3") + feature("columns:\n  y: sqrtt(1)\n", "f4")
            + feature("select: [i64, missing]\n", "f5")
            + feature("columns:\n  ok: i64 + 1\n", "f6"))
    r = compile_(text)
    got = sorted(d.code for d in r.diagnostics)
    assert got == ["E0202", "E0203", "E0203", "E0206", "E0208"], [(d.code, d.message) for d in r.diagnostics]
    lines = sorted(d.span.line for d in r.diagnostics)
    assert len(set(lines)) == 5


def test_rendered_diagnostic_text_exactly():
    text = HEAD + feature("where: i64 > 0 and tenure_dayz >= params.k\n")
    r = compile_(text)
    (d,) = r.diagnostics
    assert d.code == "E0203"
    line = HEAD_LINES + 3
    rendered = render_text(r.diagnostics, {"t.yaml": text})
    pad = " " * len(str(line))
    assert rendered == (
        f"t.yaml:{line}:24: error[E0203]: unknown column 'tenure_dayz'\n"
        f"{pad} |\n"
        f"{line} |     where: i64 > 0 and tenure_dayz >= params.k\n"
        f"{pad} |                        ^^^^^^^^^^^\n"
        f"{pad} = hint: columns of f: b, d, f32, f64, g, i32, i64, s, ..."
    )


def test_rendered_caret_inside_quoted_scalar():
    text = HEAD + feature("where: \"s == 'x' and d > 5\"\n")
    r = compile_(text)
    (d,) = r.diagnostics
    assert d.code == "E0206"
    out = render_text(r.diagnostics, {"t.yaml": text}).splitlines()
    source_line, caret_line = out[2], out[3]
    start = source_line.index("d > 5")
    assert caret_line.index("^") == start
    assert caret_line.count("^") == len("d > 5")
