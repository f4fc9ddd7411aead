"""Lowering: validated spec -> IR graph.  Resolves references, finds cycles,
type-checks every table and expression, and builds the nodes.

Entry points: `compile_file` and `compile_text`, which never raise for user
mistakes: they return a `Result` with the IR (or None) and the diagnostics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import networkx as nx

from . import expr as E
from . import ir
from .ir import gc_paused
from . import loader, params as P
from . import types as T
from .diagnostics import Diagnostic, Diagnostics, suggest
from .infer import InferError, compare, infer
from .spec import parse_memory
from .tables import lower_feature
from .typecheck import Checker, Scope
from .validate import Validated, validate

Schema = tuple[tuple[str, str], ...]


@dataclass
class Result:
    """What compiling a spec gives: the IR when there are no errors, and all diagnostics."""

    ir: ir.Graph | None
    diagnostics: list[Diagnostic]
    file: str
    text: str | None = None
    tables: dict[str, Schema] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.ir is not None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]


def compile_file(path: str, overrides: list[str] = (), display: str | None = None) -> Result:
    diags = Diagnostics()
    shown = display or path
    text = loader.read_source(path, diags)
    if text is None:
        return Result(None, diags.sorted(), shown)
    return compile_text(text, shown, overrides, base_dir=os.path.dirname(os.path.abspath(path)))


def compile_text(text: str, file: str = "<spec>", overrides: list[str] = (), base_dir: str = ".") -> Result:
    with gc_paused():
        return _compile_text(text, file, overrides, base_dir)


def _compile_text(text: str, file: str, overrides, base_dir: str) -> Result:
    diags = Diagnostics()
    doc = loader.load_text(text, file, diags)
    if doc is None:
        return Result(None, diags.sorted(), file, text)
    params = P.resolve(doc, list(overrides), diags)
    data, exact = P.substitute(doc, params, diags)
    validated = validate(doc, data, exact, diags, params)
    lowering = Lowering(doc, data, validated, params, base_dir, diags, exact)
    graph = lowering.run()
    return Result(graph, diags.sorted(), file, text, lowering.schemas if graph else {})


class Lowering:
    def __init__(self, doc: loader.Document, data: dict, validated: Validated, params: dict,
                 base_dir: str, diags: Diagnostics, param_uses: dict | None = None):
        self.doc, self.data, self.spec, self.invalid = doc, data, validated.spec, validated.invalid
        self.params, self.base_dir, self.diags = params, base_dir, diags
        self.header_ok = validated.header_ok
        self.nodes: dict[str, ir.Node] = {}
        self.schemas: dict[str, Schema] = {}
        self.table_node: dict[str, str] = {}
        self.span_file = os.path.basename(doc.file)
        self.param_uses = param_uses or {}
        self.current_params: set[str] = set()

    # --- helpers used by tables.py and the sections below ---

    def doc_value(self, path: tuple) -> Any:
        return loader.value_at(self.data, path)

    def scope(self, mode: str, columns, what: str = "", **kw) -> Scope:
        cols = dict(columns)
        label = f"columns of {what}" if what and mode not in ("metrics", "serving") else what or "columns"
        return Scope(mode=mode, columns=cols, params=self.params, what=label,
                     used_params=self.current_params, **kw)

    def expr(self, path: tuple, text: str, scope: Scope, boolean: bool = False) -> E.Expr | None:
        """Parse and type-check the expression at `path`; None (and diagnostics) on error."""
        try:
            tree = E.parse(text)
        except E.ExprSyntaxError as err:
            self.diags.add(err.code, err.message, self.doc.expr_span(path, err.start, err.end), err.hint)
            return None
        before = len(self.diags.errors)

        def report(code, message, node, hint=None):
            self.diags.add(code, message, self.doc.expr_span(path, node.start, node.end), hint)

        typed = Checker(scope, report).check(tree)
        if len(self.diags.errors) > before or typed.type is None:
            return None
        if boolean and typed.type != T.BOOL:
            self.diags.add("E0207", f"expected a boolean expression, found {typed.type}",
                           self.doc.expr_span(path, tree.start, tree.end),
                           "compare it, e.g. `x > 0`, or test `x is not null`")
            return None
        return typed

    def ir_span(self, path: tuple):
        span = self.doc.key_span(path)
        return None if span is None else type(span)(self.span_file, span.line, span.col,
                                                    span.end_line, span.end_col)

    def begin(self, *prefix: tuple) -> None:
        """Start a node: collect the params its expressions and YAML values use."""
        self.current_params = set()
        for path, names in self.param_uses.items():
            if any(path[:len(p)] == p for p in prefix):
                self.current_params.update(n for n in names if n in self.params)

    def used(self) -> tuple:
        return tuple(sorted((k, self.params[k]) for k in self.current_params))

    def resources(self, r) -> ir.Resources | None:
        if r is None:
            return None
        return ir.Resources(cpus=r.cpus, memory_bytes=parse_memory(r.memory) if r.memory else None,
                            gpus=r.gpus)

    # --- the passes ---

    def run(self) -> ir.Graph:
        from .models import lower_gates, lower_models, lower_rollouts

        order = self.resolve_tables()
        self.lower_sources()
        for name in order:
            self.lower_feature(name)
        lower_models(self)
        lower_gates(self)
        lower_rollouts(self)
        return None if self.diags.errors or not self.header_ok else self.graph()

    def resolve_tables(self) -> list[str]:
        """Check table names and references; the features in dependency order."""
        spec = self.spec
        clashing = {name for name in spec.features if name in spec.sources}
        for name in sorted(clashing):
            self.diags.add("E0305", f"'{name}' is both a source and a feature",
                           self.doc.key_span(("features", name)),
                           "sources and features share one namespace; rename one")
        deps = nx.DiGraph()
        for name, f in spec.features.items():
            if name in clashing:
                continue
            deps.add_node(name)
            for role, ref, path in _feature_refs(name, f):
                if ref in clashing:
                    continue
                if ref in spec.features:
                    deps.add_edge(ref, name)
                elif ref not in spec.sources:
                    self.unknown_table(ref, path)
        bad = set()
        for cycle in sorted(nx.simple_cycles(deps), key=lambda c: sorted(c))[:20]:
            loop = list(reversed(cycle))  # edges point from a table to its readers; follow `from:`
            i = loop.index(min(loop))
            loop = loop[i:] + loop[:i]
            self.diags.add("E0304", "dependency cycle: " + " -> ".join(loop + [loop[0]]),
                           self.doc.key_span(("features", loop[0])),
                           "every table on the loop reads the next; one of them must read a source")
            bad.update(cycle)
        deps.remove_nodes_from(bad)
        return list(nx.lexicographical_topological_sort(deps))

    def unknown_table(self, ref: str, path: tuple) -> None:
        if ("features", ref) in self.invalid or ("sources", ref) in self.invalid:
            return
        tables = list(self.spec.sources) + list(self.spec.features)
        self.diags.add("E0301", f"unknown table '{ref}'", self.doc.span(path),
                       suggest(ref, tables, "tables (sources and features)"))

    def lower_sources(self) -> None:
        for name, s in self.spec.sources.items():
            self.begin(("sources", name))
            schema = tuple(s.schema_.items()) if s.schema_ is not None else None
            if schema is not None and s.path is not None:
                for column, problem in compare(s.format, s.path, self.base_dir, schema):
                    self.diags.add("W0404", problem, self.doc.span(("sources", name, "schema", column)),
                                   severity="warning")
            if schema is None:
                try:
                    schema = infer(s.format, s.path or "", self.base_dir)
                except InferError as err:
                    users = [f for f, feat in self.spec.features.items()
                             if name in (r for _, r, _ in _feature_refs(f, feat))]
                    self.diags.add("E0404", f"cannot type source '{name}': {err}",
                                   self.doc.key_span(("sources", name)),
                                   "declare `schema:` (column: type)"
                                   + (f"; used by {', '.join(sorted(users))}" if users else ""))
                    continue
            node = ir.Source(id=ir.node_id("Source", name), name=name, span=self.ir_span(("sources", name)),
                             description=s.description, output=ir.TableType(columns=schema),
                             params=self.used(), format=s.format, path=s.path, uri=s.uri, query=s.query,
                             schema_declared=s.schema_ is not None)
            self.add_table(name, node, schema)

    def add_table(self, name: str, node: ir.Node, schema: Schema) -> None:
        self.nodes[node.id] = node
        self.schemas[name] = schema
        self.table_node[name] = node.id

    def lower_feature(self, name: str) -> None:
        f = self.spec.features[name]
        roles = {role: ref for role, ref, _ in _feature_refs(name, f)}
        if any(ref not in self.table_node for ref in roles.values()):
            return  # an input failed; it has its own diagnostics
        self.begin(("features", name))
        ops, schema = lower_feature(self, name, f, {r: self.schemas[t] for r, t in roles.items()})
        if schema is None:
            return
        inputs = tuple(ir.Input(role=r, node=self.table_node[t],
                                type=self.nodes[self.table_node[t]].output) for r, t in roles.items())
        node = ir.Transform(id=ir.node_id("Transform", name), name=name, span=self.ir_span(("features", name)),
                            description=f.description, inputs=inputs, output=ir.TableType(columns=schema),
                            ops=tuple(ops), params=self.used(),
                            resources=self.resources(f.resources), retries=f.retries)
        self.add_table(name, node, schema)

    def graph(self) -> ir.Graph:
        g = nx.DiGraph()
        for n in self.nodes.values():
            g.add_node(n.id)
            for i in n.inputs:
                g.add_edge(i.node, n.id)
        order = list(nx.lexicographical_topological_sort(g))
        targets = self.spec.targets.model_dump(mode="json", exclude_none=True) if self.spec.targets else {}
        return ir.Graph(pipeline=self.spec.pipeline, description=self.spec.description,
                        nodes=tuple(self.nodes[i] for i in order),
                        params=tuple(sorted(self.params.items())), targets=ir.canonical(targets),
                        source_file=self.span_file)


def _feature_refs(name: str, f) -> list[tuple[str, str, tuple]]:
    """(role, table, yaml path) for every table a feature reads."""
    if f.join is not None:
        return [("left", f.join.left, ("features", name, "join", "left")),
                ("right", f.join.right, ("features", name, "join", "right"))]
    return [("input", f.from_, ("features", name, "from"))]
