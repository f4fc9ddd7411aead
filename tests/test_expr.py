"""The expression language: parsing, precedence, canonical text, JSON, errors, limits."""

from __future__ import annotations

import math
import re
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pipespec.compiler import expr as E
from pipespec.compiler.expr import (
    Binary,
    Call,
    Column,
    ExprSyntaxError,
    InList,
    IsNull,
    Literal,
    Param,
    Qualified,
    Unary,
    parse,
    to_json,
    to_text,
)
from pipespec.compiler.functions import AGGREGATE, CHECKS, SCALAR
from pipespec.compiler.ir import IRError
from pipespec.compiler.irjson import read_expr

FUNCTIONS = {*SCALAR, *AGGREGATE, *CHECKS}

# --- helpers -------------------------------------------------------------------------


def col(name):
    return Column(name=name)


def lit(v):
    return Literal(value=v)


def bin_(op, a, b):
    return Binary(op=op, left=a, right=b)


def ir_shaped(e) -> bool:
    """Whether an IR can hold the (parsed, untyped) expression: known functions, `production.`
    qualifiers, 64-bit integers."""
    return all((not isinstance(n, Call) or n.func in FUNCTIONS)
               and (not isinstance(n, Qualified) or n.qualifier == "production")
               and (not _is_number(n) or isinstance(n.value, float) or -2**63 <= n.value < 2**63)
               for n in E.walk(e))


def json_round_trips(e) -> None:
    """An expression an IR can hold reads back equal; any other is an IRError, never a crash."""
    if ir_shaped(e):
        assert read_expr(to_json(e)) == e
    else:
        with pytest.raises(IRError):
            read_expr(to_json(e))


def err(text: str) -> ExprSyntaxError:
    with pytest.raises(ExprSyntaxError) as info:
        parse(text)
    return info.value


# --- parsing and precedence (Python's) ------------------------------------------------


@pytest.mark.parametrize("text, expected", [
    ("1 + 2 * 3", bin_("+", lit(1), bin_("*", lit(2), lit(3)))),
    ("(1 + 2) * 3", bin_("*", bin_("+", lit(1), lit(2)), lit(3))),
    ("a - b - c", bin_("-", bin_("-", col("a"), col("b")), col("c"))),  # left-assoc
    ("a / b * c", bin_("*", bin_("/", col("a"), col("b")), col("c"))),
    ("a % b + c", bin_("+", bin_("%", col("a"), col("b")), col("c"))),
    ("-a * b", bin_("*", Unary(op="-", operand=col("a")), col("b"))),
    ("a - -b", bin_("-", col("a"), Unary(op="-", operand=col("b")))),
    ("a or b and c", bin_("or", col("a"), bin_("and", col("b"), col("c")))),
    ("a and b or c", bin_("or", bin_("and", col("a"), col("b")), col("c"))),
    ("not a and b", bin_("and", Unary(op="not", operand=col("a")), col("b"))),
    ("not a == b", Unary(op="not", operand=bin_("==", col("a"), col("b")))),
    ("a + 1 > b * 2", bin_(">", bin_("+", col("a"), lit(1)), bin_("*", col("b"), lit(2)))),
    ("a > 1 and b < 2 or c != 3",
     bin_("or", bin_("and", bin_(">", col("a"), lit(1)), bin_("<", col("b"), lit(2))),
          bin_("!=", col("c"), lit(3)))),
    ("x in [1, 2, 3]", InList(operand=col("x"), items=(lit(1), lit(2), lit(3)))),
    ("x not in ['a', \"b\",]", InList(operand=col("x"), items=(lit("a"), lit("b")), negated=True)),
    ("x + 1 in [2]", InList(operand=bin_("+", col("x"), lit(1)), items=(lit(2),))),
    ("x is null", IsNull(operand=col("x"))),
    ("x is not null and y", bin_("and", IsNull(operand=col("x"), negated=True), col("y"))),
    ("not x is null", Unary(op="not", operand=IsNull(operand=col("x")))),
    ("f()", Call(func="f", args=())),
    ("coalesce(a, b + 1, 2.5)", Call(func="coalesce", args=(col("a"), bin_("+", col("b"), lit(1)), lit(2.5)))),
    ("true and false or null", bin_("or", bin_("and", lit(True), lit(False)), lit(None))),
    ("1.5e3", lit(1500.0)),
    (".5", lit(0.5)),
    ("'it\\'s'", lit("it's")),
    ('"tab\\there"', lit("tab\there")),
    ("production.roc_auc", Qualified(qualifier="production", name="roc_auc")),
])
def test_parse_structure(text, expected):
    assert parse(text) == expected


def test_parsed_nodes_are_untyped_and_carry_spans():
    e = parse("a + bb * 3")
    assert e.type is None
    assert (e.start, e.end) == (0, 10)
    assert (e.right.left.start, e.right.left.end) == (4, 6)


@pytest.mark.parametrize("text", ["truex", "notice", "in_stock", "nullable", "is_active", "order",
                                  "android", "island", "falsey", "params_x"])
def test_keyword_prefixes_are_column_names(text):
    assert parse(text) == col(text)


@pytest.mark.parametrize("text, name", [("`my col`", "my col"), ("`a.b`", "a.b"), ("`and`", "and"),
                                        ("`2x`", "2x"), ("`params`", "params")])
def test_backquoted_names(text, name):
    assert parse(text) == col(name)
    assert parse(f"{text} + 1") == bin_("+", col(name), lit(1))


@pytest.mark.parametrize("text, value", [("-1", -1), ("- 2.5", -2.5), ("-(3)", -3), ("--4", 4), ("-1e3", -1000.0)])
def test_negative_numbers_are_literals(text, value):
    e = parse(text)
    assert e == lit(value) and type(e.value) is type(value)
    assert parse(to_text(e)) == e


def test_minus_on_non_numbers_stays_unary():
    assert parse("-a") == Unary(op="-", operand=col("a"))
    assert parse("2 * -x") == bin_("*", lit(2), Unary(op="-", operand=col("x")))
    assert parse("2 * -3") == bin_("*", lit(2), lit(-3))
    assert parse("a - -1") == bin_("-", col("a"), lit(-1))


def test_param_references_both_forms():
    assert parse("${params.x}") == Param(name="x")
    assert parse("params.x") == Param(name="x")
    assert parse("a > ${params.min_tenure}") == bin_(">", col("a"), Param(name="min_tenure"))
    assert parse("a > params.min_tenure") == parse("a > ${params.min_tenure}")


# --- canonical text -------------------------------------------------------------------


@pytest.mark.parametrize("text, canonical", [
    ("(a+b)*c", "(a + b) * c"),
    ("a+(b*c)", "a + b * c"),
    ("a-(b-c)", "a - (b - c)"),
    ("(a-b)-c", "a - b - c"),
    ("not(a and b)", "not (a and b)"),
    ("(a < b) == c", "(a < b) == c"),
    ("-(a+b)", "-(a + b)"),
    ("${params.k}", "params.k"),
    ("`my col`", "`my col`"),
    ("x not in [1,2,]", "x not in [1, 2]"),
    ("'single'", '"single"'),
    ("(x is null) is not null", "(x is null) is not null"),
])
def test_to_text_is_canonical(text, canonical):
    assert to_text(parse(text)) == canonical
    assert parse(canonical) == parse(text)


@pytest.mark.parametrize("text", [
    "a + b * c - d / e % f", "not (a or b) and c", "a == b or not c != d", "-(-x)", "+x - -y",
    "f(g(h(1)), 2)", "x in [1, 2.5, 'x', true, null, params.p]",
    "`weird name` >= production.auc - 0.01", "(a and b) == (c or d)", "((1))", "a is not null or b is null",
    "'quote\" inside'", "'back\\\\slash'", "\"\\u00e9t\\u00e9\"",
])
def test_round_trip_examples(text):
    e = parse(text)
    assert parse(to_text(e)) == e
    json_round_trips(e)


# --- friendly errors -------------------------------------------------------------------


def test_single_equals_hints_double_equals():
    e = err("a = 1")
    assert e.code == "E0201"
    assert (e.start, e.end) == (2, 3)
    assert "==" in e.hint


@pytest.mark.parametrize("text, word, pos", [("a && b", "&&", 2), ("a || b", "||", 2)])
def test_c_style_logic_operators(text, word, pos):
    e = err(text)
    assert e.code == "E0201"
    assert word in e.message
    assert (e.start, e.end) == (pos, pos + 2)
    assert ("and" if word == "&&" else "or") in e.hint


@pytest.mark.parametrize("text, pos", [("a < b < c", 6), ("a == b == c", 7), ("1 <= x > 2", 7)])
def test_chained_comparison(text, pos):
    e = err(text)
    assert e.code == "E0201"
    assert e.start == pos
    assert "chain" in e.hint


@pytest.mark.parametrize("text, pos", [("'abc", 0), ('x == "abc', 5), ("`col", 0)])
def test_unclosed_string_or_name(text, pos):
    e = err(text)
    assert e.code == "E0201"
    assert e.start == pos
    assert "closing" in e.hint


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_expression(text):
    e = err(text)
    assert e.code == "E0201"
    assert "empty" in e.message


@pytest.mark.parametrize("text", ["a +", "(a", "f(a,", "not", "x in [1,"])
def test_incomplete_expression(text):
    e = err(text)
    assert e.code == "E0201"
    assert "end of expression" in e.message
    assert 0 <= e.start < e.end <= max(len(text), 1)


def test_missing_operator_between_operands():
    e = err("a b")
    assert (e.start, e.end) == (2, 3)
    assert "operator" in e.hint


def test_non_string_input():
    assert err(None).code == "E0201"  # type: ignore[arg-type]
    assert err(5).code == "E0201"  # type: ignore[arg-type]


_INTERNAL_TOKEN = re.compile(r"'(neg|pos|param_ref|quoted_name|comp_op|add_op|mul_op|lpar|rpar)'"
                             r"|__ANON|\$END")


@pytest.mark.parametrize("text", ["-2**2", "a.b.c", "1 +* 2", "x in (1)", "f(,)", "a ==", "* a"])
def test_error_hints_never_leak_grammar_token_names(text):
    e = err(text)
    assert e.code == "E0201"
    shown = f"{e.message} {e.hint or ''}"
    assert not _INTERNAL_TOKEN.search(shown), shown


# --- limits ------------------------------------------------------------------------------


@pytest.mark.parametrize("text", [
    "1+" * 5000 + "1",
    "(" * 5000 + "1" + ")" * 5000,
    "not " * 5000 + "x",
    "f(" * 3000 + "x" + ")" * 3000,
    "-" * 20000 + "1",
    "x" * 10_001,
    # within the length limit: only the depth limit can stop these
    "1+" * 4000 + "1",
    "not " * 2400 + "x",
    "f(" * 2000 + "x" + ")" * 2000,
    "-" * 9000 + "x",
    "[" * 5000,
], ids=lambda t: f"{t[:6]!r}x{len(t)}")
def test_pathological_input_gives_e0005_not_recursion_error(text):
    t0 = time.perf_counter()
    e = err(text)
    assert time.perf_counter() - t0 < 2.0
    if text.startswith("["):
        assert e.code == "E0201"  # a plain syntax error, reported quickly
    else:
        assert e.code == "E0005", (e.code, e.message)


def test_redundant_parentheses_within_the_length_limit_do_not_crash():
    # parentheses add no AST depth; the parser is iterative, so this must not recurse
    text = "(" * 4000 + "1" + ")" * 4000
    try:
        assert parse(text) == lit(1)
    except ExprSyntaxError as exc:
        assert exc.code == "E0005"


def test_depth_limit_boundary():
    ok = "(" * 150 + "1" + ")" * 150
    assert parse(ok) == lit(1)
    assert parse("1+" * 150 + "1").depth <= E.MAX_EXPR_DEPTH
    assert err("1+" * (E.MAX_EXPR_DEPTH + 5) + "1").code == "E0005"


def test_length_limit_boundary():
    text = "a" * E.MAX_EXPR_CHARS
    assert parse(text) == col(text)
    assert err(text + "a").code == "E0005"


@pytest.mark.parametrize("digits", [E.MAX_INT_DIGITS + 1, 4301, 9000])
def test_a_long_integer_literal_is_refused_at_its_token(digits):
    text = "age >= " + "9" * digits
    e = err(text)
    assert (e.code, e.start, e.end) == ("E0211", 7, len(text)) and "out of range" in e.message


def test_integer_literals_up_to_the_digit_limit_parse_exactly():
    assert parse("9" * E.MAX_INT_DIGITS) == lit(int("9" * E.MAX_INT_DIGITS))
    assert parse("-9223372036854775808") == lit(-2**63)


def test_walk_and_columns():
    e = parse("b + a * coalesce(b, c) > 0 and d is null")
    assert E.columns(e) == ["b", "a", "c", "d"]
    assert len(list(E.walk(e))) == 12
    assert isinstance(next(E.walk(e)), Binary)  # parents first


# --- JSON ---------------------------------------------------------------------------------


def test_json_shape():
    data = to_json(parse("x in [1, 'a']"))
    assert data == {"node": "InList", "type": None, "negated": False,
                    "operand": {"node": "Column", "type": None, "name": "x"},
                    "items": [{"node": "Literal", "type": None, "value": 1},
                              {"node": "Literal", "type": None, "value": "a"}]}
    assert read_expr(data) == parse("x in [1, 'a']")


def test_json_keeps_types():
    e = Binary(op="+", left=Column(name="a", type="int64"), right=Literal(value=1, type="int64"), type="int64")
    back = read_expr(to_json(e))
    assert back == e and back.type == "int64" and back.left.type == "int64"


@pytest.mark.parametrize("data, path, words", [
    ({"node": "Bogus"}, "node", "unknown expression node"),
    ({"name": "x"}, "node", "unknown expression node"),
    ({"node": "Column", "type": None}, "", "missing key 'name'"),
    ({"node": "Column", "type": None, "name": 5}, "name", "expected a string"),
    ({"node": "Unary", "op": "-", "type": None, "operand": []}, "operand", "expression object"),
    ({"node": "Call", "func": "abs", "type": None, "args": {}}, "args", "an array"),
    ([], "", "expected an expression object"),
], ids=["unknown-node", "no-node", "missing-key", "name-type", "operand", "args", "list"])
def test_reading_malformed_expression_json_is_an_ir_error(data, path, words):
    with pytest.raises(IRError) as caught:
        read_expr(data)
    assert caught.value.path == path and words in caught.value.message


# --- property tests -----------------------------------------------------------------------

PROPS = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

EXPR_ALPHABET = list("abcxyz_019 .,()[]`'\"\\+-*/%<>=!&|$@{}#\n\t") + [
    "and ", "or ", "not ", " in ", " is ", "null", "true", "false", "params.", "${params.x}", "==",
    "!=", "<=", ">=", "e5", "production."]


def _parse_only_syntax_errors(text):
    try:
        result = parse(text)
    except ExprSyntaxError as exc:
        assert exc.code in ("E0201", "E0005")
        assert isinstance(exc.message, str) and exc.message
        assert 0 <= exc.start <= exc.end
        return
    assert isinstance(result, E.Expr)
    # anything that parses also survives the canonical round trips
    assert parse(to_text(result)) == result
    json_round_trips(result)


@PROPS
@given(st.text(max_size=200))
def test_random_text_only_parses_or_raises_syntax_error(text):
    _parse_only_syntax_errors(text)


@PROPS
@given(st.lists(st.sampled_from(EXPR_ALPHABET), max_size=40).map("".join))
def test_expression_like_text_only_parses_or_raises_syntax_error(text):
    _parse_only_syntax_errors(text)


KEYWORDS = {"and", "or", "not", "in", "is", "true", "false", "null", "params"}
names = st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True).filter(lambda s: s not in KEYWORDS)
odd_names = st.text(st.characters(blacklist_characters="`\n\r", blacklist_categories=("Cs",)),
                    min_size=1, max_size=8)
numbers = st.one_of(st.integers(min_value=-10**20, max_value=10**20),
                    st.floats(allow_nan=False, allow_infinity=False))
literals = st.one_of(
    numbers,
    st.booleans(),
    st.none(),
    st.text(st.characters(blacklist_categories=("Cs",)), max_size=12),
).map(lit)
leaves = st.one_of(
    literals,
    st.one_of(names, odd_names).map(col),
    names.map(lambda n: Param(name=n)),
    names.map(lambda n: Qualified(qualifier="production", name=n)),
)
BIN_OPS = ["+", "-", "*", "/", "%", "==", "!=", "<", "<=", ">", ">=", "and", "or"]


def _is_number(e):
    return isinstance(e, Literal) and isinstance(e.value, (int, float)) and not isinstance(e.value, bool)


def _extend(children):
    return st.one_of(
        st.builds(lambda op, a, b: Binary(op=op, left=a, right=b), st.sampled_from(BIN_OPS), children, children),
        # `-<number>` is read as a negative literal, so `-` never wraps a numeric literal
        st.builds(lambda op, a: Unary(op=op, operand=a), st.sampled_from(["-", "+", "not"]),
                  children.filter(lambda a: not _is_number(a))),
        st.builds(lambda f, args: Call(func=f, args=tuple(args)),
                  st.one_of(st.sampled_from(sorted(FUNCTIONS)), names), st.lists(children, max_size=3)),
        st.builds(lambda a, items, neg: InList(operand=a, items=tuple(items), negated=neg),
                  children, st.lists(children, max_size=3), st.booleans()),
        st.builds(lambda a, neg: IsNull(operand=a, negated=neg), children, st.booleans()),
    )


expressions = st.recursive(leaves, _extend, max_leaves=25)


@PROPS
@given(expressions)
def test_generated_ast_round_trips_through_canonical_text(e):
    text = to_text(e)
    assert parse(text) == e, text
    assert to_text(parse(text)) == text


@PROPS
@given(expressions)
def test_generated_ast_round_trips_through_json(e):
    json_round_trips(e)


@pytest.mark.parametrize("value", ["\b", "\f", "a\bb", "\x1b[0m", "\x7f", "\u2028", "\x00", "\\", "\"'", "\n\r\t"])
def test_string_literals_with_control_characters_round_trip(value):
    e = lit(value)
    assert parse(to_text(e)) == e, to_text(e)


@pytest.mark.parametrize("value", [0.1, 1e16, 1e-7, 123456789.125, 5e-324, 1.7976931348623157e308, -0.5, -1e-300])
def test_float_literals_round_trip(value):
    back = parse(to_text(lit(value)))
    assert isinstance(back.value, float) and back.value == value and not math.isnan(back.value)
