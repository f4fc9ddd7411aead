"""Column-level lineage, read from the IR alone (no data, no runtime).

A column's lineage is the set of (source node id, source column) pairs its values are
computed from, plus, separately, the source columns that decide which rows exist at all
(`where:` predicates on the way).  Join keys come from both sides; a suffixed join column
from its own side; an aggregate from the columns of its expression (`count()`, which reads
none, from the group keys); a derived column from the columns of its expression, as they
were just before it.

The walk is iterative (no recursion limit on long feature chains) and memoized per
(node, column) within one `Tracer`.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import expr as E
from . import ir

Ref = tuple[str, str]  # (node id, column)


@dataclass(frozen=True, slots=True)
class Lineage:
    """Source columns a column's values derive from, and those that filter its rows."""

    columns: frozenset[Ref] = frozenset()
    filters: frozenset[Ref] = frozenset()


@dataclass(frozen=True, slots=True)
class _Deps:
    """What one (node, column) reads directly upstream: values, and row filters."""

    values: tuple[Ref, ...]
    filters: tuple[Ref, ...]


class Tracer:
    """Lineage of any column of one graph, memoized across calls."""

    def __init__(self, graph: ir.Graph):
        self.graph = graph
        self.memo: dict[Ref, Lineage] = {}

    def lineage(self, node_id: str, column: str) -> Lineage:
        _check_column(self.graph, node_id, column)
        stack, deps = [(node_id, column)], {}
        while stack:
            ref = stack[-1]
            if ref in self.memo:
                stack.pop()
                continue
            if ref not in deps:
                deps[ref] = direct = _direct(self.graph, *ref)
                if direct is not None:
                    stack.extend(d for d in (*direct.values, *direct.filters) if d not in self.memo)
                continue
            stack.pop()
            self.memo[ref] = self._combine(ref, deps[ref])
        return self.memo[(node_id, column)]

    def _combine(self, ref: Ref, deps: _Deps | None) -> Lineage:
        if deps is None:  # a source column
            return Lineage(columns=frozenset({ref}))
        columns, filters = set(), set()
        for d in deps.values:
            columns |= self.memo[d].columns
            filters |= self.memo[d].filters
        for d in deps.filters:
            filters |= self.memo[d].columns | self.memo[d].filters
        return Lineage(frozenset(columns), frozenset(filters))


def column_lineage(graph: ir.Graph, node_id: str, column: str) -> Lineage:
    """The lineage of `column` of the table produced by `node_id` (a Source or Transform)."""
    return Tracer(graph).lineage(node_id, column)


def model_lineage(graph: ir.Graph, train_node_id: str) -> dict[str, Lineage]:
    """feature (and target) -> its lineage, for a Train node."""
    train = graph.node(train_node_id)
    if not isinstance(train, ir.Train):
        raise ValueError(f"{train_node_id} is a {train.kind}, not a Train node")
    table = next(i.node for i in train.inputs if i.role == "table")
    tracer = Tracer(graph)
    return {c: tracer.lineage(table, c) for c in (*train.features, train.target)}


def _check_column(graph: ir.Graph, node_id: str, column: str) -> None:
    node = graph.node(node_id)
    if not isinstance(node, (ir.Source, ir.Transform)):
        raise ValueError(f"{node_id} is a {node.kind}; lineage is for table nodes (Source, Transform)")
    if column not in node.output.column_types():
        raise ValueError(f"{node_id} has no column '{column}'")


def _direct(graph: ir.Graph, node_id: str, column: str) -> _Deps | None:
    """Walk the node's ops backwards from `column`; None for a source column."""
    node = graph.node(node_id)
    if isinstance(node, ir.Source):
        return None
    values, filters = {column}, set()
    for op in reversed(node.ops):
        if isinstance(op, ir.Join):
            return _through_join(graph, node, op, values, filters)
        if isinstance(op, ir.Filter):
            filters |= set(E.columns(op.predicate))
        else:
            values, filters = _back(op, values), _back(op, filters)
    (port,) = node.inputs
    return _Deps(tuple((port.node, c) for c in sorted(values)),
                 tuple((port.node, c) for c in sorted(filters)))


def _back(op, names: set[str]) -> set[str]:
    """The columns before `op` that the given columns after it are computed from."""
    if isinstance(op, ir.Derive) and op.column in names:
        return (names - {op.column}) | set(E.columns(op.expr))
    if isinstance(op, ir.Aggregate):
        exprs = dict(op.aggregates)
        out = set()
        for name in names:
            # `count()` reads no column: it counts the rows of each group, so the group keys
            out |= (set(E.columns(exprs[name])) or set(op.keys)) if name in exprs else {name}
        return out
    return names  # Select, or a Derive of another column


def _through_join(graph: ir.Graph, node: ir.Transform, op: ir.Join, values: set, filters: set) -> _Deps:
    sides = {p.role: p for p in node.inputs}
    origin = _join_origins(op, sides["left"].type, sides["right"].type)

    def refs(names: set[str]) -> tuple[Ref, ...]:
        found = {(sides[role].node, col) for name in names for role, col in origin[name]}
        return tuple(sorted(found))

    return _Deps(refs(values), refs(filters))


def _join_origins(op: ir.Join, left: ir.TableType, right: ir.TableType) -> dict[str, list[tuple[str, str]]]:
    """Output column of a join -> [(side, input column)]: keys from both sides."""
    keys = set(op.on)
    left_cols = {c for c, _ in left.columns}
    clashes = {c for c, _ in right.columns if c not in keys and c in left_cols}
    ls, rs = op.suffixes or ("", "")
    origin = {k: [("left", k), ("right", k)] for k in op.on}
    for side, table, suffix in (("left", left, ls), ("right", right, rs)):
        for c, _ in table.columns:
            if c not in keys:
                origin[c + suffix if c in clashes else c] = [(side, c)]
    return origin
