"""Expressions: frozen AST nodes, their JSON, and `parse` (the lark parser that builds
them is in exprparse.py, imported on the first parse).

Each node records its character range in the expression text (excluded from
equality) and, once type-checked, its type.  Nothing here ever evaluates an expression.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from typing import Any, Iterator, NewType
from typing import Literal as Fixed

from .types import ExprType

MAX_EXPR_CHARS = 10_000
MAX_EXPR_DEPTH = 200
# Integer literals longer than this are refused by the parser (Python converts at most 4,300
# digits); the type checker refuses shorter ones outside int64 (19 digits hold any int64).
MAX_INT_DIGITS = 40
INT64_MIN, INT64_MAX = -2**63, 2**63 - 1
INT_RANGE_HINT = (f"integers are 64-bit ({INT64_MIN} to {INT64_MAX}); write a float such as 1e20 "
                  "for larger numbers")

# The fixed values of expression fields (the IR reader refuses others; `typing.get_args` lists them)
UnaryOp = Fixed["-", "+", "not"]
BinaryOp = Fixed["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or"]
FunctionName = NewType("FunctionName", str)  # a name in functions.py: SCALAR, AGGREGATE or CHECKS

_NODE = dict(frozen=True, slots=True, kw_only=True)


@dataclass(**_NODE)
class Expr:
    """Base of all expression nodes; `type` is None until the checker fills it in."""

    type: ExprType | None = None
    start: int = field(default=0, compare=False, repr=False)
    end: int = field(default=0, compare=False, repr=False)
    depth: int = field(default=1, compare=False, repr=False)

    def children(self) -> tuple["Expr", ...]:
        return ()


@dataclass(**_NODE)
class Literal(Expr):
    """A constant; `value` is int, float, bool, str or None."""

    value: Any = None


@dataclass(**_NODE)
class Column(Expr):
    name: str


@dataclass(**_NODE)
class Param(Expr):
    """`params.x` or `${params.x}`; replaced by a Literal when params are bound."""

    name: str


@dataclass(**_NODE)
class Qualified(Expr):
    """`qualifier.name`, e.g. `production.roc_auc` in a gate."""

    qualifier: Fixed["production"]
    name: str


@dataclass(**_NODE)
class Unary(Expr):
    op: UnaryOp
    operand: Expr

    def children(self):
        return (self.operand,)


@dataclass(**_NODE)
class Binary(Expr):
    op: BinaryOp
    left: Expr
    right: Expr

    def children(self):
        return (self.left, self.right)


@dataclass(**_NODE)
class InList(Expr):
    operand: Expr
    items: tuple[Expr, ...]
    negated: bool = False

    def children(self):
        return (self.operand, *self.items)


@dataclass(**_NODE)
class IsNull(Expr):
    operand: Expr
    negated: bool = False

    def children(self):
        return (self.operand,)


@dataclass(**_NODE)
class Call(Expr):
    func: FunctionName
    args: tuple[Expr, ...]

    def children(self):
        return self.args


NODE_CLASSES = {c.__name__: c for c in (Literal, Column, Param, Qualified, Unary, Binary, InList,
                                         IsNull, Call)}
_FIELDS = {c: tuple(f.name for f in dataclasses.fields(c)) for c in NODE_CLASSES.values()}
_JSON_FIELDS = {c: tuple(f.name for f in dataclasses.fields(c) if f.compare) for c in NODE_CLASSES.values()}
CHILD_FIELDS = {Unary: ("operand",), Binary: ("left", "right"), InList: ("operand", "items"),
                IsNull: ("operand",), Call: ("args",)}  # the fields holding sub-expressions


def evolve(node: Expr, **changes) -> Expr:
    """A copy of `node` with some fields changed (dataclasses.replace, without its overhead)."""
    new = object.__new__(type(node))
    for name in _FIELDS[type(node)]:
        object.__setattr__(new, name, changes[name] if name in changes else getattr(node, name))
    return new


class ExprSyntaxError(Exception):
    """A parse failure with the offending character range and a friendly message."""

    def __init__(self, message: str, start: int, end: int, hint: str | None = None,
                 code: str = "E0201"):
        super().__init__(message)
        self.message, self.start, self.end, self.hint, self.code = message, start, end, hint, code


def parse(text: str) -> Expr:
    """Parse expression text; raises ExprSyntaxError (never a lark or Python error).

    The parser lives in exprparse.py: lark costs ~45 ms to import, which reading an IR
    (a cached `pipespec run`) does not need.
    """
    from .exprparse import parse as parse_text
    return parse_text(text)


def walk(expr: Expr) -> Iterator[Expr]:
    """Every node, parents before children (iterative)."""
    stack = [expr]
    while stack:
        node = stack.pop()
        yield node
        stack.extend(reversed(node.children()))


def columns(expr: Expr) -> list[str]:
    """Column names the expression reads, in first-use order."""
    seen: dict[str, None] = {}
    for node in walk(expr):
        if isinstance(node, Column):
            seen.setdefault(node.name, None)
    return list(seen)


# --- canonical text and JSON --------------------------------------------------------

_PRECEDENCE = {"or": 1, "and": 2, "not": 3, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
               "in": 4, "is": 4, "+": 5, "-": 5, "*": 6, "/": 6, "%": 6, "neg": 7}
_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_KEYWORDS = {"and", "or", "not", "in", "is", "true", "false", "null", "params"}


def _prec(e: Expr) -> int:
    if isinstance(e, Binary):
        return _PRECEDENCE[e.op]
    if isinstance(e, Unary):
        return _PRECEDENCE["not" if e.op == "not" else "neg"]
    if isinstance(e, (InList, IsNull)):
        return 4
    return 9


def to_text(e: Expr) -> str:
    """Canonical source text (fully re-parseable, minimal parentheses)."""
    if isinstance(e, Literal):
        return _literal_text(e.value)
    if isinstance(e, Column):
        return e.name if _NAME_RE.fullmatch(e.name) and e.name not in _KEYWORDS else f"`{e.name}`"
    if isinstance(e, Param):
        return f"params.{e.name}"
    if isinstance(e, Qualified):
        return f"{e.qualifier}.{e.name}"
    if isinstance(e, Call):
        return f"{e.func}({', '.join(to_text(a) for a in e.args)})"
    if isinstance(e, Unary):
        inner = _wrap(e.operand, _prec(e), strict=False)
        return f"not {inner}" if e.op == "not" else f"{e.op}{inner}"
    if isinstance(e, Binary):
        p = _prec(e)
        return f"{_wrap(e.left, p, strict=p == 4)} {e.op} {_wrap(e.right, p, strict=True)}"
    if isinstance(e, InList):
        items = ", ".join(to_text(i) for i in e.items)
        return f"{_wrap(e.operand, 4, True)} {'not in' if e.negated else 'in'} [{items}]"
    if isinstance(e, IsNull):
        return f"{_wrap(e.operand, 4, True)} is {'not null' if e.negated else 'null'}"
    raise TypeError(type(e))


def _wrap(e: Expr, parent: int, strict: bool) -> str:
    text = to_text(e)
    p = _prec(e)
    return f"({text})" if p < parent or (strict and p == parent) else text


def _literal_text(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        r = repr(v)
        return r if any(ch in r for ch in ".en") else r + ".0"
    if isinstance(v, int):
        return str(v)
    return json.dumps(v, ensure_ascii=False)


def to_json(e: Expr) -> dict:
    """The expression as JSON data; `irjson.read_expr` reads it back (typed, IRError else)."""
    data: dict[str, Any] = {"node": type(e).__name__}
    for name in _JSON_FIELDS[type(e)]:
        v = getattr(e, name)
        if isinstance(v, Expr):
            v = to_json(v)
        elif isinstance(v, tuple):
            v = [to_json(x) for x in v]
        data[name] = v
    return data
