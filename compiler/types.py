"""Column types, numeric promotion, and table schemas.

Types are plain strings (`"int64"`, `"date"`, ...) so that they serialize as
themselves; `NULL` is the type of the `null` literal only, and fits anywhere.
"""

from __future__ import annotations

from typing import Iterable, Literal, get_args

INT32, INT64, FLOAT32, FLOAT64 = "int32", "int64", "float32", "float64"
BOOL, STRING, DATE, TIMESTAMP = "bool", "string", "date", "timestamp"
NULL = "null"

ColumnType = Literal["int64", "int32", "float64", "float32", "bool", "string", "date", "timestamp"]
ExprType = Literal[ColumnType, "null"]  # an expression's type: `null` is the null literal's
COLUMN_TYPES: tuple[str, ...] = get_args(ColumnType)
INTEGERS = frozenset({INT32, INT64})
FLOATS = frozenset({FLOAT32, FLOAT64})
NUMERIC = INTEGERS | FLOATS
TEMPORAL = frozenset({DATE, TIMESTAMP})
ORDERED = NUMERIC | TEMPORAL | {STRING, BOOL}

Schema = tuple[tuple[str, str], ...]  # ordered (column, type) pairs


def is_numeric(t: str) -> bool:
    return t in NUMERIC or t == NULL


def promote(a: str, b: str) -> str:
    """The common type of two numeric operands (the rules in SPEC.md, "Numeric promotion")."""
    if a == NULL:
        return b
    if b == NULL or a == b:
        return a
    if a in INTEGERS and b in INTEGERS:
        return INT64
    if a == FLOAT32 and b == FLOAT32:
        return FLOAT32
    return FLOAT64


def comparable(a: str, b: str) -> bool:
    """Whether `a op b` is a legal comparison."""
    if NULL in (a, b):
        return True
    if a in NUMERIC and b in NUMERIC:
        return True
    if a in TEMPORAL and b in TEMPORAL:
        return True
    return a == b


def unify(types: Iterable[str]) -> str | None:
    """The common type of several values (coalesce, if_else, in-lists), or None."""
    result = NULL
    for t in types:
        if t == NULL:
            continue
        if result == NULL or result == t:
            result = t
        elif result in NUMERIC and t in NUMERIC:
            result = promote(result, t)
        elif result in TEMPORAL and t in TEMPORAL:
            result = TIMESTAMP
        else:
            return None
    return result

