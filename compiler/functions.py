"""The typed function library: scalar functions, aggregates and data checks.

Each entry maps argument types to a result type, or raises `ArgError` naming
the argument that does not fit.  The runtime implements exactly these names;
SPEC.md documents them from `FUNCTION_DOCS`.
"""

from __future__ import annotations

import datetime as _dt
from dataclasses import dataclass
from typing import Callable

from . import expr as E
from . import types as T


class ArgError(Exception):
    def __init__(self, index: int | None, message: str, code: str = "E0205"):
        super().__init__(message)
        self.index, self.message, self.code = index, message, code


@dataclass(frozen=True)
class Function:
    name: str
    min_args: int
    max_args: int | None  # None: variadic
    result: Callable[[list[str], list[E.Expr]], str]
    doc: str


def _need(types: list[str], i: int, allowed, what: str) -> str:
    t = types[i]
    if t != T.NULL and t not in allowed:
        raise ArgError(i, f"argument {i + 1} must be {what}, found {t}")
    return t


def _numeric_same(ts, _):
    return _need(ts, 0, T.NUMERIC, "numeric")


def _to_float(ts, _):
    _need(ts, 0, T.NUMERIC, "numeric")
    return T.FLOAT64


def _literal_arg(args: list[E.Expr], i: int, kind: type, what: str):
    a = args[i]
    if not isinstance(a, E.Literal) or not isinstance(a.value, kind) or isinstance(a.value, bool) and kind is int:
        raise ArgError(i, f"argument {i + 1} must be {what}")
    return a.value


def _round(ts, args):
    t = _need(ts, 0, T.NUMERIC, "numeric")
    if len(args) == 2:
        _literal_arg(args, 1, int, "an integer literal (the number of digits)")
    return T.FLOAT64 if t == T.NULL else t


def _floor_ceil(ts, _):
    t = _need(ts, 0, T.NUMERIC, "numeric")
    return T.FLOAT64 if t == T.NULL else t


def _clip(ts, _):
    for i in range(3):
        _need(ts, i, T.NUMERIC, "numeric")
    return T.unify(ts) or T.FLOAT64


def _unified(ts, _, start=0):
    result = T.unify(ts[start:])
    if result is None:
        raise ArgError(None, "arguments have incompatible types: " + ", ".join(ts[start:]), "E0205")
    return result


def _if_else(ts, args):
    _need(ts, 0, {T.BOOL}, "boolean")
    return _unified(ts, args, start=1)


def _string(result):
    def check(ts, _):
        _need(ts, 0, {T.STRING}, "a string")
        return result
    return check


def _string_pred(ts, args):
    _need(ts, 0, {T.STRING}, "a string")
    _literal_arg(args, 1, str, "a string literal")
    return T.BOOL


def _temporal_part(ts, _):
    _need(ts, 0, T.TEMPORAL, "a date or timestamp")
    return T.INT64


def _days_between(ts, _):
    _need(ts, 0, T.TEMPORAL, "a date or timestamp")
    _need(ts, 1, T.TEMPORAL, "a date or timestamp")
    return T.INT64


_CASTS = {
    T.STRING: set(T.COLUMN_TYPES),
    T.BOOL: T.NUMERIC | {T.BOOL, T.STRING},
    T.DATE: {T.DATE, T.TIMESTAMP, T.STRING},
    T.TIMESTAMP: {T.DATE, T.TIMESTAMP, T.STRING},
}


def _cast(ts, args):
    target = _literal_arg(args, 1, str, 'a type name string, e.g. "float64"')
    if target not in T.COLUMN_TYPES:
        raise ArgError(1, f"unknown type '{target}'; types are {', '.join(T.COLUMN_TYPES)}", "E0211")
    source = ts[0]
    allowed = _CASTS.get(target, T.NUMERIC | {T.BOOL, T.STRING})
    if source != T.NULL and source not in allowed:
        raise ArgError(0, f"cannot cast {source} to {target}")
    return target


def _date_literal(kind):
    def check(ts, args):
        text = _literal_arg(args, 0, str, f'an ISO {kind} string literal, e.g. "2026-01-01"')
        try:
            (_dt.date.fromisoformat if kind == T.DATE else _dt.datetime.fromisoformat)(text)
        except ValueError:
            raise ArgError(0, f"'{text}' is not a valid ISO {kind}", "E0211") from None
        return kind
    return check


SCALAR: dict[str, Function] = {f.name: f for f in [
    Function("abs", 1, 1, _numeric_same, "absolute value; keeps the numeric type"),
    Function("sqrt", 1, 1, _to_float, "square root (float64); negative input gives NaN"),
    Function("log", 1, 1, _to_float, "natural logarithm (float64); log(0) is -inf, negative input NaN"),
    Function("log1p", 1, 1, _to_float, "log(1 + x) (float64)"),
    Function("exp", 1, 1, _to_float, "e to the power x (float64)"),
    Function("round", 1, 2, _round, "round half to even, to `digits` decimal places (default 0)"),
    Function("floor", 1, 1, _floor_ceil, "round down; integers are unchanged"),
    Function("ceil", 1, 1, _floor_ceil, "round up; integers are unchanged"),
    Function("clip", 3, 3, _clip, "x limited to [lo, hi]"),
    Function("coalesce", 1, None, _unified, "the first non-null argument"),
    Function("fill_null", 2, 2, _unified, "x, or v where x is null"),
    Function("if_else", 3, 3, _if_else, "a where cond is true, b where it is false or null"),
    Function("lower", 1, 1, _string(T.STRING), "lower-case string"),
    Function("upper", 1, 1, _string(T.STRING), "upper-case string"),
    Function("length", 1, 1, _string(T.INT64), "number of characters (int64)"),
    Function("contains", 2, 2, _string_pred, "whether s contains the literal substring"),
    Function("starts_with", 2, 2, _string_pred, "whether s starts with the literal prefix"),
    Function("ends_with", 2, 2, _string_pred, "whether s ends with the literal suffix"),
    Function("year", 1, 1, _temporal_part, "year of a date or timestamp (int64)"),
    Function("month", 1, 1, _temporal_part, "month 1-12 (int64)"),
    Function("day", 1, 1, _temporal_part, "day of month 1-31 (int64)"),
    Function("day_of_week", 1, 1, _temporal_part, "day of week, Monday = 0 (int64)"),
    Function("days_between", 2, 2, _days_between, "whole days from a to b (b - a, int64)"),
    Function("cast", 2, 2, _cast, 'x converted to the named type: cast(x, "float64")'),
    Function("date", 1, 1, _date_literal(T.DATE), 'a date literal: date("2026-01-01")'),
    Function("timestamp", 1, 1, _date_literal(T.TIMESTAMP),
             'a timestamp literal: timestamp("2026-01-01T12:00:00")'),
]}


def _sum(ts, _):
    t = _need(ts, 0, T.NUMERIC | {T.BOOL}, "numeric")
    return T.FLOAT64 if t in T.FLOATS else T.INT64


def _min_max(ts, _):
    t = _need(ts, 0, T.ORDERED, "numeric, bool, string, date or timestamp")
    return T.FLOAT64 if t == T.NULL else t


def _count(ts, _):
    return T.INT64


def _mean(ts, _):
    _need(ts, 0, T.NUMERIC | {T.BOOL}, "numeric")
    return T.FLOAT64


AGGREGATE: dict[str, Function] = {f.name: f for f in [
    Function("sum", 1, 1, _sum, "sum of non-null values (int64 for integers, float64 for floats)"),
    Function("mean", 1, 1, _mean, "mean of non-null values (float64)"),
    Function("min", 1, 1, _min_max, "smallest non-null value"),
    Function("max", 1, 1, _min_max, "largest non-null value"),
    Function("count", 0, 1, _count, "count() counts rows; count(x) counts non-null values (int64)"),
    Function("count_distinct", 1, 1, _count, "number of distinct non-null values (int64)"),
    Function("stddev", 1, 1, _mean, "sample standard deviation, ddof=1 (float64)"),
]}

CHECKS: dict[str, Function] = {f.name: f for f in [
    Function("row_count", 0, 0, _count, "number of rows (int64)"),
    Function("null_fraction", 1, 1, lambda ts, a: T.FLOAT64, "share of null values in a column, 0..1"),
    Function("distinct_count", 1, 1, _count, "number of distinct non-null values (int64)"),
    Function("min", 1, 1, _min_max, "smallest value of a column"),
    Function("max", 1, 1, _min_max, "largest value of a column"),
    Function("mean", 1, 1, _mean, "mean of a numeric column (float64)"),
]}
