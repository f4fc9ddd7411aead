"""Typed expressions run vectorized on Arrow, with exactly the null semantics of SPEC §9.

One lowering serves two uses: `to_arrow` gives a `pyarrow.compute.Expression`
(columns become `pc.field`), `evaluate` runs the same `pc.*` calls eagerly on a
table's columns (the fastest way to compute one column; no Acero plan to build).
The compute functions accept either kind of operand, so both share every rule.

Every intermediate value has the Arrow type of the pipespec type the type checker
gave its node: operands are cast to the node's type first (int32 + int64 ->
int64, float32 + int64 -> float64), so Arrow's own promotion rules never decide.
Integer arithmetic wraps around on overflow (Arrow's unchecked kernels, like numpy);
a cast of a value that does not convert (`cast("abc", "int64")`, NaN to an integer, an
int64 beyond int32) fails the node rather than giving null.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, Callable

import pyarrow as pa
import pyarrow.compute as pc

from pipespec.compiler import expr as E
from pipespec.compiler import types as T

from .arrowtypes import arrow_type, schema_from

Value = Any  # pc.Expression, pa.ChunkedArray, pa.Array or pa.Scalar

_US_PER_DAY = 86_400_000_000
_NULL_BOOL = pa.scalar(None, pa.bool_())
_TRUE = pa.scalar(True)


def to_arrow(expr: E.Expr) -> pc.Expression:
    """The expression over `pc.field(name)` columns (`production.x` is one field, dot and all)."""
    value = _Lowering(pc.field).value(expr)
    if isinstance(value, pc.Expression):
        return value
    return pc.scalar(_typed_constant(value))


def evaluate(expr: E.Expr, table: pa.Table) -> pa.ChunkedArray | pa.Array:
    """A column of the expression's type with one value per row of `table`."""
    value = _Lowering(table.column).value(expr)
    if isinstance(value, pa.Scalar):  # constant: still one value per row
        return pa.repeat(_typed_constant(value), table.num_rows)
    return value


def evaluate_scalar(expr: E.Expr, values: dict[str, object], types: dict[str, str]) -> object:
    """The expression over one row given as Python values (a gate's metrics, serving metrics)."""
    row = {name: values.get(name) for name in types}
    return evaluate(expr, pa.Table.from_pylist([row], schema=schema_from(types)))[0].as_py()


def _typed_constant(value: pa.Scalar) -> pa.Scalar:
    """A bare `null` (type null) as an int64 null, as SPEC §8 types `null` with `null`."""
    return pa.scalar(None, arrow_type(T.NULL)) if value.type == pa.null() else value


def cast(value: Value, target: pa.DataType) -> Value:
    """A checked cast of an array, scalar or expression (`pc.cast` takes no expressions)."""
    if isinstance(value, (pc.Expression, pa.Scalar)):
        return value.cast(target)
    return pc.cast(value, target)


class _Lowering:
    """Lowers one expression; `leaf(name)` gives a column (a field or a table column)."""

    def __init__(self, leaf: Callable[[str], Value]):
        self.leaf = leaf

    def value(self, e: E.Expr) -> Value:
        """The node's value, of the Arrow type of `e.type` (a null-typed node is a null scalar)."""
        if e.type == T.NULL:
            return pa.scalar(None)
        if e.type is None:
            raise ValueError(f"expression {E.to_text(e)!r} was not type-checked")
        return getattr(self, "_" + type(e).__name__)(e)

    def arg(self, e: E.Expr, t: str) -> Value:
        """The node's value as pipespec type `t` (casting only when the types differ)."""
        if e.type == T.NULL:
            return pa.scalar(None, arrow_type(t))
        v = self.value(e)
        return v if e.type == t else cast(v, arrow_type(t))

    # leaves

    def _Literal(self, e: E.Literal) -> Value:
        return pa.scalar(e.value, arrow_type(e.type))

    def _Column(self, e: E.Column) -> Value:
        return self.leaf(e.name)

    def _Qualified(self, e: E.Qualified) -> Value:
        return self.leaf(f"{e.qualifier}.{e.name}")

    def _Param(self, e: E.Param) -> Value:
        raise ValueError(f"parameter params.{e.name} was not bound before evaluation")

    # operators

    def _Unary(self, e: E.Unary) -> Value:
        if e.op == "not":
            return pc.invert(self.arg(e.operand, T.BOOL))
        v = self.arg(e.operand, e.type)
        return pc.negate(v) if e.op == "-" else v

    def _Binary(self, e: E.Binary) -> Value:
        op = e.op
        if op in ("and", "or"):
            fn = pc.and_kleene if op == "and" else pc.or_kleene
            return fn(self.arg(e.left, T.BOOL), self.arg(e.right, T.BOOL))
        if op in _COMPARE:
            return self._compare(e)
        if op == "/":
            a, b = self.arg(e.left, T.FLOAT64), self.arg(e.right, T.FLOAT64)
            return pc.divide(a, _zero_to_null(b, pa.float64()))
        a, b = self.arg(e.left, e.type), self.arg(e.right, e.type)
        if op == "%":
            # floored modulo: the sign of the divisor, as in Python
            return pc.modulo(a, _zero_to_null(b, arrow_type(e.type)))
        return _ARITH[op](a, b)

    def _compare(self, e: E.Binary) -> Value:
        common = T.unify([e.left.type, e.right.type])
        if common == T.NULL:
            return _NULL_BOOL
        return _COMPARE[e.op](self.arg(e.left, common), self.arg(e.right, common))

    def _InList(self, e: E.InList) -> Value:
        """`x in [a, b]` is `x == a or x == b` in Kleene logic (so `x in []` is false)."""
        if not e.items:
            return pa.scalar(e.negated)
        common = T.unify([e.operand.type, *(i.type for i in e.items)])
        if common == T.NULL:
            return _NULL_BOOL
        items = [self.arg(i, common).as_py() for i in e.items if i.type != T.NULL]
        x = self.arg(e.operand, common)
        found = pc.is_in(x, value_set=pa.array(items, arrow_type(common)), skip_nulls=True)
        if len(items) < len(e.items):
            result = pc.if_else(found, _TRUE, _NULL_BOOL)  # no match is unknown, not false
        else:
            result = pc.if_else(pc.is_null(x), _NULL_BOOL, found)
        return pc.invert(result) if e.negated else result

    def _IsNull(self, e: E.IsNull) -> Value:
        if e.operand.type == T.NULL:
            return pa.scalar(not e.negated)
        v = self.value(e.operand)
        return pc.is_valid(v) if e.negated else pc.is_null(v)

    def _Call(self, e: E.Call) -> Value:
        method = getattr(self, "_fn_" + e.func, None)
        if method is None:
            raise ValueError(f"{e.func}() is not a scalar function (aggregates run in Aggregate)")
        return method(e, e.args)

    # numeric functions

    def _fn_abs(self, e, args):
        return pc.abs(self.arg(args[0], e.type))

    def _fn_sqrt(self, e, args):
        return pc.sqrt(self.arg(args[0], T.FLOAT64))

    def _fn_log(self, e, args):
        return pc.ln(self.arg(args[0], T.FLOAT64))

    def _fn_log1p(self, e, args):
        return pc.log1p(self.arg(args[0], T.FLOAT64))

    def _fn_exp(self, e, args):
        return pc.exp(self.arg(args[0], T.FLOAT64))

    def _fn_round(self, e, args):
        digits = args[1].value if len(args) == 2 else 0
        x = self.arg(args[0], e.type)
        if e.type in T.INTEGERS and digits >= 0:
            return x
        return pc.round(x, ndigits=digits, round_mode="half_to_even")

    def _fn_floor(self, e, args):
        x = self.arg(args[0], e.type)
        return x if e.type in T.INTEGERS else pc.floor(x)

    def _fn_ceil(self, e, args):
        x = self.arg(args[0], e.type)
        return x if e.type in T.INTEGERS else pc.ceil(x)

    def _fn_clip(self, e, args):
        x, lo, hi = (self.arg(a, e.type) for a in args)
        at_least_lo = pc.max_element_wise(x, lo, skip_nulls=False)
        return pc.min_element_wise(at_least_lo, hi, skip_nulls=False)  # hi wins when lo > hi

    # null handling and conditionals

    def _fn_coalesce(self, e, args):
        values = [self.arg(a, e.type) for a in args if a.type != T.NULL]
        return values[0] if len(values) == 1 else pc.coalesce(*values)

    _fn_fill_null = _fn_coalesce

    def _fn_if_else(self, e, args):
        cond = self.arg(args[0], T.BOOL)
        if isinstance(cond, pa.Scalar):
            cond = cond if cond.is_valid else pa.scalar(False)
        elif isinstance(cond, pc.Expression) or cond.null_count:
            cond = pc.coalesce(cond, pa.scalar(False))  # a null condition takes the else branch
        return pc.if_else(cond, self.arg(args[1], e.type), self.arg(args[2], e.type))

    # strings

    def _fn_lower(self, e, args):
        return pc.utf8_lower(self.arg(args[0], T.STRING))

    def _fn_upper(self, e, args):
        return pc.utf8_upper(self.arg(args[0], T.STRING))

    def _fn_length(self, e, args):
        return cast(pc.utf8_length(self.arg(args[0], T.STRING)), pa.int64())

    def _fn_contains(self, e, args):
        return pc.match_substring(self.arg(args[0], T.STRING), pattern=args[1].value)

    def _fn_starts_with(self, e, args):
        return pc.starts_with(self.arg(args[0], T.STRING), pattern=args[1].value)

    def _fn_ends_with(self, e, args):
        return pc.ends_with(self.arg(args[0], T.STRING), pattern=args[1].value)

    # dates and timestamps

    def _temporal(self, a: E.Expr) -> Value:
        return self.arg(a, a.type if a.type in T.TEMPORAL else T.DATE)

    def _fn_year(self, e, args):
        return pc.year(self._temporal(args[0]))

    def _fn_month(self, e, args):
        return pc.month(self._temporal(args[0]))

    def _fn_day(self, e, args):
        return pc.day(self._temporal(args[0]))

    def _fn_day_of_week(self, e, args):
        return pc.day_of_week(self._temporal(args[0]), count_from_zero=True, week_start=1)

    def _fn_days_between(self, e, args):
        """Whole days from a to b: elapsed time truncated toward zero (dates: b - a)."""
        a, b = args
        if a.type == T.DATE and b.type == T.DATE:
            return pc.days_between(self.arg(a, T.DATE), self.arg(b, T.DATE))
        elapsed = pc.subtract(self.arg(b, T.TIMESTAMP), self.arg(a, T.TIMESTAMP))
        return pc.divide(cast(elapsed, pa.int64()), pa.scalar(_US_PER_DAY))

    def _fn_date(self, e, args):
        return pa.scalar(dt.date.fromisoformat(args[0].value), pa.date32())

    def _fn_timestamp(self, e, args):
        return pa.scalar(parse_timestamp(args[0].value), pa.timestamp("us"))

    # conversion

    def _fn_cast(self, e, args):
        source, target = args[0].type, e.type
        x = self.arg(args[0], source if source != T.NULL else target)
        if source == target or source == T.NULL:
            return x
        if source in T.FLOATS and target in T.INTEGERS:
            x = pc.trunc(x)  # toward zero, as int(); NaN, infinity and overflow stay errors
        return cast(x, arrow_type(target))


def parse_timestamp(text: str) -> dt.datetime:
    """An ISO timestamp as a naive one; with a zone offset, its UTC time."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is not None:
        value = value.astimezone(dt.timezone.utc).replace(tzinfo=None)
    return value


def _zero_to_null(divisor: Value, t: pa.DataType) -> Value:
    """The divisor (of type `t`) with zeros made null, so `x / 0` and `x % 0` are null (SPEC §9)."""
    null = pa.scalar(None, t)
    if isinstance(divisor, pa.Scalar):
        return null if divisor.is_valid and divisor.as_py() == 0 else divisor
    is_zero = pc.equal(divisor, pa.scalar(0, t))
    if not isinstance(divisor, pc.Expression) and not pc.any(is_zero).as_py():
        return divisor  # the common case: no zero divisor, nothing to copy
    return pc.if_else(is_zero, null, divisor)


_ARITH = {"+": pc.add, "-": pc.subtract, "*": pc.multiply}
_COMPARE = {"==": pc.equal, "!=": pc.not_equal, "<": pc.less, "<=": pc.less_equal,
            ">": pc.greater, ">=": pc.greater_equal}
