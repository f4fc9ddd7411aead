"""Reading an IR document back: `read_graph` accepts what `Graph.to_json` writes and nothing else.

Values are decoded by irjson.py's typed readers; this module checks the document and the graph
against SPEC.md §15: the schema version, names against the compiler's own patterns (`ir.NAME_RE`,
`ir.PIPELINE_RE`, since the pipeline name and node ids become store paths and cache keys), ids
`<prefix>.<name>` and unique, each input reading an earlier node with that node's output type, the
roles of each kind, edges as the inputs imply, and the functions each expression calls allowed in
its place.  Anything else raises `ir.IRError` naming the JSON path of the offending value.  A
node's fingerprint is checked on its raw JSON: decoding is exact (no missing, unknown or coerced
keys), so that is what `fingerprint(node)` would hash.
"""

from __future__ import annotations

import json
import re
from typing import Any, Iterator

from . import expr as E
from . import ir
from .functions import AGGREGATE, CHECKS, SCALAR
from .irjson import _at, _Bad, _expected, _fields, _keys, _name, _optional, _scalar, _str, _unicode

_PIPELINE = re.compile(ir.PIPELINE_RE)


# --- the document ------------------------------------------------------------------------------

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
    if node.id != ir.node_id(kind, node.name):
        raise _Bad(f"{node.id!r} is not the id of {kind} {node.name!r} "
                   f"({ir.node_id(kind, node.name)})", "id")
    for j, (param, _) in enumerate(node.params):
        _at(_name, param, "params", j, 0)
    if kind == "Rollout" and node.model != node.name:
        raise _Bad(f"a rollout's model is its name, {node.name!r}", "model")
    if type(node.output) is not ir.OUTPUT[kind]:
        raise _Bad(f"a {kind}'s output is a {ir.OUTPUT[kind].__name__}", "output")
    _functions(node)
    _fingerprint(raw, node)
    return node


_ROW, _AGGREGATE, _CHECK = frozenset(SCALAR), frozenset({*SCALAR, *AGGREGATE}), frozenset({*SCALAR, *CHECKS})


def _functions(node: ir.Node) -> None:
    """Each expression calls only the functions of its place, as the type checker allowed them:
    aggregates under `aggregate:`, data checks in table gates, scalar functions anywhere."""
    for path, expr, allowed, where in _places(node):
        for sub, call in _calls(expr):
            if call.func not in allowed:
                raise _Bad(f"{call.func}() is not allowed in {where}", *path, *sub, "func")


def _places(node: ir.Node) -> Iterator[tuple[tuple, E.Expr, frozenset, str]]:
    """(JSON path, expression, functions allowed, what the place is) of a node's expressions."""
    for j, op in enumerate(getattr(node, "ops", ())):
        if isinstance(op, ir.Aggregate):
            for k, (_, e) in enumerate(op.aggregates):
                yield ("ops", j, "aggregates", k, 1), e, _AGGREGATE, "an aggregate"
        elif isinstance(op, (ir.Filter, ir.Derive)):
            field = "predicate" if isinstance(op, ir.Filter) else "expr"
            yield ("ops", j, field), getattr(op, field), _ROW, f"a {type(op).__name__}"
    if isinstance(node, ir.Gate):
        allowed = _CHECK if node.subject == "table" else _ROW
        for k, check in enumerate(node.checks):
            yield ("checks", k, "expr"), check.expr, allowed, f"a {node.subject} gate"
    if isinstance(node, ir.Rollout) and node.rollback_if is not None:
        yield ("rollback_if", "expr"), node.rollback_if.expr, _ROW, "rollback_if"


def _calls(expr: E.Expr) -> Iterator[tuple[tuple, E.Call]]:
    """(path inside the expression, call) of every call, parents first."""
    todo: list[tuple[E.Expr, tuple]] = [(expr, ())]
    while todo:
        e, path = todo.pop()
        if isinstance(e, E.Call):
            yield path, e
        for name in reversed(E.CHILD_FIELDS.get(type(e), ())):
            value = getattr(e, name)
            if isinstance(value, tuple):
                todo.extend((x, path + (name, i)) for i, x in reversed(list(enumerate(value))))
            else:
                todo.append((value, path + (name,)))


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
    if role == "gate" and port.node != ir.node_id("Gate", port.role[5:]):
        raise _Bad(f"role {port.role!r} reads {port.node!r}, not {ir.node_id('Gate', port.role[5:])}",
                   "role")
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
