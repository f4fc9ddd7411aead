"""Type-checking expressions against a scope; returns typed copies of the AST.

A failed sub-expression gets type None and its parents stay quiet, so one
mistake gives one diagnostic.  Parameters are bound here: each `params.x`
becomes a typed Literal, and the names used are recorded for the cache key.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Callable

from . import expr as E
from . import types as T
from .diagnostics import suggest
from .functions import AGGREGATE, CHECKS, SCALAR, ArgError, Function

ROW, AGG, METRICS, CHECK, SERVING = "row", "aggregate", "metrics", "checks", "serving"

Report = Callable[[str, str, E.Expr, "str | None"], None]


def param_type(value: Any) -> str:
    if isinstance(value, bool):
        return T.BOOL
    if isinstance(value, int):
        return T.INT64
    if isinstance(value, float):
        return T.FLOAT64
    return T.STRING


@dataclass
class Scope:
    """What names mean inside one expression."""

    mode: str
    columns: dict[str, str]
    params: dict[str, Any]
    what: str = "columns"  # how to describe `columns` in hints
    group_keys: frozenset[str] = frozenset()
    production: bool = False  # model gates: production.<metric> allowed
    used_params: set[str] = field(default_factory=set)


class Checker:
    def __init__(self, scope: Scope, report: Report):
        self.scope, self.report = scope, report
        self.in_aggregate = False

    def check(self, e: E.Expr) -> E.Expr:
        method = getattr(self, "_" + type(e).__name__)
        return method(e)

    def _fail(self, e: E.Expr, code: str, msg: str, hint: str | None = None) -> E.Expr:
        self.report(code, msg, e, hint)
        return E.evolve(e, type=None)

    # leaves

    def _Literal(self, e: E.Literal) -> E.Expr:
        v = e.value
        if isinstance(v, float) and not math.isfinite(v):
            return self._fail(e, "E0211", "number out of range (it would be infinite)")
        if type(v) is int and not E.INT64_MIN <= v <= E.INT64_MAX:
            return self._fail(e, "E0211", f"integer {v} is out of range", E.INT_RANGE_HINT)
        t = T.NULL if v is None else param_type(v)
        return E.evolve(e, type=t)

    def _Param(self, e: E.Param) -> E.Expr:
        if e.name not in self.scope.params:
            return self._fail(e, "E0209", f"unknown parameter '{e.name}'",
                              suggest(e.name, self.scope.params, "declared params"))
        self.scope.used_params.add(e.name)
        value = self.scope.params[e.name]
        return E.Literal(value=value, type=param_type(value), start=e.start, end=e.end)

    def _Column(self, e: E.Column) -> E.Expr:
        s = self.scope
        if s.mode == CHECK:
            return self._fail(e, "E0601", f"column '{e.name}' used outside a data check",
                              "wrap it in a check, e.g. null_fraction(col) or mean(col)")
        if e.name not in s.columns:
            code = "E0210" if s.mode in (METRICS, SERVING) else "E0203"
            kind = "metric" if code == "E0210" else "column"
            return self._fail(e, code, f"unknown {kind} '{e.name}'", suggest(e.name, s.columns, s.what))
        if s.columns[e.name] is None:  # defined by an expression that failed: already reported
            return E.evolve(e, type=None)
        if s.mode == AGG and not self.in_aggregate and e.name not in s.group_keys:
            return self._fail(e, "E0208", f"column '{e.name}' must be inside an aggregate or be a "
                              "group_by column", f"e.g. sum({e.name}) or max({e.name})")
        return E.evolve(e, type=s.columns[e.name])

    def _Qualified(self, e: E.Qualified) -> E.Expr:
        if e.qualifier != "production" or not self.scope.production:
            where = "model gates" if self.scope.mode != METRICS else "this gate"
            return self._fail(e, "E0203", f"unknown name '{e.qualifier}.{e.name}'",
                              f"only production.<metric> is qualified, and only in {where}"
                              if e.qualifier == "production" else "backquote column names with dots")
        if e.name not in self.scope.columns:
            return self._fail(e, "E0210", f"unknown metric 'production.{e.name}'",
                              suggest(e.name, self.scope.columns, self.scope.what))
        return E.evolve(e, type=T.FLOAT64)

    # operators

    def _Unary(self, e: E.Unary) -> E.Expr:
        operand = self.check(e.operand)
        t = operand.type
        new = E.evolve(e, operand=operand, type=None)
        if t is None:
            return new
        if e.op == "not":
            if t not in (T.BOOL, T.NULL):
                return self._fail(new, "E0206", f"'not' needs a boolean operand, found {t}")
            return E.evolve(new, type=T.BOOL)
        if not T.is_numeric(t):
            return self._fail(new, "E0206", f"unary '{e.op}' needs a numeric operand, found {t}")
        return E.evolve(new, type=T.INT64 if t == T.NULL else t)

    def _Binary(self, e: E.Binary) -> E.Expr:
        left, right = self.check(e.left), self.check(e.right)
        new = E.evolve(e, left=left, right=right, type=None)
        a, b = left.type, right.type
        if a is None or b is None:
            return new
        result = _binary_type(e.op, a, b)
        if isinstance(result, str) and result.startswith("!"):
            return self._fail(new, "E0206", result[1:], _binary_hint(e.op, a, b))
        return E.evolve(new, type=result)

    def _InList(self, e: E.InList) -> E.Expr:
        operand = self.check(e.operand)
        items = tuple(self.check(i) for i in e.items)
        new = E.evolve(e, operand=operand, items=items, type=T.BOOL)
        for item in items:
            if item.type is not None and not _constant(item):
                return self._fail(item, "E0206", "the items of an 'in' list must be literals or params")
            if operand.type is not None and item.type is not None and not T.comparable(operand.type, item.type):
                return self._fail(item, "E0206", f"'in' list item of type {item.type} cannot match "
                                  f"{operand.type}")
        return new

    def _IsNull(self, e: E.IsNull) -> E.Expr:
        return E.evolve(e, operand=self.check(e.operand), type=T.BOOL)

    # calls

    def _Call(self, e: E.Call) -> E.Expr:
        fn, aggregate = self._lookup(e)
        if fn is None:  # reported; in a table gate its column arguments would only cascade
            args = e.args if self.scope.mode == CHECK else tuple(self.check(a) for a in e.args)
            return E.evolve(e, args=args, type=None)
        n = len(e.args)
        if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
            want = (str(fn.min_args) if fn.min_args == fn.max_args else
                    f"{fn.min_args} to {fn.max_args}" if fn.max_args is not None else f"at least {fn.min_args}")
            return self._fail(e, "E0204", f"{e.func}() takes {want} argument(s), got {n}")
        if self.scope.mode == CHECK and fn is CHECKS.get(e.func):
            return self._check_call(e, fn)
        if aggregate:
            if self.in_aggregate:
                return self._fail(e, "E0208", f"aggregate {e.func}() cannot be nested in another aggregate")
            self.in_aggregate = True
        try:
            args = tuple(self.check(a) for a in e.args)
        finally:
            if aggregate:
                self.in_aggregate = False
        return self._apply(e, fn, args)

    def _apply(self, e: E.Call, fn: Function, args: tuple[E.Expr, ...]) -> E.Expr:
        new = E.evolve(e, args=args, type=None)
        if any(a.type is None for a in args):
            return new
        try:
            return E.evolve(new, type=fn.result([a.type for a in args], list(args)))
        except ArgError as err:
            target = args[err.index] if err.index is not None else new
            return self._fail(target, err.code, f"{e.func}(): {err.message}")

    def _check_call(self, e: E.Call, fn: Function) -> E.Expr:
        args = []
        for a in e.args:
            if not isinstance(a, E.Column):
                return self._fail(a, "E0601", f"{e.func}() takes a column name")
            if a.name not in self.scope.columns:
                return self._fail(a, "E0203", f"unknown column '{a.name}'",
                                  suggest(a.name, self.scope.columns, self.scope.what))
            args.append(E.evolve(a, type=self.scope.columns[a.name]))
        return self._apply(e, fn, tuple(args))

    def _lookup(self, e: E.Call) -> tuple[Function | None, bool]:
        mode = self.scope.mode
        if mode == CHECK:
            if e.func in CHECKS:
                return CHECKS[e.func], False
            if e.func in SCALAR:  # e.g. abs(mean(x) - 1) or max(day) >= date("2026-01-01")
                return SCALAR[e.func], False
            self.report("E0601" if e.func in AGGREGATE else "E0202", f"'{e.func}' is not a data check",
                        e, suggest(e.func, list(CHECKS) + list(SCALAR), "data checks and functions"))
            return None, False
        if e.func in SCALAR:
            return SCALAR[e.func], False
        if e.func in AGGREGATE:
            if mode == AGG:
                return AGGREGATE[e.func], True
            self.report("E0208", f"aggregate {e.func}() is only allowed under `aggregate:`", e,
                        "aggregate in a feature with group_by + aggregate, then read its output")
            return None, False
        self.report("E0202", f"unknown function '{e.func}'", e,
                    suggest(e.func, list(SCALAR) + (list(AGGREGATE) if mode == AGG else []), "functions"))
        return None, False


_ARITH = {"+", "-", "*", "/", "%"}
_ORDER = {"<", "<=", ">", ">="}


def _binary_type(op: str, a: str, b: str) -> str:
    """The result type, or '!message' when the operands do not fit."""
    if op in ("and", "or"):
        bad = [t for t in (a, b) if t not in (T.BOOL, T.NULL)]
        return f"!'{op}' needs boolean operands, found {bad[0]}" if bad else T.BOOL
    if op in _ARITH:
        if not (T.is_numeric(a) and T.is_numeric(b)):
            return f"!'{op}' needs numeric operands, found {a} {op} {b}"
        return T.FLOAT64 if op == "/" else (T.INT64 if a == b == T.NULL else T.promote(a, b))
    if not T.comparable(a, b):
        return f"!cannot compare {a} with {b}"
    if op in _ORDER and T.BOOL in (a, b):
        return f"!'{op}' does not order booleans; use == or !="
    return T.BOOL


def _binary_hint(op: str, a: str, b: str) -> str | None:
    if op in _ARITH and T.STRING in (a, b):
        return "strings do not support arithmetic; there is no implicit conversion"
    if op in _ARITH and T.TEMPORAL & {a, b}:
        return "use days_between(a, b) for date differences"
    if T.TEMPORAL & {a, b} and (T.NUMERIC & {a, b} or T.STRING in (a, b)):
        return 'compare with a date literal: date("2026-01-01")'
    if op == "=":
        return "use == to compare"
    return None


def _constant(e: E.Expr) -> bool:
    """Literals, and date/timestamp literals written as calls."""
    return isinstance(e, E.Literal) or (isinstance(e, E.Call) and e.func in ("date", "timestamp"))
