"""Expressions: frozen AST nodes, the lark parser that builds them, and JSON.

The LALR parser runs with an inline transformer, so the AST is built during the
parse (no intermediate tree, no recursion).  Each node records its character
range in the expression text (excluded from equality) and, once type-checked,
its type.  Nothing here ever evaluates an expression.
"""

from __future__ import annotations

import dataclasses
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedToken

MAX_EXPR_CHARS = 10_000
MAX_EXPR_DEPTH = 200

_NODE = dict(frozen=True, slots=True, kw_only=True)


@dataclass(**_NODE)
class Expr:
    """Base of all expression nodes; `type` is None until the checker fills it in."""

    type: str | None = None
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

    qualifier: str
    name: str


@dataclass(**_NODE)
class Unary(Expr):
    op: str  # "-", "+", "not"
    operand: Expr

    def children(self):
        return (self.operand,)


@dataclass(**_NODE)
class Binary(Expr):
    op: str  # arithmetic, comparison, "and", "or"
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
    func: str
    args: tuple[Expr, ...]

    def children(self):
        return self.args


NODE_CLASSES = {c.__name__: c for c in (Literal, Column, Param, Qualified, Unary, Binary, InList,
                                         IsNull, Call)}
_FIELDS = {c: tuple(f.name for f in dataclasses.fields(c)) for c in NODE_CLASSES.values()}
_JSON_FIELDS = {c: tuple(f.name for f in dataclasses.fields(c) if f.compare) for c in NODE_CLASSES.values()}


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


# --- building the AST during the parse ---------------------------------------------


def _span(*parts) -> tuple[int, int, int]:
    start = end = None
    depth = 0
    for p in parts:
        if isinstance(p, Token):
            s, e = p.start_pos, p.end_pos
        elif isinstance(p, Expr):
            s, e, depth = p.start, p.end, max(depth, p.depth)
        else:
            continue
        start = s if start is None else min(start, s)
        end = e if end is None else max(end, e)
    return start or 0, end or 0, depth + 1


def _exprs(children) -> list[Expr]:
    return [c for c in children if isinstance(c, Expr)]


_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "b": "\b", "f": "\f", "\\": "\\", "'": "'", '"': '"',
            "0": "\0"}


def _unquote(token: Token) -> str:
    body = token.value[1:-1]
    return re.sub(r"\\(u[0-9a-fA-F]{4}|.)", _unescape, body)


def _unescape(m: re.Match) -> str:
    esc = m.group(1)
    if len(esc) == 5:
        return chr(int(esc[1:], 16))
    return _ESCAPES.get(esc, "\\" + esc)


class _Build(Transformer):
    """Inline callbacks for the LALR parser: one per aliased rule in grammar.lark."""

    def _leaf(self, cls, tok, **kw):
        return cls(start=tok.start_pos, end=tok.end_pos, **kw)

    def int_(self, c):
        return self._leaf(Literal, c[0], value=int(c[0]))

    def float_(self, c):
        return self._leaf(Literal, c[0], value=float(c[0]))

    def string(self, c):
        return self._leaf(Literal, c[0], value=_unquote(c[0]))

    def true(self, c):
        return self._leaf(Literal, c[0], value=True)

    def false(self, c):
        return self._leaf(Literal, c[0], value=False)

    def null(self, c):
        return self._leaf(Literal, c[0], value=None)

    def column(self, c):
        return self._leaf(Column, c[0], name=str(c[0]))

    def quoted_column(self, c):
        return self._leaf(Column, c[0], name=c[0].value[1:-1])

    def param_ref(self, c):
        return self._leaf(Param, c[0], name=c[0].value[len("${params."):-1])

    def qualified(self, c):
        s, e, _ = _span(*c)
        if c[0] == "params":
            return Param(name=str(c[2]), start=s, end=e)
        return Qualified(qualifier=str(c[0]), name=str(c[2]), start=s, end=e)

    def call(self, c):
        args = next((tuple(_exprs(x.children)) for x in c if isinstance(x, Tree)), ())
        s, e, d = _span(*c, *args)
        return Call(func=str(c[0]), args=args, start=s, end=e, depth=d)

    def atom(self, c):  # "(" expr ")": keep the parentheses in the span
        inner = c[1]
        s, e, _ = _span(*c)
        return evolve(inner, start=s, end=e)

    def _unary(self, op, c):
        s, e, d = _span(*c)
        return Unary(op=op, operand=_exprs(c)[0], start=s, end=e, depth=d)

    def neg(self, c):
        operand = _exprs(c)[0]
        if isinstance(operand, Literal) and type(operand.value) in (int, float):
            s, e, _ = _span(*c)  # a negative number is a literal (so `x in [-1, 0]` works)
            return Literal(value=-operand.value, start=s, end=e)
        return self._unary("-", c)

    def pos(self, c):
        return self._unary("+", c)

    def not_(self, c):
        return self._unary("not", c)

    def _binary(self, op, c):
        left, right = _exprs(c)
        s, e, d = _span(*c)
        return Binary(op=op, left=left, right=right, start=s, end=e, depth=d)

    def binary(self, c):
        return self._binary(str(c[1]), c)

    def compare(self, c):
        return self._binary(str(c[1]), c)

    def and_(self, c):
        return self._binary("and", c)

    def or_(self, c):
        return self._binary("or", c)

    def _in(self, c, negated):
        items = tuple(_exprs(c[-1].children))
        s, e, d = _span(*c, *items)
        return InList(operand=c[0], items=items, negated=negated, start=s, end=e, depth=d)

    def in_(self, c):
        return self._in(c, False)

    def not_in(self, c):
        return self._in(c, True)

    def is_null(self, c):
        s, e, d = _span(*c)
        return IsNull(operand=c[0], negated=False, start=s, end=e, depth=d)

    def is_not_null(self, c):
        s, e, d = _span(*c)
        return IsNull(operand=c[0], negated=True, start=s, end=e, depth=d)


@lru_cache(maxsize=1)
def _parser() -> Lark:
    grammar = (Path(__file__).with_name("grammar.lark")).read_text()
    return Lark(grammar, parser="lalr", transformer=_Build(), keep_all_tokens=True,
                maybe_placeholders=False)


# --- errors ---------------------------------------------------------------------

_TOKEN_WORDS = {"COMP_OP": "a comparison", "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/' or '%'",
                "NAME": "a name", "INT": "a number", "FLOAT": "a number", "STRING": "a string",
                "RPAR": "')'", "LPAR": "'('", "RSQB": "']'", "LSQB": "'['", "COMMA": "','",
                "$END": "the end of the expression"}

_CHAR_HINTS = {"=": "use '==' to compare", "&": "use 'and'", "|": "use 'or'", "!": "use 'not' or '!='",
               '"': "strings need a closing quote", "'": "strings need a closing quote",
               "`": "backquoted names need a closing backquote", "$": "write params.name or ${params.name}",
               "{": "use [..] for lists"}


def _token_word(name: str) -> str:
    """How to show an expected terminal: its literal text, or a word for a pattern."""
    if name in _TOKEN_WORDS:
        return _TOKEN_WORDS[name]
    try:
        pattern = _parser().get_terminal(name).pattern
    except KeyError:
        return "a token"
    return repr(pattern.value) if pattern.type == "str" else "a token"


def _syntax_error(exc: LarkError, text: str) -> ExprSyntaxError:
    if isinstance(exc, UnexpectedCharacters):
        ch = text[exc.pos_in_stream] if exc.pos_in_stream < len(text) else ""
        word = {"&&": "&&", "||": "||"}.get(text[exc.pos_in_stream:exc.pos_in_stream + 2], ch)
        return ExprSyntaxError(f"unexpected character {word!r}", exc.pos_in_stream,
                               exc.pos_in_stream + len(word), _CHAR_HINTS.get(ch))
    if isinstance(exc, UnexpectedToken) and exc.token.type != "$END":
        tok = exc.token
        hint = None
        if tok.type == "COMP_OP":
            hint = "comparisons do not chain: write 'a < b and b < c'"
        elif tok.type in ("NAME", "INT", "FLOAT", "STRING", "QUOTED_NAME"):
            hint = "an operator (or a comma) is missing before it; backquote names with spaces"
        expected = sorted({_token_word(t) for t in exc.expected if not t.startswith("__")})
        if not hint and expected:
            hint = "expected " + ", ".join(expected[:6])
        return ExprSyntaxError(f"unexpected {tok.value!r}", tok.start_pos, tok.end_pos, hint)
    pos = len(text.rstrip())
    return ExprSyntaxError("unexpected end of expression", max(pos - 1, 0), max(pos, 1),
                           "the expression is incomplete (an operand or a closing bracket is missing)")


@lru_cache(maxsize=4096)
def parse(text: str) -> Expr:
    """Parse expression text; raises ExprSyntaxError (never a lark or Python error).

    Memoized by text: ASTs are immutable, and specs repeat expressions.
    """
    if not isinstance(text, str):
        raise ExprSyntaxError("an expression must be a string", 0, 1)
    if len(text) > MAX_EXPR_CHARS:
        raise ExprSyntaxError(f"expression is longer than {MAX_EXPR_CHARS:,} characters", 0, 1,
                              code="E0005")
    if not text.strip():
        raise ExprSyntaxError("empty expression", 0, 1)
    try:
        tree = _parser().parse(text)
    except LarkError as exc:
        raise _syntax_error(getattr(exc, "orig_exc", exc), text) from None
    except RecursionError:  # pragma: no cover - the LALR parser is iterative
        raise ExprSyntaxError("expression is nested too deeply", 0, 1, code="E0005") from None
    if tree.depth > MAX_EXPR_DEPTH:
        raise ExprSyntaxError(f"expression nests deeper than {MAX_EXPR_DEPTH} levels", 0, len(text),
                              "split it into several derived columns", code="E0005")
    return tree


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
        return e.name if _NAME_RE.match(e.name) and e.name not in _KEYWORDS else f"`{e.name}`"
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
    data: dict[str, Any] = {"node": type(e).__name__}
    for name in _JSON_FIELDS[type(e)]:
        v = getattr(e, name)
        if isinstance(v, Expr):
            v = to_json(v)
        elif isinstance(v, tuple):
            v = [to_json(x) for x in v]
        data[name] = v
    return data


def from_json(data: dict) -> Expr:
    cls = NODE_CLASSES[data["node"]]
    kw = {}
    for f in dataclasses.fields(cls):
        if not f.compare or f.name not in data:
            continue
        v = data[f.name]
        if isinstance(v, dict) and "node" in v:
            v = from_json(v)
        elif isinstance(v, list):
            v = tuple(from_json(x) for x in v)
        kw[f.name] = v
    return cls(**kw)
