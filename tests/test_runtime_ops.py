"""Source and Transform ops: expression semantics (SPEC §9/§10), table operations,
schema enforcement on read, sampling, the stat cache, and every valid spec run end to end."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import os
import re
import shutil
import sqlite3
import statistics
import uuid
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from pipespec.compiler import expr as E
from pipespec.compiler import ir
from pipespec.compiler.functions import SCALAR
from pipespec.compiler.infer import arrow_type_name
from pipespec.compiler.lower import compile_file, compile_text
from pipespec.compiler.typecheck import METRICS, ROW, Checker, Scope
from pipespec.runtime import hashing
from pipespec.runtime.arrowtypes import ARROW_TYPES, conform, schema_of
from pipespec.runtime.errors import RunError
from pipespec.runtime.expressions import evaluate, evaluate_scalar, to_arrow
from pipespec.runtime.ops import source, transform
from pipespec.runtime.ops.base import Context, Sample
from pipespec.runtime.store import Store

ROOT = Path(__file__).resolve().parent.parent
VALID = ROOT / "specs" / "valid"

# --- helpers ---------------------------------------------------------------------------------


def typed(text: str, columns: dict[str, str], mode: str = ROW, **scope) -> E.Expr:
    errors = []
    checker = Checker(Scope(mode, columns, {}, **scope), lambda c, m, e, h: errors.append((c, m)))
    result = checker.check(E.parse(text))
    assert not errors, errors
    return result


def table_of(data: dict[str, tuple[str, list]]) -> pa.Table:
    """A table from {column: (pipespec type, values)}."""
    return pa.table({name: pa.array(values, ARROW_TYPES[t]) for name, (t, values) in data.items()})


def ev(text: str, data: dict[str, tuple[str, list]] | None = None) -> tuple[list, pa.DataType]:
    """Evaluate over a table; checks the Expression form gives the same column."""
    data = data or {"_": ("int64", [0])}
    table = table_of(data)
    e = typed(text, {name: t for name, (t, _) in data.items()})
    column = evaluate(e, table)
    assert len(column) == table.num_rows
    assert column.type == ARROW_TYPES.get(e.type, pa.int64()), (e.type, column.type)
    projected = ds.dataset(table).to_table(columns={"out": to_arrow(e)})["out"]
    assert _same(projected.to_pylist(), column.to_pylist()), (projected, column)
    return column.to_pylist(), column.type


def one(text: str, **columns) -> object:
    """The single value of an expression over one row of typed columns (name=(type, value))."""
    values, _ = ev(text, {k: (t, [v]) for k, (t, v) in columns.items()} or None)
    return values[0]


def _same(a: list, b: list) -> bool:
    return all(x == y or (isinstance(x, float) and isinstance(y, float) and math.isnan(x) and math.isnan(y))
               for x, y in zip(a, b, strict=True))


def make_ctx(graph: ir.Graph, node: ir.Node, tmp_path: Path, inputs: dict | None = None,
             root: Path | str | None = None, sample: Sample | None = None) -> Context:
    inputs = inputs or {}
    return Context(graph=graph, node=node, store=Store(str(tmp_path / "store")), registry=None,
                   root=str(root or tmp_path), input_digests={}, loader=inputs.__getitem__,
                   digest_of=lambda _: None, sample=sample)


def run_features(tmp_path: Path, tables: dict[str, pa.Table], features: dict) -> dict[str, pa.Table]:
    """Compile a spec whose sources have the given tables' schemas and run its features."""
    doc = {"pipespec": 1, "pipeline": "t", "features": features,
           "sources": {name: {"format": "parquet", "path": f"{name}.parquet",
                              "schema": {f.name: arrow_type_name(f.type) for f in t.schema}}
                       for name, t in tables.items()}}
    result = compile_text(yaml.safe_dump(doc, sort_keys=False), base_dir=str(tmp_path))
    assert result.ok, [d.message for d in result.errors]
    out: dict[str, pa.Table] = {}
    for node in result.ir.nodes:
        if node.kind == "Source":
            out[node.id] = conform(tables[node.name], node.output, node.name)
        elif node.kind == "Transform":
            inputs = {i.role: out[i.node] for i in node.inputs}
            table = transform.run(make_ctx(result.ir, node, tmp_path, inputs)).value
            assert table.schema == schema_of(node.output)
            out[node.id] = table
    return {node_id.split(".", 1)[1]: t for node_id, t in out.items() if node_id.startswith("feature.")}


def source_node(fmt: str, schema: dict[str, str], path: str | None = None, uri: str | None = None,
                query: str | None = None) -> tuple[ir.Graph, ir.Source]:
    node = ir.Source(id="source.s", name="s", format=fmt, path=path, uri=uri, query=query,
                     output=ir.TableType(columns=tuple(schema.items())))
    return ir.Graph(pipeline="t", nodes=(node,)), node


def read(tmp_path: Path, fmt: str, schema: dict[str, str], path: str | None = None, **kw) -> pa.Table:
    graph, node = source_node(fmt, schema, path, kw.pop("uri", None), kw.pop("query", None))
    table = source.run(make_ctx(graph, node, tmp_path, **kw)).value
    assert table.schema == schema_of(node.output)
    return table


def run_error(fn, *args, **kw) -> RunError:
    with pytest.raises(RunError) as info:
        fn(*args, **kw)
    return info.value


# --- §9 null semantics ------------------------------------------------------------------------

T, F, N = True, False, None
KLEENE = [  # a, b, a and b, a or b
    (T, T, T, T), (T, F, F, T), (T, N, N, T), (F, T, F, T), (F, F, F, F), (F, N, F, N),
    (N, T, N, T), (N, F, F, N), (N, N, N, N),
]


def test_and_or_not_are_kleene():
    data = {"a": ("bool", [r[0] for r in KLEENE]), "b": ("bool", [r[1] for r in KLEENE])}
    assert ev("a and b", data)[0] == [r[2] for r in KLEENE]
    assert ev("a or b", data)[0] == [r[3] for r in KLEENE]
    assert ev("not a", data)[0] == [None if r[0] is None else not r[0] for r in KLEENE]


def test_null_literals_in_logic():
    flag = {"f": ("bool", [True, False, None])}
    assert ev("f and null", flag)[0] == [None, False, None]
    assert ev("f or null", flag)[0] == [True, None, None]
    assert ev("not null", flag)[0] == [None, None, None]


@pytest.mark.parametrize("op", ["==", "!=", "<", "<=", ">", ">="])
def test_comparisons_with_null_are_null(op):
    data = {"x": ("int64", [1, None]), "y": ("float64", [None, 2.0])}
    assert ev(f"x {op} y", data)[0] == [None, None]
    assert ev(f"x {op} null", data)[0] == [None, None]


def test_is_null_is_never_null_and_nan_is_not_null():
    data = {"x": ("float64", [1.0, None, float("nan")])}
    assert ev("x is null", data)[0] == [False, True, False]
    assert ev("x is not null", data)[0] == [True, False, True]
    assert ev("null is null", data)[0] == [True] * 3
    assert ev("x == null", data)[0] == [None] * 3


@pytest.mark.parametrize("text, expected", [
    ("x in [1, 2]", [True, False, None]),
    ("x in [1, null]", [True, None, None]),
    ("x not in [1, 2]", [False, True, None]),
    ("x not in [1, null]", [False, None, None]),
    ("x in [null]", [None, None, None]),
    ("x in []", [False, False, False]),
    ("x not in []", [True, True, True]),
    ("x in [1.0, 2.5]", [True, False, None]),
    ("x in [-3, 3]", [False, True, None]),
])
def test_in_lists_follow_or_of_equalities(text, expected):
    assert ev(text, {"x": ("int64", [1, 3, None])})[0] == expected


def test_in_lists_of_strings_dates_and_int32():
    assert ev('s in ["a", "b"]', {"s": ("string", ["a", "c", None])})[0] == [True, False, None]
    days = {"d": ("date", [dt.date(2026, 1, 1), dt.date(2026, 1, 2), None])}
    assert ev('d in [date("2026-01-01")]', days)[0] == [True, False, None]
    assert ev('d in [timestamp("2026-01-02T00:00:00")]', days)[0] == [False, True, None]
    assert ev("i in [1, 2]", {"i": ("int32", [1, 5, None])})[0] == [True, False, None]


def test_division_gives_float_and_null_on_zero():
    data = {"a": ("int64", [7, 7, -7, None, 0]), "b": ("int64", [2, 0, 2, 1, 0])}
    values, t = ev("a / b", data)
    assert t == pa.float64() and values == [3.5, None, -3.5, None, None]
    assert ev("a / 0", data)[0] == [None] * 5
    assert ev("a / 0.0", data)[0] == [None] * 5
    assert ev("f / g", {"f": ("float64", [1.0, 1.0, -0.0]), "g": ("float64", [0.0, -0.0, 0.0])})[0] == [None] * 3
    assert ev("1 / 4", data)[0] == [0.25] * 5


@pytest.mark.parametrize("a, b", [(a, b) for a in (7, -7, 0, 5) for b in (2, -2, 3, -3)])
def test_modulo_takes_the_sign_of_the_divisor(a, b):
    assert one("a % b", a=("int64", a), b=("int64", b)) == a % b
    assert one("a % b", a=("float64", a + 0.5), b=("float64", float(b))) == pytest.approx((a + 0.5) % b)


def test_modulo_by_zero_is_null():
    data = {"a": ("int64", [5, None]), "b": ("int64", [0, 0])}
    assert ev("a % b", data)[0] == [None, None]
    assert ev("a % 0", data)[0] == [None, None]
    assert ev("f % 0.0", {"f": ("float64", [1.5])})[0] == [None]


def test_arithmetic_with_null_is_null():
    data = {"a": ("int64", [1, None]), "f": ("float64", [None, 2.0])}
    for text in ("a + f", "a - f", "a * f", "a + null", "-a", "null * 2"):
        assert None in ev(text, data)[0]
    assert ev("a + null", data)[0] == [None, None]


@pytest.mark.parametrize("text, expected_type", [
    ("i + i", pa.int32()), ("i + a", pa.int64()), ("i + 1", pa.int64()), ("g * g", pa.float32()),
    ("g + i", pa.float64()), ("g + a", pa.float64()), ("g + f", pa.float64()), ("a % i", pa.int64()),
    ("i / i", pa.float64()), ("-i", pa.int32()), ("+g", pa.float32()), ("null + null", pa.int64()),
    ("i % i", pa.int32()),
])
def test_numeric_promotion(text, expected_type):
    data = {"i": ("int32", [3]), "a": ("int64", [4]), "g": ("float32", [1.5]), "f": ("float64", [2.5])}
    assert ev(text, data)[1] == expected_type


def test_precedence_and_values():
    data = {"a": ("int64", [7]), "b": ("int64", [2]), "c": ("float64", [1.5])}
    assert ev("a + b * c - a / 2 % 3", data)[0] == [7 + 2 * 1.5 - (7 / 2) % 3]
    assert ev("-a + +b - -c", data)[0] == [-7 + 2 + 1.5]
    assert ev("not a > b and (c != 0.0)", data)[0] == [False]


def test_nan_and_infinity_are_values():
    assert math.isnan(one("sqrt(-1)"))
    assert one("log(0)") == -math.inf
    assert math.isnan(one("log(-1)"))
    assert one("x is null", x=("float64", float("nan"))) is False


# --- §10 scalar functions ---------------------------------------------------------------------

FUNCTION_CASES = [
    # (expression, columns, expected values, expected pipespec type)
    ("abs(x)", {"x": ("int64", [-3, 4, None])}, [3, 4, None], "int64"),
    ("abs(g)", {"g": ("float32", [-1.5, None])}, [1.5, None], "float32"),
    ("abs(i)", {"i": ("int32", [-2])}, [2], "int32"),
    ("sqrt(x)", {"x": ("int64", [4, None])}, [2.0, None], "float64"),
    ("log(x)", {"x": ("float64", [math.e, None])}, [1.0, None], "float64"),
    ("log1p(x)", {"x": ("int64", [0, None])}, [0.0, None], "float64"),
    ("exp(x)", {"x": ("int32", [0, None])}, [1.0, None], "float64"),
    ("round(x)", {"x": ("float64", [0.5, 1.5, 2.5, -2.5, 2.6, None])}, [0.0, 2.0, 2.0, -2.0, 3.0, None], "float64"),
    ("round(x, 2)", {"x": ("float64", [0.125, 0.135, 1.005, None])}, [0.12, 0.14, 1.0, None], "float64"),
    ("round(x, -1)", {"x": ("int64", [125, 135, -125, 7])}, [120, 140, -120, 10], "int64"),
    ("round(x, 1)", {"x": ("int32", [7, None])}, [7, None], "int32"),
    ("round(g, 1)", {"g": ("float32", [1.25])}, [1.2000000476837158], "float32"),
    ("floor(x)", {"x": ("float64", [1.5, -1.5, None])}, [1.0, -2.0, None], "float64"),
    ("floor(i)", {"i": ("int32", [3, None])}, [3, None], "int32"),
    ("ceil(g)", {"g": ("float32", [1.5, -1.5])}, [2.0, -1.0], "float32"),
    ("ceil(x)", {"x": ("int64", [3])}, [3], "int64"),
    ("clip(x, 0, 10)", {"x": ("int64", [-5, 5, 50, None])}, [0, 5, 10, None], "int64"),
    ("clip(x, 0.5, 10)", {"x": ("int64", [0, 20])}, [0.5, 10.0], "float64"),
    ("clip(x, null, 10)", {"x": ("int64", [1])}, [None], "int64"),
    ("coalesce(a, b, 0)", {"a": ("float64", [1.0, None, None]), "b": ("int64", [5, 6, None])},
     [1.0, 6.0, 0.0], "float64"),
    ("coalesce(a)", {"a": ("int64", [1, None])}, [1, None], "int64"),
    ("coalesce(null, a, null)", {"a": ("int64", [1, None])}, [1, None], "int64"),
    ("fill_null(s, 'u')", {"s": ("string", ["a", None])}, ["a", "u"], "string"),
    ("fill_null(i, a)", {"i": ("int32", [1, None]), "a": ("int64", [9, 8])}, [1, 8], "int64"),
    ("if_else(c, 1, 2)", {"c": ("bool", [True, False, None])}, [1, 2, 2], "int64"),
    ("if_else(c, a, 2.5)", {"c": ("bool", [True, False]), "a": ("int64", [1, None])}, [1.0, 2.5], "float64"),
    ("if_else(c, null, 1.0)", {"c": ("bool", [True, None])}, [None, 1.0], "float64"),
    ("if_else(null, 1, 2)", {"c": ("bool", [True])}, [2], "int64"),
    ("if_else(c, d, t)", {"c": ("bool", [True, False]), "d": ("date", [dt.date(2026, 1, 2)] * 2),
                          "t": ("timestamp", [dt.datetime(2026, 1, 1, 6)] * 2)},
     [dt.datetime(2026, 1, 2), dt.datetime(2026, 1, 1, 6)], "timestamp"),
    ("lower(s)", {"s": ("string", ["ÄbC", None])}, ["äbc", None], "string"),
    ("upper(s)", {"s": ("string", ["äbç", None])}, ["ÄBÇ", None], "string"),
    ("length(s)", {"s": ("string", ["größe", "", None])}, [5, 0, None], "int64"),
    ("contains(s, 'b.')", {"s": ("string", ["ab.c", "abc", None])}, [True, False, None], "bool"),
    ("starts_with(s, 'ab')", {"s": ("string", ["abc", "cab", None])}, [True, False, None], "bool"),
    ("ends_with(s, 'ab')", {"s": ("string", ["cab", "abc", None])}, [True, False, None], "bool"),
    ("year(d)", {"d": ("date", [dt.date(2026, 3, 4), None])}, [2026, None], "int64"),
    ("month(t)", {"t": ("timestamp", [dt.datetime(2026, 3, 4, 5), None])}, [3, None], "int64"),
    ("day(d)", {"d": ("date", [dt.date(2026, 3, 4)])}, [4], "int64"),
    ("day_of_week(d)", {"d": ("date", [dt.date(2026, 1, 5) + dt.timedelta(k) for k in range(7)])},
     list(range(7)), "int64"),
    ("day_of_week(t)", {"t": ("timestamp", [dt.datetime(2026, 1, 11, 23, 59), None])}, [6, None], "int64"),
    ("days_between(a, b)", {"a": ("date", [dt.date(2026, 1, 1), dt.date(2026, 1, 10), None]),
                            "b": ("date", [dt.date(2026, 1, 10), dt.date(2026, 1, 1), dt.date(2026, 1, 1)])},
     [9, -9, None], "int64"),
    ("days_between(a, b)", {"a": ("timestamp", [dt.datetime(2026, 1, 1, 12), dt.datetime(2026, 1, 3, 6)]),
                            "b": ("timestamp", [dt.datetime(2026, 1, 3, 6), dt.datetime(2026, 1, 1, 12)])},
     [1, -1], "int64"),
    ("days_between(a, b)", {"a": ("date", [dt.date(2026, 1, 1)]),
                            "b": ("timestamp", [dt.datetime(2026, 1, 1, 23, 59)])}, [0], "int64"),
    ('date("2026-02-03")', {"x": ("int64", [1, 2])}, [dt.date(2026, 2, 3)] * 2, "date"),
    ('timestamp("2026-01-01T12:30:00")', {"x": ("int64", [1])}, [dt.datetime(2026, 1, 1, 12, 30)], "timestamp"),
    ('timestamp("2026-01-01T12:00:00+02:00")', {"x": ("int64", [1])}, [dt.datetime(2026, 1, 1, 10)], "timestamp"),
    ('timestamp("2026-01-01")', {"x": ("int64", [1])}, [dt.datetime(2026, 1, 1)], "timestamp"),
]


@pytest.mark.parametrize("text, data, expected, result_type", FUNCTION_CASES,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(FUNCTION_CASES)])
def test_scalar_function(text, data, expected, result_type):
    values, arrow = ev(text, data)
    assert arrow == ARROW_TYPES[result_type]
    assert _same(values, expected) or values == pytest.approx(expected), values


CAST_CASES = [
    ('cast(x, "int64")', {"x": ("float64", [1.9, -1.9, None])}, [1, -1, None], "int64"),
    ('cast(x, "int32")', {"x": ("int64", [7, None])}, [7, None], "int32"),
    ('cast(x, "int64")', {"x": ("string", ["12", None])}, [12, None], "int64"),
    ('cast(x, "int64")', {"x": ("bool", [True, False])}, [1, 0], "int64"),
    ('cast(x, "float64")', {"x": ("int32", [3])}, [3.0], "float64"),
    ('cast(x, "float32")', {"x": ("float64", [0.5])}, [0.5], "float32"),
    ('cast(x, "float64")', {"x": ("string", ["2.5"])}, [2.5], "float64"),
    ('cast(x, "bool")', {"x": ("int64", [0, 2, -1, None])}, [False, True, True, None], "bool"),
    ('cast(x, "bool")', {"x": ("string", ["true", "false", "1", "0"])}, [True, False, True, False], "bool"),
    ('cast(x, "string")', {"x": ("int64", [5, None])}, ["5", None], "string"),
    ('cast(x, "string")', {"x": ("bool", [True, False])}, ["true", "false"], "string"),
    ('cast(x, "string")', {"x": ("date", [dt.date(2026, 1, 2)])}, ["2026-01-02"], "string"),
    ('cast(x, "string")', {"x": ("float64", [2.5])}, ["2.5"], "string"),
    ('cast(x, "date")', {"x": ("timestamp", [dt.datetime(2026, 1, 2, 23, 59)])}, [dt.date(2026, 1, 2)], "date"),
    ('cast(x, "date")', {"x": ("string", ["2026-01-02", None])}, [dt.date(2026, 1, 2), None], "date"),
    ('cast(x, "timestamp")', {"x": ("date", [dt.date(2026, 1, 2)])}, [dt.datetime(2026, 1, 2)], "timestamp"),
    ('cast(x, "timestamp")', {"x": ("string", ["2026-01-02T03:04:05"])}, [dt.datetime(2026, 1, 2, 3, 4, 5)],
     "timestamp"),
    ('cast(x, "timestamp")', {"x": ("timestamp", [dt.datetime(2026, 1, 2)])}, [dt.datetime(2026, 1, 2)], "timestamp"),
    ('cast(null, "float64")', {"x": ("int64", [1, 2])}, [None, None], "float64"),
    ('cast(x, "string")', {"x": ("string", ["a"])}, ["a"], "string"),
]


@pytest.mark.parametrize("text, data, expected, result_type", CAST_CASES,
                         ids=[f"{c[0]}-{c[1]['x'][0]}" for c in CAST_CASES])
def test_cast(text, data, expected, result_type):
    values, arrow = ev(text, data)
    assert arrow == ARROW_TYPES[result_type] and values == expected


@pytest.mark.parametrize("text, data", [
    ('cast(x, "int64")', {"x": ("float64", [float("nan")])}),
    ('cast(x, "int32")', {"x": ("int64", [2**40])}),
    ('cast(x, "int64")', {"x": ("string", ["abc"])}),
    ('cast(x, "bool")', {"x": ("string", ["yes"])}),
])
def test_cast_of_an_unrepresentable_value_fails(text, data):
    table = table_of(data)
    with pytest.raises(pa.ArrowInvalid):
        evaluate(typed(text, {"x": data["x"][0]}), table)


def test_every_scalar_function_is_tested():
    tested = {re.match(r"\w+", c[0]).group() for c in FUNCTION_CASES + CAST_CASES}
    assert set(SCALAR) <= tested, set(SCALAR) - tested


def test_constant_expressions_give_a_full_column():
    table = table_of({"x": ("int64", [1, 2, 3])})
    for text, expected in (("1 + 2", 3), ("null", None), ('"a"', "a"), ("true and null", None)):
        column = evaluate(typed(text, {"x": "int64"}), table)
        assert column.to_pylist() == [expected] * 3


def test_columns_with_dots_spaces_and_keywords():
    data = {"unit.price": ("float64", [2.0]), "qty sold": ("int32", [3]), "in": ("string", ["x"])}
    assert ev("`unit.price` * `qty sold`", data)[0] == [6.0]
    assert ev('`in` != "x"', data)[0] == [False]


def test_evaluate_scalar_with_qualified_names_and_nulls():
    e = typed("roc_auc >= production.roc_auc - 0.01", {"roc_auc": "float64"}, METRICS, production=True)
    types = {"roc_auc": "float64", "production.roc_auc": "float64"}
    assert evaluate_scalar(e, {"roc_auc": 0.8, "production.roc_auc": 0.805}, types) is True
    assert evaluate_scalar(e, {"roc_auc": 0.8, "production.roc_auc": 0.9}, types) is False
    assert evaluate_scalar(e, {"roc_auc": 0.8, "production.roc_auc": None}, types) is None
    assert str(to_arrow(e)).count("production.roc_auc") == 1
    rule = typed("error_rate > 0.02 or latency_p99_ms > 250", {"error_rate": "float64", "latency_p99_ms": "float64"})
    types = {"error_rate": "float64", "latency_p99_ms": "float64"}
    assert evaluate_scalar(rule, {"error_rate": None, "latency_p99_ms": 300.0}, types) is True
    assert evaluate_scalar(rule, {"error_rate": None, "latency_p99_ms": 10.0}, types) is None


def test_to_arrow_filters_a_table_like_where():
    table = table_of({"x": ("int64", [1, 2, None, 4])})
    kept = table.filter(to_arrow(typed("x > 1 or x is null", {"x": "int64"})))
    assert kept["x"].to_pylist() == [2, None, 4]


# --- Filter, Derive, Select -------------------------------------------------------------------


def test_where_keeps_only_true_rows(tmp_path):
    t = table_of({"x": ("int64", [1, 2, None, 0]), "ok": ("bool", [True, None, None, False])})
    out = run_features(tmp_path, {"t": t}, {"f": {"from": "t", "where": "x > 1 or ok"}})["f"]
    assert out["x"].to_pylist() == [1, 2]  # null or null is null: dropped like false
    out = run_features(tmp_path, {"t": t}, {"f": {"from": "t", "where": "x != 2"}})["f"]
    assert out["x"].to_pylist() == [1, 0]


def test_columns_replace_in_place_or_append_and_see_earlier_columns(tmp_path):
    t = table_of({"a": ("int32", [1, 2]), "b": ("string", ["x", "y"])})
    out = run_features(tmp_path, {"t": t}, {"f": {"from": "t", "columns": {
        "c": "a * 2", "a": "cast(a, \"string\")", "d": "c + 1", "one": 1, "flag": True}}})["f"]
    assert out.column_names == ["a", "b", "c", "d", "one", "flag"]
    assert out["a"].to_pylist() == ["1", "2"] and out["d"].to_pylist() == [3, 5]
    assert out["one"].to_pylist() == [1, 1] and out["flag"].to_pylist() == [True, True]


def test_select_and_drop(tmp_path):
    t = table_of({"a": ("int64", [1]), "b": ("int64", [2]), "c": ("int64", [3])})
    out = run_features(tmp_path, {"t": t}, {"s": {"from": "t", "select": ["c", "a"]},
                                            "d": {"from": "t", "drop": ["b"]}})
    assert out["s"].column_names == ["c", "a"] and out["d"].column_names == ["a", "c"]


# --- Aggregate --------------------------------------------------------------------------------


def test_aggregates_skip_nulls_and_all_null_groups_give_null(tmp_path):
    t = table_of({"k": ("string", ["a", "a", "b", "b", None]),
                  "x": ("int32", [1, None, None, None, 5]),
                  "s": ("string", ["p", "q", None, None, "z"])})
    out = run_features(tmp_path, {"t": t}, {"g": {"from": "t", "group_by": ["k"], "aggregate": {
        "total": "sum(x)", "avg": "mean(x)", "lo": "min(x)", "hi": "max(s)", "n": "count()",
        "nx": "count(x)", "nd": "count_distinct(s)", "sd": "stddev(x)"}}})["g"]
    assert out.column_names == ["k", "total", "avg", "lo", "hi", "n", "nx", "nd", "sd"]
    assert out.to_pylist() == [
        {"k": "a", "total": 1, "avg": 1.0, "lo": 1, "hi": "q", "n": 2, "nx": 1, "nd": 2, "sd": None},
        {"k": "b", "total": None, "avg": None, "lo": None, "hi": None, "n": 2, "nx": 0, "nd": 0, "sd": None},
        {"k": None, "total": 5, "avg": 5.0, "lo": 5, "hi": "z", "n": 1, "nx": 1, "nd": 1, "sd": None},
    ]
    assert out.schema.field("total").type == pa.int64() and out.schema.field("lo").type == pa.int32()


def test_aggregate_types_follow_the_spec(tmp_path):
    t = table_of({"g": ("float32", [1.5, 2.5]), "b": ("bool", [True, None]), "i": ("int32", [1, 2]),
                  "d": ("date", [dt.date(2026, 1, 2), dt.date(2026, 1, 1)]),
                  "ts": ("timestamp", [dt.datetime(2026, 1, 1), None])})
    out = run_features(tmp_path, {"t": t}, {"a": {"from": "t", "aggregate": {
        "sg": "sum(g)", "sb": "sum(b)", "si": "sum(i)", "mb": "mean(b)", "mg": "mean(g)", "sdb": "stddev(i)",
        "mind": "min(d)", "maxt": "max(ts)", "minb": "min(b)", "cn": "count(null)"}}})["a"]
    assert out.to_pylist() == [{"sg": 4.0, "sb": 1, "si": 3, "mb": 1.0, "mg": 2.0, "sdb": statistics.stdev([1, 2]),
                                "mind": dt.date(2026, 1, 1), "maxt": dt.datetime(2026, 1, 1), "minb": True,
                                "cn": 0}]


def test_global_aggregate_of_an_empty_table_is_one_row(tmp_path):
    t = table_of({"x": ("float64", []), "s": ("string", [])})
    out = run_features(tmp_path, {"t": t}, {"a": {"from": "t", "aggregate": {
        "n": "count()", "nx": "count(x)", "nd": "count_distinct(s)", "total": "sum(x)", "m": "max(s)"}}})["a"]
    assert out.to_pylist() == [{"n": 0, "nx": 0, "nd": 0, "total": None, "m": None}]


def test_aggregate_rows_are_sorted_by_keys_with_nulls_last(tmp_path):
    rng = np.random.default_rng(1)
    keys = rng.integers(0, 50, 2000).tolist()
    keys[::7] = [None] * len(keys[::7])
    t = table_of({"k": ("int64", keys), "s": ("string", [str(k % 3) for k in range(2000)]),
                  "v": ("float64", rng.random(2000).tolist())})
    out = run_features(tmp_path, {"t": t}, {"g": {"from": "t", "group_by": ["s", "k"], "aggregate": {
        "n": "count()", "total": "sum(v)"}}})["g"]
    rows = [(r["s"], r["k"]) for r in out.to_pylist()]
    assert rows == sorted(rows, key=lambda r: (r[0], r[1] is None, r[1] or 0))
    assert sum(out["n"].to_pylist()) == 2000


def test_expressions_over_and_inside_aggregates(tmp_path):
    t = table_of({"k": ("int64", [1, 1, 2]), "qty": ("int32", [2, 3, 4]), "price": ("float64", [1.5, 2.0, None])})
    out = run_features(tmp_path, {"t": t}, {"g": {"from": "t", "group_by": ["k"], "aggregate": {
        "revenue": "sum(qty * price)", "ticket": "sum(qty * price) / count()", "spread": "max(price) - min(price)",
        "avg": "round(mean(price), 1)", "twice": "sum(qty) * 2", "units": "sum(qty)", "key_plus": "k + count()",
        "big": "if_else(sum(qty) > 4, 'yes', 'no')"}}})["g"]
    assert out.to_pylist() == [
        {"k": 1, "revenue": 9.0, "ticket": 4.5, "spread": 0.5, "avg": 1.8, "twice": 10, "units": 5,
         "key_plus": 3, "big": "yes"},
        {"k": 2, "revenue": None, "ticket": None, "spread": None, "avg": None, "twice": 8, "units": 4,
         "key_plus": 3, "big": "no"},
    ]


def test_group_keys_may_have_the_names_arrow_gives_results(tmp_path):
    t = table_of({"count_all": ("int64", [1, 1, 2]), "__arg0_sum": ("string", ["a", "a", "b"]),
                  "__agg0": ("int64", [2, 3, 4])})
    out = run_features(tmp_path, {"t": t}, {"g": {"from": "t", "group_by": ["count_all", "__arg0_sum"],
                                                  "aggregate": {"n": "count()", "s": "sum(__agg0 + 1)"}}})["g"]
    assert out.to_pylist() == [{"count_all": 1, "__arg0_sum": "a", "n": 2, "s": 7},
                               {"count_all": 2, "__arg0_sum": "b", "n": 1, "s": 5}]


# --- Join -------------------------------------------------------------------------------------


def reference_join(left: list[dict], right: list[dict], on: list[str], how: str, suffixes=("", "")):
    """The documented row order, computed the slow way."""
    def match(lrow, rrow):
        return all(lrow[k] is not None and lrow[k] == rrow[k] for k in on)
    lcols = [c for c in left[0] if c not in on] if left else []
    rcols = [c for c in right[0] if c not in on] if right else []
    clash = set(lcols) & set(rcols)
    pairs = []
    if how == "right":
        for j, r in enumerate(right):
            ms = [i for i, lrow in enumerate(left) if match(lrow, r)]
            pairs += [(i, j) for i in ms] or [(None, j)]
    else:
        used = set()
        for i, lrow in enumerate(left):
            ms = [j for j, r in enumerate(right) if match(lrow, r)]
            used.update(ms)
            if ms or how in ("left", "outer"):
                pairs += [(i, j) for j in ms] or [(i, None)]
        if how == "outer":
            pairs += [(None, j) for j in range(len(right)) if j not in used]
    rows = []
    for i, j in pairs:
        lrow, rrow = (left[i] if i is not None else {}), (right[j] if j is not None else {})
        row = {k: lrow[k] if i is not None else rrow[k] for k in on}
        row.update({c + suffixes[0] if c in clash else c: lrow.get(c) for c in lcols})
        row.update({c + suffixes[1] if c in clash else c: rrow.get(c) for c in rcols})
        rows.append(row)
    return rows


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
def test_join_rows_and_order_match_the_reference(tmp_path, how):
    rng = np.random.default_rng(7)
    def keys(n):
        return [None if v == 0 else int(v) for v in rng.integers(0, 12, n)]
    left = table_of({"k": ("int64", keys(60)), "v": ("int64", list(range(60))), "s": ("string", ["l"] * 60)})
    right = table_of({"w": ("float64", rng.random(45).tolist()), "k": ("int64", keys(45)),
                      "s": ("string", [f"r{i}" for i in range(45)])})
    out = run_features(tmp_path, {"l": left, "r": right}, {"j": {"join": {
        "left": "l", "right": "r", "on": "k", "how": how, "suffixes": ["_l", "_r"]}}})["j"]
    assert out.column_names == ["k", "v", "s_l", "w", "s_r"]
    assert out.to_pylist() == reference_join(left.to_pylist(), right.to_pylist(), ["k"], how, ("_l", "_r"))


@pytest.mark.parametrize("how", ["inner", "left", "right", "outer"])
def test_multi_key_join_puts_keys_first_in_on_order(tmp_path, how):
    left = table_of({"a": ("string", ["x", "x", "y", None]), "b": ("int32", [1, 2, 1, 1]),
                     "v": ("float64", [1.0, 2.0, 3.0, 4.0])})
    right = table_of({"b": ("int32", [1, 1, 2, 3]), "u": ("bool", [True, False, None, True]),
                      "a": ("string", ["x", "y", "x", "z"])})
    out = run_features(tmp_path, {"l": left, "r": right}, {"j": {"join": {
        "left": "l", "right": "r", "on": ["b", "a"], "how": how}}})["j"]
    assert out.column_names == ["b", "a", "v", "u"]
    assert out.to_pylist() == reference_join(left.to_pylist(), right.to_pylist(), ["b", "a"], how)


def test_null_keys_match_nothing_and_outer_keys_are_coalesced(tmp_path):
    left = table_of({"k": ("int64", [1, None]), "x": ("int64", [10, 20])})
    right = table_of({"k": ("int64", [None, 2, 1]), "y": ("int64", [30, 40, 50])})
    out = run_features(tmp_path, {"l": left, "r": right},
                       {"j": {"join": {"left": "l", "right": "r", "on": "k", "how": "outer"}}})["j"]
    assert out.to_pylist() == [{"k": 1, "x": 10, "y": 50}, {"k": None, "x": 20, "y": None},
                               {"k": None, "x": None, "y": 30}, {"k": 2, "x": None, "y": 40}]


def test_joins_on_every_key_type(tmp_path):
    values = {"bool": [True, False], "date": [dt.date(2026, 1, 1), dt.date(2026, 1, 2)],
              "timestamp": [dt.datetime(2026, 1, 1), dt.datetime(2026, 1, 2)], "float64": [1.5, 2.5],
              "int32": [1, 2], "string": ["a", "b"]}
    for t, vals in values.items():
        left = table_of({"k": (t, vals + [None]), "x": ("int64", [1, 2, 3])})
        right = table_of({"k": (t, vals[::-1]), "y": ("int64", [4, 5])})
        out = run_features(tmp_path, {"l": left, "r": right},
                           {"j": {"join": {"left": "l", "right": "r", "on": "k", "how": "left"}}})["j"]
        assert out["y"].to_pylist() == [5, 4, None], t


def test_join_of_empty_tables(tmp_path):
    left = table_of({"k": ("int64", []), "x": ("int64", [])})
    right = table_of({"k": ("int64", [1]), "y": ("int64", [2])})
    for how in ("inner", "left", "right", "outer"):
        out = run_features(tmp_path, {"l": left, "r": right},
                           {"j": {"join": {"left": "l", "right": "r", "on": "k", "how": how}}})["j"]
        assert out.num_rows == (1 if how in ("right", "outer") else 0)


# --- Source: formats and schema enforcement -------------------------------------------------

ALL_TYPES = {"i": "int64", "j": "int32", "f": "float64", "g": "float32", "b": "bool", "s": "string",
             "d": "date", "t": "timestamp"}


def sample_table() -> pa.Table:
    return table_of({
        "i": ("int64", [1, None, 3]), "j": ("int32", [4, 5, None]), "f": ("float64", [0.5, None, 2.0]),
        "g": ("float32", [1.5, 2.5, None]), "b": ("bool", [True, None, False]), "s": ("string", ["a", None, ""]),
        "d": ("date", [dt.date(2026, 1, 1), None, dt.date(2024, 2, 29)]),
        "t": ("timestamp", [dt.datetime(2026, 1, 1, 12, 30, 0, 123456), None, dt.datetime(2025, 6, 1)]),
    })


def write(table: pa.Table, fmt: str, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if fmt == "parquet":
        pq.write_table(table, path)
    elif fmt == "csv":
        pcsv.write_csv(table, path)
    elif fmt == "arrow":
        with pa.ipc.new_file(str(path), table.schema) as w:
            w.write_table(table)
    elif fmt == "arrow-stream":
        with pa.ipc.new_stream(str(path), table.schema) as w:
            w.write_table(table)
    elif fmt == "jsonl":
        lines = [json.dumps({k: _json_value(v) for k, v in row.items()}) for row in table.to_pylist()]
        path.write_text("".join(line + "\n" for line in lines))
    else:
        raise ValueError(fmt)


def _json_value(v):
    return v.isoformat() if isinstance(v, (dt.date, dt.datetime)) else v


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow", "arrow-stream", "jsonl"])
def test_every_format_reads_all_types_with_nulls(tmp_path, fmt):
    expected = sample_table()
    extra = expected.append_column("extra", pa.array(["e1", "e2", "e3"]))
    shuffled = extra.select(["extra", "t", "s", "i", "j", "f", "g", "b", "d"])  # file column order differs
    write(shuffled, fmt, tmp_path / "data" / "x.bin")
    table = read(tmp_path, fmt.split("-")[0], ALL_TYPES, "data/x.bin")
    assert table.equals(expected), (table.to_pylist(), expected.to_pylist())


def test_sqlite_source_reads_declared_columns_with_types(tmp_path):
    db = sqlite3.connect(tmp_path / "w.db")
    db.execute("CREATE TABLE e (i INTEGER, j INTEGER, f REAL, g REAL, b INTEGER, s TEXT, d TEXT, t TEXT, x TEXT)")
    db.executemany("INSERT INTO e VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", [
        (1, 4, 0.5, 1.5, 1, "a", "2026-01-01", "2026-01-01 12:30:00.123456", "drop"),
        (None, 5, None, 2.5, None, None, None, None, "me"),
        (3, None, 2, None, 0, "", "2024-02-29", "2025-06-01T00:00:00", "x")])
    db.commit()
    db.close()
    table = read(tmp_path, "sql", ALL_TYPES, uri="sqlite:///w.db", query="SELECT * FROM e ORDER BY rowid")
    assert table.equals(sample_table()), table.to_pylist()
    empty = read(tmp_path, "sql", ALL_TYPES, uri="sqlite:///w.db", query="SELECT * FROM e WHERE i > 99")
    assert empty.num_rows == 0
    absolute = read(tmp_path / "elsewhere", "sql", {"i": "int64"}, uri=f"sqlite:///{tmp_path / 'w.db'}",
                    query="SELECT i FROM e")
    assert absolute["i"].to_pylist() == [1, None, 3]


def test_csv_nulls_quoting_and_zoned_timestamps(tmp_path):
    (tmp_path / "a.csv").write_text('s,n,t\n"",,2026-01-01T12:00:00Z\n,1,2026-01-01T13:00:00+01:00\nNA,2,\n')
    table = read(tmp_path, "csv", {"s": "string", "n": "int64", "t": "timestamp"}, "a.csv")
    assert table.to_pylist() == [{"s": "", "n": None, "t": dt.datetime(2026, 1, 1, 12)},
                                 {"s": None, "n": 1, "t": dt.datetime(2026, 1, 1, 12)},
                                 {"s": "NA", "n": 2, "t": None}]


@pytest.mark.parametrize("fmt", ["csv", "jsonl"])
def test_compressed_text_files_are_read(tmp_path, fmt):
    import gzip
    write(sample_table(), fmt, tmp_path / "plain")
    (tmp_path / f"x.{fmt}.gz").write_bytes(gzip.compress((tmp_path / "plain").read_bytes()))
    assert read(tmp_path, fmt, ALL_TYPES, f"x.{fmt}.gz").equals(sample_table())


def test_parquet_types_of_the_same_family_are_converted(tmp_path):
    t = pa.table({"u": pa.array([1, 2], pa.uint8()), "l": pa.array(["a", "b"], pa.large_string()),
                  "c": pa.array(["x", "x"]).dictionary_encode(),
                  "ts": pa.array([1_000_001_999, None], pa.timestamp("ns", "UTC"))})
    pq.write_table(t, tmp_path / "a.parquet")
    table = read(tmp_path, "parquet", {"u": "int32", "l": "string", "c": "string", "ts": "timestamp"}, "a.parquet")
    assert table.to_pylist() == [{"u": 1, "l": "a", "c": "x", "ts": dt.datetime(1970, 1, 1, 0, 0, 1, 1)},
                                 {"u": 2, "l": "b", "c": "x", "ts": None}]
    assert table.schema.metadata is None


@pytest.mark.parametrize("fmt", ["parquet", "csv", "arrow", "jsonl"])
def test_a_missing_column_is_e0802_naming_column_and_file(tmp_path, fmt):
    write(sample_table().select(["i", "s"]), fmt, tmp_path / "data" / "customers.bin")
    err = run_error(read, tmp_path, fmt, {"i": "int64", "age": "int32"}, "data/customers.bin")
    assert err.code == "E0802" and err.message == "column 'age' is missing from data/customers.bin"


def test_a_missing_column_in_a_query_result_is_e0802(tmp_path):
    db = sqlite3.connect(tmp_path / "w.db")
    db.execute("CREATE TABLE e (i INTEGER)")
    db.commit()
    db.close()
    err = run_error(read, tmp_path, "sql", {"i": "int64", "age": "int32"}, uri="sqlite:///w.db",
                    query="SELECT i FROM e")
    assert err.code == "E0802" and "column 'age' is missing from the result of the query" in err.message


@pytest.mark.parametrize("fmt, content, message", [
    ("csv", "id,age\n1,12\n2,abc\n", "column 'age' of data/x.csv cannot be read as int64"),
    ("csv", "id,age\n1,2026-13-01\n", "column 'age' of data/x.csv cannot be read as date"),
    ("jsonl", '{"id": 1, "age": 2}\n{"id": 2, "age": "old"}\n', "column 'age' of data/x.csv cannot be read as int64"),
    ("jsonl", '{"id": 1, "age": 2.5}\n', "column 'age' of data/x.csv cannot be read as int64"),
])
def test_a_value_of_the_wrong_type_is_e0802_naming_the_column(tmp_path, fmt, content, message):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "x.csv").write_text(content)
    age_type = "date" if "2026-13" in content else "int64"
    err = run_error(read, tmp_path, fmt, {"id": "int64", "age": age_type}, "data/x.csv")
    assert err.code == "E0802" and err.message.startswith(message), err.message


@pytest.mark.parametrize("fmt", ["parquet", "arrow"])
def test_an_exact_format_with_another_type_is_e0802(tmp_path, fmt):
    write(pa.table({"id": [1], "age": [1.5]}), fmt, tmp_path / "x.bin")
    err = run_error(read, tmp_path, fmt, {"id": "int64", "age": "int32"}, "x.bin")
    assert err.code == "E0802" and err.message == "column 'age' of x.bin is float64, declared int32"


def test_sqlite_values_that_do_not_convert_are_e0802(tmp_path):
    db = sqlite3.connect(tmp_path / "w.db")
    db.execute("CREATE TABLE e (age)")
    db.executemany("INSERT INTO e VALUES (?)", [(1,), ("old",)])
    db.commit()
    db.close()
    err = run_error(read, tmp_path, "sql", {"age": "int64"}, uri="sqlite:///w.db", query="SELECT age FROM e")
    assert err.code == "E0802" and "column 'age'" in err.message
    db = sqlite3.connect(tmp_path / "w.db")
    db.execute("DELETE FROM e")
    db.execute("INSERT INTO e VALUES ('x')")
    db.commit()
    db.close()
    err = run_error(read, tmp_path, "sql", {"age": "int64"}, uri="sqlite:///w.db", query="SELECT age FROM e")
    assert err.code == "E0802" and err.message.startswith("column 'age' of the result of the query")


def test_missing_files_and_databases_are_e0801(tmp_path):
    err = run_error(read, tmp_path, "csv", {"a": "int64"}, "data/x.csv")
    assert err.code == "E0801"
    assert err.message == f"source file data/x.csv does not exist (resolved to {tmp_path / 'data' / 'x.csv'})"
    err = run_error(read, tmp_path, "sql", {"a": "int64"}, uri="sqlite:///nope.db", query="SELECT 1")
    assert err.code == "E0801" and "nope.db" in err.message
    assert not (tmp_path / "nope.db").exists()


def test_unsupported_databases_and_bad_queries_are_e0801(tmp_path):
    err = run_error(read, tmp_path, "sql", {"a": "int64"}, uri="postgresql://h/db", query="SELECT 1")
    assert err.code == "E0801" and "only sqlite" in err.message
    sqlite3.connect(tmp_path / "w.db").close()
    err = run_error(read, tmp_path, "sql", {"a": "int64"}, uri="sqlite:///w.db", query="SELECT * FROM nope")
    assert err.code == "E0801" and "no such table" in err.message


def test_an_unparseable_file_is_e0801(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"not parquet at all")
    err = run_error(read, tmp_path, "parquet", {"a": "int64"}, "x.parquet")
    assert err.code == "E0801" and err.message.startswith("cannot read x.parquet as parquet")


def test_empty_jsonl_and_absolute_and_file_urls(tmp_path):
    (tmp_path / "e.jsonl").write_text("")
    assert read(tmp_path, "jsonl", {"a": "int64"}, "e.jsonl").num_rows == 0
    write(sample_table(), "parquet", tmp_path / "x.parquet")
    elsewhere = tmp_path / "other"
    assert read(elsewhere, "parquet", {"i": "int64"}, str(tmp_path / "x.parquet")).num_rows == 3
    assert read(elsewhere, "parquet", {"i": "int64"}, f"file://{tmp_path / 'x.parquet'}").num_rows == 3


@pytest.mark.parametrize("fmt", ["parquet", "csv", "jsonl", "arrow"])
def test_fsspec_paths_are_read_and_digested(tmp_path, fmt):
    import fsspec
    url = f"memory://{uuid.uuid4().hex}/x.{fmt}"
    write(sample_table(), fmt, tmp_path / "local")
    with fsspec.open(url, "wb") as f:
        f.write((tmp_path / "local").read_bytes())
    assert read(tmp_path, fmt, ALL_TYPES, url).equals(sample_table())
    graph, node = source_node(fmt, ALL_TYPES, url)
    assert source.key_extra(make_ctx(graph, node, tmp_path)) == {"data": hashing.digest_file(str(tmp_path / "local"))}
    missing = url.replace("/x.", "/y.")
    assert run_error(read, tmp_path, fmt, ALL_TYPES, missing).code == "E0801"


# --- sampling -----------------------------------------------------------------------------------


def test_sample_runs_are_deterministic_and_keep_row_order(tmp_path):
    write(table_of({"i": ("int64", list(range(1000)))}), "parquet", tmp_path / "x.parquet")
    a = read(tmp_path, "parquet", {"i": "int64"}, "x.parquet", sample=Sample(50, 3))["i"].to_pylist()
    b = read(tmp_path, "parquet", {"i": "int64"}, "x.parquet", sample=Sample(50, 3))["i"].to_pylist()
    c = read(tmp_path, "parquet", {"i": "int64"}, "x.parquet", sample=Sample(50, 4))["i"].to_pylist()
    expected = sorted(np.random.default_rng(3).choice(1000, 50, replace=False).tolist())
    assert a == b == expected and a != c and len(set(a)) == 50
    assert read(tmp_path, "parquet", {"i": "int64"}, "x.parquet", sample=Sample(5000, 3)).num_rows == 1000
    graph, node = source_node("parquet", {"i": "int64"}, "x.parquet")
    extra = source.key_extra(make_ctx(graph, node, tmp_path, sample=Sample(50, 3)))
    assert extra["sample"] == {"rows": 50, "seed": 3} and len(extra["data"]) == 64


# --- the data digest and the stat cache ----------------------------------------------------------


@pytest.fixture
def counted(monkeypatch):
    calls = []
    real = hashing.digest_file

    def digest_file(path):
        calls.append(path)
        return real(path)
    monkeypatch.setattr(hashing, "digest_file", digest_file)
    return calls


def _age(path: Path, seconds: float = 100.0) -> None:
    old = os.stat(path).st_mtime - seconds
    os.utime(path, (old, old))


def _key(tmp_path: Path, path: str = "d.csv") -> dict:
    graph, node = source_node("csv", {"a": "int64"}, path)
    return source.key_extra(make_ctx(graph, node, tmp_path))


def test_an_unchanged_file_is_not_read_again(tmp_path, counted):
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    _age(data)
    first = _key(tmp_path)
    assert first == {"data": hashing.digest_bytes(b"a\n1\n")} and len(counted) == 1
    assert _key(tmp_path) == first and len(counted) == 1
    assert (tmp_path / "store" / "state" / "stat.sqlite").is_file()


def test_a_touched_file_is_hashed_once_more_with_the_same_digest(tmp_path, counted):
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    _age(data)
    first = _key(tmp_path)
    _age(data, 50)  # touch: a new mtime, the same bytes
    assert _key(tmp_path) == first and len(counted) == 2
    assert _key(tmp_path) == first and len(counted) == 2


def test_changed_bytes_give_a_new_digest(tmp_path, counted):
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    _age(data)
    first = _key(tmp_path)
    data.write_text("a\n2\n")  # same size
    _age(data, 30)
    second = _key(tmp_path)
    assert second != first and second == {"data": hashing.digest_bytes(b"a\n2\n")}


def test_a_freshly_written_file_is_not_memoized_yet(tmp_path, counted):
    (tmp_path / "d.csv").write_text("a\n1\n")
    assert _key(tmp_path) == _key(tmp_path) and len(counted) == 2  # racy: could change within the tick


def test_a_remote_store_keeps_the_stat_cache_in_the_user_cache(tmp_path, monkeypatch, counted):
    from pipespec.runtime import statcache
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    remote = Store(f"memory://{uuid.uuid4().hex}")
    assert statcache.location(remote) == str(tmp_path / "xdg" / "pipespec" / "stat.sqlite")
    data = tmp_path / "d.csv"
    data.write_text("a\n1\n")
    _age(data)
    graph, node = source_node("csv", {"a": "int64"}, "d.csv")
    ctx = dataclasses.replace(make_ctx(graph, node, tmp_path), store=remote)
    assert source.key_extra(ctx) == source.key_extra(ctx) and len(counted) == 1
    assert (tmp_path / "xdg" / "pipespec" / "stat.sqlite").is_file()


def test_an_unusable_stat_cache_only_costs_a_read(tmp_path, counted):
    from pipespec.runtime.statcache import StatCache
    (tmp_path / "d.csv").write_text("a\n1\n")
    _age(tmp_path / "d.csv")
    (tmp_path / "db").write_text("this is not a sqlite database" * 100)
    cache = StatCache(str(tmp_path / "db"))
    assert cache.file_digest(str(tmp_path / "d.csv")) == hashing.digest_bytes(b"a\n1\n")


def test_sql_key_hashes_the_result_and_run_does_not_query_again(tmp_path, monkeypatch):
    db = sqlite3.connect(tmp_path / "w.db")
    db.execute("CREATE TABLE e (i INTEGER)")
    db.executemany("INSERT INTO e VALUES (?)", [(1,), (2,)])
    db.commit()
    db.close()
    graph, node = source_node("sql", {"i": "int64"}, uri="sqlite:///w.db", query="SELECT i FROM e")
    queries = []
    real = source._query
    monkeypatch.setattr(source, "_query", lambda *a: queries.append(a) or real(*a))
    ctx = make_ctx(graph, node, tmp_path)
    extra = source.key_extra(ctx)
    table = source.run(ctx).value
    assert len(queries) == 1 and table["i"].to_pylist() == [1, 2]
    from pipespec.runtime.artifacts import encode_table
    assert extra == {"data": hashing.digest_bytes(encode_table(table))}


# --- every valid spec: sources and features run and give their compiled schemas -----------------

_STRINGS = ["2025-01-01", "2025-06-30T12:00:00", "2026-02-28"]  # also valid cast(s, "date"/"timestamp")


def generated_table(schema: ir.TableType, seed: int, rows: int = 40) -> pa.Table:
    """Deterministic data of a declared schema, with about 10% nulls, small int ranges
    (so joins match and filters keep some rows) and strings that parse as dates and timestamps."""
    rng = np.random.default_rng(seed)
    columns = {}
    for name, t in schema.columns:
        nulls = rng.random(rows) < 0.1
        columns[name] = pa.array(_values(t, rng, rows), ARROW_TYPES[t], mask=nulls)
    return pa.table(columns)


def _values(t: str, rng: np.random.Generator, n: int):
    if t in ("int64", "int32"):
        return rng.integers(0, 40, n)
    if t in ("float64", "float32"):
        return np.round(rng.normal(50, 40, n), 2)
    if t == "bool":
        return rng.random(n) < 0.5
    if t == "string":
        return [_STRINGS[k] for k in rng.integers(0, len(_STRINGS), n)]
    base = np.datetime64("2025-01-01") if t == "date" else np.datetime64("2025-01-01T00:00:00", "us")
    step = np.timedelta64(1, "D") if t == "date" else np.timedelta64(7 * 3600 * 10**6 + 123, "us")
    return base + rng.integers(0, 700, n) * step


def _write_source(node: ir.Source, table: pa.Table, root: Path) -> ir.Source:
    """Write the data where the (copied) spec expects it; returns the node to run."""
    if node.format == "sql":
        name = re.search(r"\bFROM\s+(\w+)", node.query, re.IGNORECASE).group(1)
        db = sqlite3.connect(root / f"{node.name}.db")
        db.execute(f"CREATE TABLE {name} ({', '.join(f'{c!r}' for c in table.column_names)})")
        rows = [tuple(_sql_value(v) for v in row.values()) for row in table.to_pylist()]
        db.executemany(f"INSERT INTO {name} VALUES ({', '.join('?' * table.num_columns)})", rows)
        db.commit()
        db.close()
        return dataclasses.replace(node, uri=f"sqlite:///{node.name}.db")
    if "://" in node.path and not node.path.startswith("file://"):
        import fsspec
        url = f"memory://{uuid.uuid4().hex}/{node.name}"
        write(table, node.format, root / "remote" / node.name)
        with fsspec.open(url, "wb") as f:
            f.write((root / "remote" / node.name).read_bytes())
        return dataclasses.replace(node, path=url)
    write(table, node.format, root / node.path)
    return node


def _sql_value(v):
    return v.isoformat(sep=" ") if isinstance(v, dt.datetime) else v.isoformat() if isinstance(v, dt.date) else v


def _missing_sources(graph: ir.Graph, base: Path) -> bool:
    return any(n.kind == "Source" and (n.format == "sql" or "://" in (n.path or "") or
                                       not (base / n.path).exists()) for n in graph.nodes)


def run_sources_and_features(graph: ir.Graph, root: Path, tmp_path: Path, nodes: dict | None = None) -> dict:
    out = {}
    for node in graph.nodes:
        if node.kind not in ("Source", "Transform"):
            continue
        node = (nodes or {}).get(node.id, node)
        inputs = {i.role: out[i.node] for i in node.inputs}
        op = source if node.kind == "Source" else transform
        ctx = make_ctx(graph, node, tmp_path, inputs, root=root)
        if node.kind == "Source":
            assert len(source.key_extra(ctx)["data"]) == 64
        table = op.run(ctx).value
        assert table.schema == schema_of(node.output), node.id
        out[node.id] = table
    return out


VALID_SPECS = sorted(p.name for p in VALID.glob("*.yaml"))


@pytest.mark.parametrize("name", VALID_SPECS)
def test_valid_spec_sources_and_features_give_their_compiled_schemas(name, tmp_path):
    original = compile_file(str(VALID / name))
    assert original.ok, [d.message for d in original.errors]
    graph = original.ir
    if not _missing_sources(graph, VALID):  # the data is in the repository: run in place
        tables = run_sources_and_features(graph, VALID, tmp_path)
        assert all(t.num_rows > 0 for k, t in tables.items() if k.startswith("source."))
        return
    root = tmp_path / "spec"
    root.mkdir()
    replaced = {}
    for i, node in enumerate(n for n in graph.nodes if n.kind == "Source"):
        replaced[node.id] = _write_source(node, generated_table(node.output, seed=i), root)
    shutil.copy(VALID / name, root / name)
    copy = compile_file(str(root / name))
    assert copy.ok and [(n.id, n.output) for n in copy.ir.nodes] == [(n.id, n.output) for n in graph.nodes]
    assert not [d for d in copy.diagnostics if d.code == "W0404"], copy.diagnostics
    tables = run_sources_and_features(copy.ir, root, tmp_path, replaced)
    assert all(t.num_rows == 40 for k, t in tables.items() if k.startswith("source.") and "sql" not in k)
