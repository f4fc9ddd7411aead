"""Reading IR values back from JSON: typed readers that accept what `ir.encode` writes and nothing
else (irgraph.py reads a whole IR document with them and checks its graph).

`pipespec step`, the Airflow and Ray workers and the compile cache run whatever IR file they are
given.  So every value is checked against its dataclass field's declared type while it is decoded
(readers built once from the type hints): a `Literal[...]` field (a source format, a join's `how`,
a column type, an operator) takes only its values, a `FunctionName` or `MetricName` only the names
the compiler knows, an integer 64 bits, a float a finite number.  Anything else raises `_Bad`,
whose path grows while it propagates out and becomes `ir.IRError` naming the JSON path of the
offending value, e.g. `nodes[3].inputs[0].node`.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import re
import sys
import types
import typing
from typing import Any, Callable, Union

from . import expr as E
from . import ir
from . import types as T
from .diagnostics import Span
from .functions import AGGREGATE, CHECKS, SCALAR

Reader = Callable[[Any], Any]

_NAME = re.compile(ir.NAME_RE)
_INT64 = 2**63
_COUNTS = frozenset({"retries", "hold_seconds", "memory_bytes", "gpus", "folds"})  # never negative
_JSON_NAMES = {dict: "an object", list: "an array", str: "a string", int: "an integer",
               float: "a number", bool: "a boolean", type(None): "null"}


class _Bad(Exception):
    """A value that does not fit; `path` grows (innermost first) while it propagates out."""

    def __init__(self, message: str, *path: str | int):
        super().__init__(message)
        self.message, self.path = message, list(reversed(path))

    def at(self, part: str | int) -> "_Bad":
        self.path.append(part)
        return self

    def error(self) -> ir.IRError:
        parts = [f"[{p}]" if isinstance(p, int) else f".{p}" if _NAME.fullmatch(p) else
                 f"[{json.dumps(p)}]" for p in reversed(self.path)]
        if len(parts) > 16:  # a deep expression: its first and last levels say enough
            parts[10:-4] = [f".…{len(parts) - 14} more…"]
        return ir.IRError(self.message, "".join(parts).removeprefix("."))


def _expected(what: str, value: Any) -> _Bad:
    shown = json.dumps(value)[:40] if isinstance(value, (str, int, float)) else ""
    return _Bad(f"expected {what}, got {_JSON_NAMES.get(type(value), 'a value')} {shown}".rstrip())


# --- leaves ---------------------------------------------------------------------------------


def _str(v: Any) -> str:
    if type(v) is not str:
        raise _expected("a string", v)
    if not v.isascii():
        _unicode(v)
    return v


def _unicode(text: str) -> None:
    try:
        text.encode()
    except UnicodeEncodeError:
        raise _Bad("a string holds a lone surrogate (not valid Unicode)") from None


def _int(v: Any) -> int:
    if type(v) is not int or not -_INT64 <= v < _INT64:
        raise _expected("a 64-bit integer", v)
    return v


def _count(v: Any) -> int:
    if type(v) is not int or not 0 <= v < _INT64:
        raise _expected("a non-negative 64-bit integer", v)
    return v


def _float(v: Any) -> float:
    if type(v) is float:
        if not math.isfinite(v):  # json.loads reads 1e999 as infinity
            raise _expected("a finite number", v)
    elif type(v) is not int or not -_INT64 <= v < _INT64:
        raise _expected("a number", v)
    return v


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _expected("a boolean", v)
    return v


def _scalar(v: Any) -> Any:
    if type(v) in (bool, type(None)):
        return v
    if type(v) is str:
        return _str(v)
    if type(v) is int:
        return _int(v)
    if type(v) is float:
        return _float(v)
    raise _expected("a string, number, boolean or null", v)


@functools.cache
def _one_of(values: tuple[str, ...], what: str = "") -> Reader:
    """One of a field's fixed values: a `Literal[...]`, or a NewType's (_VALUES)."""
    allowed = frozenset(values)
    expected = what or "one of " + ", ".join(json.dumps(x) for x in values)

    def read_one_of(v):
        if type(v) is not str or v not in allowed:
            raise _expected(expected, v)
        return v
    return read_one_of


_VALUES = {E.FunctionName: (tuple(sorted({*SCALAR, *AGGREGATE, *CHECKS})), "a function name"),
           ir.MetricName: (tuple(ir.METRICS), "a metric name")}


def _name(v: Any) -> str:
    if not _NAME.fullmatch(_str(v)):
        raise _Bad(f"{v!r} is not a name ({ir.NAME_RE})")
    return v


# --- composites -----------------------------------------------------------------------------


def _optional(read: Reader) -> Reader:
    def read_optional(v):
        return None if v is None else read(v)
    return read_optional


def _tuple_of(read: Reader) -> Reader:
    def read_tuple(v):
        if type(v) is not list:
            raise _expected("an array", v)
        try:
            return tuple([read(x) for x in v])
        except _Bad as exc:
            raise exc.at(_failing(read, v)) from None
    return read_tuple


def _failing(read: Reader, items: list) -> int:
    """The index of the first item `read` rejects (reading is pure, so reading again is safe)."""
    for i, x in enumerate(items):
        try:
            read(x)
        except _Bad:
            return i
    raise AssertionError("no item fails")  # pragma: no cover


def _fixed(reads: tuple[Reader, ...]) -> Reader:
    def read_fixed(v):
        if type(v) is not list or len(v) != len(reads):
            raise _expected(f"an array of {len(reads)}", v)
        return tuple([_at(read, x, i) for i, (read, x) in enumerate(zip(reads, v))])
    return read_fixed


def _at(read: Reader, v: Any, *path: str | int) -> Any:
    try:
        return read(v)
    except _Bad as exc:
        for part in reversed(path):
            exc.at(part)
        raise


_COLUMN_TYPES = frozenset(T.COLUMN_TYPES)


def _column_pair(v: Any) -> tuple[str, str]:
    """(column, type) pairs are most of an IR: one fast path for the common case."""
    if type(v) is list and len(v) == 2:
        a, b = v
        if type(a) is str and type(b) is str and a.isascii() and b in _COLUMN_TYPES:
            return (a, b)
    return _slow_pair(v)


_slow_pair = _fixed((_str, _one_of(T.COLUMN_TYPES)))


def _hints(cls: type) -> dict[str, Any]:
    """typing.get_type_hints of a dataclass, evaluating each distinct annotation once."""
    return {f.name: _hint(f.type, cls.__module__) for f in dataclasses.fields(cls)}


@functools.cache
def _hint(annotation: str, module: str) -> Any:
    return eval(annotation, vars(sys.modules[module]))  # noqa: S307 - our own annotations


def _keys(v: dict, keys: frozenset) -> _Bad:
    missing, unknown = sorted(keys - v.keys()), sorted(set(v) - keys)
    if missing:
        return _Bad(f"missing key {missing[0]!r}")
    return _Bad(f"unknown key {unknown[0]!r}").at(unknown[0])


@functools.cache
def _fields(cls: type, tag: str | None, extra: frozenset = frozenset()) -> Reader:
    """Reads an object with exactly `cls`'s fields (plus `tag` and `extra`) into a `cls`."""
    hints = _hints(cls)
    names = ir._field_names(cls)
    reads = tuple((name, _reader(hints[name], name)) for name in names)
    keys = frozenset(names) | ({tag} if tag else set()) | extra

    def read_fields(v):
        if type(v) is not dict:
            raise _expected("an object", v)
        if v.keys() != keys:
            raise _keys(v, keys)
        try:
            return cls(**{name: read(v[name]) for name, read in reads})
        except _Bad as exc:
            raise exc.at(next(n for n, read in reads if _rejects(read, v[n]))) from None
    return read_fields


def _rejects(read: Reader, v: Any) -> bool:
    try:
        read(v)
    except _Bad:
        return True
    return False


@functools.cache
def _tagged(classes: tuple[type, ...]) -> Reader:
    """An object whose `kind` picks one of `classes`."""
    by_kind = {c.__name__: _fields(c, "kind") for c in classes}
    what = " or ".join(sorted(by_kind))

    def read_tagged(v):
        if type(v) is not dict:
            raise _expected(f"an object ({what})", v)
        kind = v.get("kind")
        read = by_kind.get(kind) if type(kind) is str else None
        if read is None:
            raise _Bad(f"expected kind {what}, got {json.dumps(kind)[:40]}", "kind")
        return read(v)
    return read_tagged


def _reader(hint: Any, name: str = "") -> Reader:
    """The reader of a field declared `hint` (built once per class, at import)."""
    leaf = {str: _str, int: _count if name in _COUNTS else _int, float: _float, bool: _bool,
            Any: _scalar}.get(hint)
    if leaf is not None:
        return leaf
    if hint in _VALUES:
        return _one_of(*_VALUES[hint])
    if hint is Span:
        return _fields(Span, None)
    if hint is E.Expr:
        return _expr
    if hint in ir._CLASS_SET:
        return _tagged((hint,))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is typing.Literal:
        return _one_of(args)
    if origin is tuple:
        if args == (tuple[str, T.ColumnType], ...):
            return _tuple_of(_column_pair)
        if len(args) == 2 and args[1] is Ellipsis:
            return _tuple_of(_reader(args[0], name))
        return _fixed(tuple(_reader(a, name) for a in args))
    if origin in (Union, types.UnionType):
        return _union(args, name)
    raise TypeError(f"no JSON reader for {hint!r}")  # pragma: no cover - a new field type


def _union(args: tuple, name: str) -> Reader:
    rest = tuple(a for a in args if a is not type(None))
    if len(rest) > 1 and set(rest) <= {str, int, float, bool}:
        return _scalar  # ir.Scalar
    read = _reader(rest[0], name) if len(rest) == 1 else _tagged(rest)
    return _optional(read) if len(rest) < len(args) else read


# --- expressions ----------------------------------------------------------------------------


def read_expr(data: Any) -> E.Expr:
    """The expression `expr.to_json` wrote; IRError naming the JSON path of anything else."""
    try:
        return _expr(data)
    except _Bad as exc:
        raise exc.error() from None


def _expr(v: Any, depth: int = 1) -> E.Expr:
    """An expression object (`node` names its class), as deep as the parser allows at most."""
    if type(v) is not dict:
        raise _expected("an expression object", v)
    node = v.get("node")
    read = _EXPR_CLASSES.get(node) if type(node) is str else None
    if read is None:
        raise _Bad(f"unknown expression node {json.dumps(node)[:40]}", "node")
    if depth > E.MAX_EXPR_DEPTH:
        raise _Bad(f"expression nests deeper than {E.MAX_EXPR_DEPTH} levels")
    return read(v, depth)


def _exprs(v: Any, depth: int) -> tuple[E.Expr, ...]:
    if type(v) is not list:
        raise _expected("an array of expressions", v)
    items = []
    for i, x in enumerate(v):
        try:
            items.append(_expr(x, depth))
        except _Bad as exc:
            raise exc.at(i) from None
    return tuple(items)


def _expr_fields(cls: type) -> Callable[[dict, int], E.Expr]:
    """Like `_fields`, passing the depth on to child expressions."""
    hints = {f.name: f.type for f in dataclasses.fields(cls)}
    nested = {"Expr": _expr, "tuple[Expr, ...]": _exprs}
    names = E._JSON_FIELDS[cls]
    reads = tuple((n, nested.get(hints[n]) or _reader(_hint(hints[n], cls.__module__), n),
                   hints[n] in nested) for n in names)
    keys = frozenset(names) | {"node"}

    def read_expr(v, depth):
        if v.keys() != keys:
            raise _keys(v, keys)
        kw = {}
        for name, read, deeper in reads:
            try:
                kw[name] = read(v[name], depth + 1) if deeper else read(v[name])
            except _Bad as exc:
                raise exc.at(name) from None
        return cls(**kw)
    return read_expr


_EXPR_CLASSES = {name: _expr_fields(cls) for name, cls in E.NODE_CLASSES.items()}
