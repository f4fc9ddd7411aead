"""Reading IR JSON back: a typed decoder that accepts what `Graph.to_json` writes and nothing else.

`pipespec step`, the Airflow and Ray workers and the compile cache run whatever IR file they are
given, and its pipeline name and node ids become store paths and cache keys.  So every value is
checked against its dataclass field's declared type while it is decoded (readers built once from
the type hints), every name against the compiler's own patterns (`ir.NAME_RE`, `ir.PIPELINE_RE`),
and the graph against SPEC.md §15: ids `<prefix>.<name>` and unique, each input reading an earlier
node with that node's output type, the roles of each kind, edges as the inputs imply.  Anything
else raises `ir.IRError` naming the JSON path of the offending value, e.g.
`nodes[3].inputs[0].node`.  A node's fingerprint is checked on its raw JSON: decoding is exact
(no missing, unknown or coerced keys), so that is what `fingerprint(node)` would hash.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import sys
import types
import typing
from typing import Any, Callable, Union

from . import expr as E
from . import ir
from .diagnostics import Span

Reader = Callable[[Any], Any]

_NAME = re.compile(ir.NAME_RE)
_PIPELINE = re.compile(ir.PIPELINE_RE)
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
    if type(v) is not float and (type(v) is not int or not -_INT64 <= v < _INT64):
        raise _expected("a number", v)
    return v


def _bool(v: Any) -> bool:
    if type(v) is not bool:
        raise _expected("a boolean", v)
    return v


def _scalar(v: Any) -> Any:
    if type(v) in (int, float, bool, type(None)):
        return v
    if type(v) is str:
        return _str(v)
    raise _expected("a string, number, boolean or null", v)


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


def _str_pair(v: Any) -> tuple[str, str]:
    """(column, type) pairs are most of an IR: one fast path for the common case."""
    if type(v) is list and len(v) == 2:
        a, b = v
        if type(a) is str and type(b) is str and a.isascii() and b.isascii():
            return (a, b)
    return _slow_pair(v)


_slow_pair = _fixed((_str, _str))


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
    if hint is Span:
        return _fields(Span, None)
    if hint is E.Expr:
        return _expr
    if hint in ir._CLASS_SET:
        return _tagged((hint,))
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        if args == (tuple[str, str], ...):
            return _tuple_of(_str_pair)
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


# --- the graph ------------------------------------------------------------------------------

_GRAPH_KEYS = frozenset({"schema_version", "pipeline", "description", "params", "targets",
                         "source_file", "nodes", "edges"})
_NODES = {kind: _fields(ir._CLASSES[kind], "kind", frozenset({"fingerprint"}))
          for kind in ir.NODE_KINDS}


def read_graph(text: str | bytes) -> ir.Graph:
    """The graph in `text` (IR JSON); IRError naming the JSON path of whatever is wrong."""
    with ir.gc_paused():  # decoding allocates millions of objects and no cycles
        data = _load(text)
        try:
            return _graph(data)
        except _Bad as exc:
            raise exc.error() from None


def _load(text: str | bytes) -> Any:
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ir.IRError(f"not UTF-8 text (byte {exc.start})") from None
    if not isinstance(text, str):
        raise ir.IRError(f"expected JSON text, got {type(text).__name__}")
    try:
        return json.loads(text, parse_constant=_no_constant)
    except RecursionError:
        raise ir.IRError("not an IR: JSON nested too deeply") from None
    except ValueError as exc:
        raise ir.IRError(f"not JSON: {exc}") from None


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _graph(data: Any) -> ir.Graph:
    if type(data) is not dict:
        raise _expected("an IR object", data)
    version = data.get("schema_version")
    if type(version) is not int or version != ir.SCHEMA_VERSION:
        raise _Bad(f"IR schema_version {json.dumps(version)[:40]} is not supported "
                   f"(this pipespec reads {ir.SCHEMA_VERSION})", "schema_version")
    if data.keys() != _GRAPH_KEYS:
        raise _keys(data, _GRAPH_KEYS)
    nodes = _at(_nodes, data["nodes"], "nodes")
    graph = ir.Graph(pipeline=_at(_pipeline, data["pipeline"], "pipeline"), nodes=nodes,
                     description=_at(_optional(_str), data["description"], "description"),
                     params=tuple(sorted(_at(_param_dict, data["params"], "params"))),
                     targets=_at(_targets, data["targets"], "targets"),
                     source_file=_at(_optional(_str), data["source_file"], "source_file"))
    _at(lambda v: _edges(v, graph), data["edges"], "edges")
    return graph


def _pipeline(v: Any) -> str:
    if not _PIPELINE.fullmatch(_str(v)):
        raise _Bad(f"{v!r} is not a pipeline name ({ir.PIPELINE_RE})")
    return v


def _param_dict(v: Any) -> tuple:
    if type(v) is not dict:
        raise _expected("an object", v)
    return tuple((_at(_name, k, k), _at(_scalar, x, k)) for k, x in v.items())


def _targets(v: Any) -> str:
    if type(v) is not dict:
        raise _expected("an object", v)
    text = ir.canonical(v)
    _unicode(text)
    return text


def _nodes(v: Any) -> tuple[ir.Node, ...]:
    if type(v) is not list:
        raise _expected("an array of nodes", v)
    nodes = tuple(_at(_node, raw, i) for i, raw in enumerate(v))
    index: dict[str, int] = {}
    for i, node in enumerate(nodes):
        if node.id in index:
            raise _Bad(f"duplicate node id {node.id!r} (also nodes[{index[node.id]}])", i, "id")
        index[node.id] = i
    for i, node in enumerate(nodes):
        _at(lambda n: _inputs(n, nodes, index, i), node, i)
    return nodes


def _node(raw: Any) -> ir.Node:
    if type(raw) is not dict:
        raise _expected("a node object", raw)
    kind = raw.get("kind")
    read = _NODES.get(kind) if type(kind) is str else None
    if read is None:
        kinds = ", ".join(ir.NODE_KINDS)
        raise _Bad(f"expected a node kind ({kinds}), got {json.dumps(kind)[:40]}", "kind")
    node = read(raw)
    _at(_name, node.name, "name")
    if node.id != f"{ir.ID_PREFIX[kind]}.{node.name}":
        raise _Bad(f"{node.id!r} is not the id of {kind} {node.name!r} "
                   f"({ir.ID_PREFIX[kind]}.{node.name})", "id")
    for j, (param, _) in enumerate(node.params):
        _at(_name, param, "params", j, 0)
    if kind == "Rollout" and node.model != node.name:
        raise _Bad(f"a rollout's model is its name, {node.name!r}", "model")
    if type(node.output) is not ir.OUTPUT[kind]:
        raise _Bad(f"a {kind}'s output is a {ir.OUTPUT[kind].__name__}", "output")
    _fingerprint(raw, node)
    return node


def _fingerprint(raw: dict, node: ir.Node) -> None:
    if type(raw["fingerprint"]) is not str or raw["fingerprint"] != ir._fingerprint_encoded(raw):
        raise _Bad(f"does not match the definition of node {node.id} (edited by hand, or "
                   "written by another pipespec version)", "fingerprint")


def _inputs(node: ir.Node, nodes: tuple[ir.Node, ...], index: dict[str, int], i: int) -> None:
    """The node reads earlier nodes, in the roles of its kind, with their output types."""
    gates = tuple(p for p in node.inputs if p.role.startswith("gate:") and node.kind == "Rollout")
    roles = tuple(sorted(p.role for p in node.inputs if p not in gates))
    if roles not in ir.INPUT_ROLES[node.kind]:
        allowed = " or ".join(repr(list(r)) for r in ir.INPUT_ROLES[node.kind])
        raise _Bad(f"a {node.kind} reads the roles {allowed}, not {list(roles)}", "inputs")
    if node.kind == "Gate" and (node.subject == "model") != (roles == ("metrics",)):
        raise _Bad(f"a gate on a {node.subject!r} does not read {roles[0]!r}", "subject")
    for j, port in enumerate(node.inputs):
        _at(lambda p: _input(p, nodes, index, i), port, "inputs", j)


def _input(port: ir.Input, nodes: tuple[ir.Node, ...], index: dict[str, int], i: int) -> None:
    k = index.get(port.node)
    if k is None:
        raise _Bad(f"unknown node {port.node!r}", "node")
    if k >= i:
        loop = _cycle(nodes, index, i)
        raise _Bad(f"the inputs form a cycle: {' <- '.join(loop)}" if loop else
                   f"{port.node!r} comes after the node reading it (nodes are in topological "
                   "order)",
                   "node")
    role = port.role.partition(":")[0]
    if role == "gate" and port.node != f"gate.{port.role[5:]}":
        raise _Bad(f"role {port.role!r} reads {port.node!r}, not gate.{port.role[5:]}", "role")
    if type(port.type) is not ir.ROLE_TYPE[role] or port.type != nodes[k].output:
        raise _Bad(f"is not the output type of {port.node}", "type")


def _cycle(nodes: tuple[ir.Node, ...], index: dict[str, int], start: int) -> list[str] | None:
    """Ids on a loop of inputs through nodes[start] (first and last), or None."""
    todo, seen = [(start, [nodes[start].id])], {start}
    while todo:
        k, path = todo.pop()
        for port in nodes[k].inputs:
            m = index.get(port.node)
            if m == start:
                return path + [nodes[start].id]
            if m is not None and m not in seen:
                seen.add(m)
                todo.append((m, path + [port.node]))
    return None


def _edges(v: Any, graph: ir.Graph) -> None:
    """`edges` is derived from the inputs: [from, to, role], sorted."""
    expected = [list(e) for e in graph.edges()]
    if type(v) is not list:
        raise _expected("an array of edges", v)
    for i, (got, want) in enumerate(zip(v, expected)):
        if got != want:
            raise _Bad(f"expected the edge {json.dumps(want)} (from the nodes' inputs), got "
                       f"{json.dumps(got)[:80]}", i)
    if len(v) != len(expected):
        raise _Bad(f"the nodes' inputs make {len(expected)} edges, not {len(v)}")
