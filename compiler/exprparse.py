"""The expression parser: lark's LALR parser with an inline transformer, so the AST
(expr.py's nodes) is built during the parse (no intermediate tree, no recursion), and
friendly messages for its syntax errors.  Imported by `expr.parse` on first use.
"""

from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token, Transformer, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedToken

from .expr import (
    INT_RANGE_HINT,
    MAX_EXPR_CHARS,
    MAX_EXPR_DEPTH,
    MAX_INT_DIGITS,
    Binary,
    Call,
    Column,
    Expr,
    ExprSyntaxError,
    InList,
    IsNull,
    Literal,
    Param,
    Qualified,
    Unary,
    evolve,
)

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
        tok = c[0]
        if len(tok) > MAX_INT_DIGITS:  # raised through lark: not a LarkError
            raise ExprSyntaxError(f"integer literal of {len(tok):,} digits is out of range",
                                  tok.start_pos, tok.end_pos, INT_RANGE_HINT, code="E0211")
        return self._leaf(Literal, tok, value=int(tok))

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
