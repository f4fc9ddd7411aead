"""The typed, immutable IR graph that every runtime step and target consumes.

Nodes are frozen dataclasses with typed input ports and one typed output.  The
graph is a networkx DiGraph built from the nodes' inputs on first use (`Graph.graph`;
networkx costs ~0.1 s to import, which a fully cached run does not pay).  `to_json` is the
canonical form (sorted keys, no timestamps, no absolute paths) and
`from_json(to_json(g)) == g`; `from_json` accepts nothing else (irgraph.py checks every
value while decoding and raises IRError naming its JSON path).  A node's fingerprint hashes its
definition without its name, position or upstream ids, so formatting and renames upstream
never change it.
"""

from __future__ import annotations

import dataclasses
import gc
import hashlib
import json
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterator, Literal, NewType

from . import expr as E
from .diagnostics import Span
from .types import ColumnType

if TYPE_CHECKING:
    import networkx as nx

SCHEMA_VERSION = 1
FINGERPRINT_VERSION = 1

# Names (SPEC.md §3): the spec models validate with these, and so does reading an IR back, since
# ids and names end up in store paths and cache keys.  Strings, as pydantic's `pattern=` takes them.
NAME_RE = r"^[A-Za-z_][A-Za-z0-9_]*$"
PIPELINE_RE = r"^[a-z][a-z0-9_-]*$"

# The fixed values of IR fields: the spec models declare their fields with these types, and the IR
# reader refuses any other value (`typing.get_args` lists them).
SourceFormat = Literal["parquet", "csv", "jsonl", "arrow", "sql"]
JoinHow = Literal["inner", "left", "right", "outer"]
Strategy = Literal["direct", "canary", "blue_green", "shadow"]
EvaluationMethod = Literal["split", "cv"]
Task = Literal["classification", "regression"]
GateSubject = Literal["model", "table"]
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc",
                          "log_loss", "average_precision")
REGRESSION_METRICS = ("r2", "mae", "mse", "rmse", "mape", "median_ae", "explained_variance",
                      "max_error")
METRICS: dict[str, Task] = {**{m: "classification" for m in CLASSIFICATION_METRICS},
                            **{m: "regression" for m in REGRESSION_METRICS}}
MetricName = NewType("MetricName", str)  # a key of METRICS

_FROZEN = dict(frozen=True, slots=True, kw_only=True)
_CLASSES: dict[str, type] = {}


class IRError(ValueError):
    """JSON that is not an IR this pipespec wrote; `path` locates the offending value
    (`nodes[3].inputs[0].node`; empty for the document as a whole)."""

    def __init__(self, message: str, path: str = ""):
        super().__init__(f"{path}: {message}" if path else message)
        self.message, self.path = message, path

    def __reduce__(self):
        return type(self), (self.message, self.path)


def _register(cls):
    _CLASSES[cls.__name__] = cls
    return cls


# --- port types --------------------------------------------------------------------


@_register
@dataclass(**_FROZEN)
class TableType:
    """A table with known column types, in column order."""

    columns: tuple[tuple[str, ColumnType], ...]

    def column_types(self) -> dict[str, str]:
        return dict(self.columns)


@_register
@dataclass(**_FROZEN)
class ModelType:
    """A fitted estimator: its task and the typed columns it reads and predicts."""

    task: Task
    features: tuple[tuple[str, ColumnType], ...]
    target: tuple[str, ColumnType]


@_register
@dataclass(**_FROZEN)
class MetricsType:
    metrics: tuple[MetricName, ...]


@_register
@dataclass(**_FROZEN)
class DecisionType:
    """A pass/fail decision with the value and verdict of every check."""


PortType = TableType | ModelType | MetricsType | DecisionType
Scalar = str | int | float | bool | None  # a param's value, a literal


@_register
@dataclass(**_FROZEN)
class Input:
    """An input port: the role it plays, the node feeding it, and the type it carries."""

    role: str
    node: str
    type: PortType


@_register
@dataclass(**_FROZEN)
class Resources:
    cpus: float | None = None
    memory_bytes: int | None = None
    gpus: int | None = None


# --- table operations (inside Transform) -------------------------------------------------


@_register
@dataclass(**_FROZEN)
class Join:
    how: JoinHow
    on: tuple[str, ...]
    suffixes: tuple[str, str] | None = None


@_register
@dataclass(**_FROZEN)
class Filter:
    predicate: E.Expr


@_register
@dataclass(**_FROZEN)
class Aggregate:
    keys: tuple[str, ...]
    aggregates: tuple[tuple[str, E.Expr], ...]


@_register
@dataclass(**_FROZEN)
class Derive:
    column: str
    expr: E.Expr


@_register
@dataclass(**_FROZEN)
class Select:
    columns: tuple[str, ...]


TableOp = Join | Filter | Aggregate | Derive | Select


@_register
@dataclass(**_FROZEN)
class Check:
    """One `require` entry of a gate: its source text and typed expression."""

    text: str
    expr: E.Expr


@_register
@dataclass(**_FROZEN)
class Step:
    traffic: float
    hold_seconds: int | None = None


def format_duration(seconds: int) -> str:
    """Seconds (a `Step.hold_seconds`) as a spec writes durations: 1d12h, 30m, 45s."""
    parts, rest = [], int(seconds)
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


@_register
@dataclass(**_FROZEN)
class Evaluation:
    """How a model is evaluated: a held-out split or k-fold cross-validation."""

    method: EvaluationMethod
    seed: int
    test_size: float | None = None
    stratify: bool = False
    folds: int | None = None


# --- nodes -----------------------------------------------------------------------------


@dataclass(**_FROZEN)
class Node:
    """Common to every node: identity, position, typed ports and the params it used."""

    id: str
    name: str
    span: Span | None = field(default=None, compare=False)
    description: str | None = None
    inputs: tuple[Input, ...] = ()
    output: PortType | None = None
    params: tuple[tuple[str, Scalar], ...] = ()
    resources: Resources | None = None
    retries: int | None = None

    @property
    def kind(self) -> str:
        return type(self).__name__

    def fingerprint(self) -> str:
        return fingerprint(self)


@_register
@dataclass(**_FROZEN)
class Source(Node):
    format: SourceFormat
    path: str | None = None
    uri: str | None = None
    query: str | None = None
    schema_declared: bool = True


@_register
@dataclass(**_FROZEN)
class Transform(Node):
    """One feature: an ordered list of table operations over its inputs."""

    ops: tuple[TableOp, ...] = ()


@_register
@dataclass(**_FROZEN)
class Train(Node):
    estimator: str
    estimator_params: str = "{}"  # canonical JSON of the constructor arguments
    task: Task = "classification"
    target: str = ""
    features: tuple[str, ...] = ()
    keys: tuple[str, ...] = ()
    evaluation: Evaluation | None = None


@_register
@dataclass(**_FROZEN)
class Evaluate(Node):
    metrics: tuple[MetricName, ...] = ()
    evaluation: Evaluation | None = None


@_register
@dataclass(**_FROZEN)
class Gate(Node):
    subject: GateSubject = "model"
    checks: tuple[Check, ...] = ()


@_register
@dataclass(**_FROZEN)
class Rollout(Node):
    model: str = ""
    strategy: Strategy = "canary"
    steps: tuple[Step, ...] = ()
    rollback_if: Check | None = None

    def run_steps(self) -> tuple[Step, ...]:
        """The steps a rollout runs, each checked against `rollback_if` (one task per step
        on an orchestrator): blue_green is one check of all traffic after its hold, shadow
        without steps mirrors all traffic once, direct has none."""
        if self.strategy == "direct":
            return ()
        if self.strategy == "blue_green":
            return (Step(traffic=100.0, hold_seconds=self.steps[0].hold_seconds if self.steps else None),)
        if self.strategy == "shadow" and not self.steps:
            return (Step(traffic=100.0),)
        return self.steps


NODE_KINDS = ("Source", "Transform", "Train", "Evaluate", "Gate", "Rollout")
ID_PREFIX = {"Source": "source", "Transform": "feature", "Train": "train", "Evaluate": "evaluate",
             "Gate": "gate", "Rollout": "rollout"}  # a node's id is `<prefix>.<name>`


def node_id(kind: str, name: str) -> str:
    """The id of the `kind` node named `name`: `<prefix>.<name>` (SPEC.md §15)."""
    return f"{ID_PREFIX[kind]}.{name}"

OUTPUT = {"Source": TableType, "Transform": TableType, "Train": ModelType, "Evaluate": MetricsType,
          "Gate": DecisionType, "Rollout": DecisionType}
# the roles of a node's inputs, sorted, by kind (SPEC.md §15); a rollout adds `gate:<name>`
# per gate it requires
INPUT_ROLES = {"Source": ((),), "Transform": (("input",), ("left", "right")),
               "Train": (("table",),), "Evaluate": (("model", "table"),),
               "Gate": (("metrics",), ("table",)), "Rollout": (("model", "replay"), ("model", "table"))}
ROLE_TYPE = {"input": TableType, "left": TableType, "right": TableType, "table": TableType,
             "replay": TableType, "model": ModelType, "metrics": MetricsType, "gate": DecisionType}
_CLASS_SET = frozenset(_CLASSES.values())


# --- JSON --------------------------------------------------------------------------------


@contextmanager
def gc_paused():
    """Pause the cyclic garbage collector: compiling and serializing allocate many small
    objects and create almost no cycles, so collections would only cost time (~40% at 10k nodes)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


_SHARED = (TableType, ModelType, MetricsType)


def encode(value: Any, memo: dict | None = None) -> Any:
    """Any IR value as JSON-ready data (dataclasses tagged by `kind`).

    `memo` (id -> encoding) lets one serialization encode each shared port type and
    expression once; the values are alive for the whole call, so ids are stable.
    """
    if memo is not None and isinstance(value, (E.Expr, *_SHARED)):
        key = id(value)
        if key not in memo:
            memo[key] = E.to_json(value) if isinstance(value, E.Expr) else _encode_fields(value, memo)
        return memo[key]
    if isinstance(value, E.Expr):
        return E.to_json(value)
    if isinstance(value, Span):
        return value.to_json()
    if isinstance(value, tuple):
        return [encode(v, memo) for v in value]
    if type(value) in _CLASS_SET:
        return _encode_fields(value, memo)
    return value


def _encode_fields(value: Any, memo: dict | None) -> dict:
    data = {"kind": type(value).__name__}
    for name in _field_names(type(value)):
        data[name] = encode(getattr(value, name), memo)
    return data


_FIELD_NAMES: dict[type, tuple[str, ...]] = {}


def _field_names(cls: type) -> tuple[str, ...]:
    names = _FIELD_NAMES.get(cls)
    if names is None:
        names = _FIELD_NAMES[cls] = tuple(f.name for f in dataclasses.fields(cls))
    return names


def canonical(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


_UNFINGERPRINTED = {"id", "name", "span", "description", "fingerprint"}


def fingerprint(node: Node) -> str:
    """Hash of what the node computes: kind, config, port types; not names or positions."""
    return _fingerprint_encoded(encode(node))


def _fingerprint_encoded(encoded: dict) -> str:
    data = {k: v for k, v in encoded.items() if k not in _UNFINGERPRINTED}
    data["inputs"] = [{"role": i["role"], "type": i["type"]} for i in encoded["inputs"]]
    data["fingerprint_version"] = FINGERPRINT_VERSION
    return hashlib.sha256(canonical(data).encode()).hexdigest()


def _with_fingerprint(encoded: dict) -> dict:
    encoded["fingerprint"] = _fingerprint_encoded(encoded)
    return encoded


@dataclass(frozen=True)
class Graph:
    """The whole pipeline: metadata plus nodes in topological order (ties by id)."""

    pipeline: str
    nodes: tuple[Node, ...]
    description: str | None = None
    params: tuple[tuple[str, Scalar], ...] = ()
    targets: str = "{}"  # canonical JSON of the validated `targets:` options
    source_file: str | None = None
    _graph: nx.DiGraph | None = field(default=None, init=False, compare=False, repr=False)
    _by_id: dict = field(default=None, init=False, compare=False, repr=False)
    _edges: dict = field(default=None, init=False, compare=False, repr=False)  # (from, to) -> role
    _down: dict = field(default=None, init=False, compare=False, repr=False)  # id -> readers

    def __post_init__(self):
        by_id = {n.id: n for n in self.nodes}
        edges: dict[tuple[str, str], str] = {}
        down: dict[str, set[str]] = {}
        for n in self.nodes:
            for i in n.inputs:
                edges[(i.node, n.id)] = i.role  # as a DiGraph: one edge per pair, the last role wins
                down.setdefault(i.node, set()).add(n.id)
        object.__setattr__(self, "_by_id", by_id)
        object.__setattr__(self, "_edges", edges)
        object.__setattr__(self, "_down", down)

    @property
    def graph(self) -> nx.DiGraph:
        """The (frozen) networkx graph; node keys are node ids, edges carry the input role."""
        if self._graph is None:
            import networkx as nx
            g = nx.DiGraph()
            g.add_nodes_from(n.id for n in self.nodes)
            g.add_edges_from((u, v, {"role": role}) for (u, v), role in self._edges.items())
            object.__setattr__(self, "_graph", nx.freeze(g))
        return self._graph

    def node(self, node_id: str) -> Node:
        return self._by_id[node_id]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    def upstream(self, node_id: str) -> list[Node]:
        return [self._by_id[n] for n in sorted({i.node for i in self._by_id[node_id].inputs})]

    def downstream(self, node_id: str) -> list[Node]:
        return [self._by_id[n] for n in sorted(self._down.get(node_id, ()))]

    def edges(self) -> list[tuple[str, str, str]]:
        return sorted((u, v, role) for (u, v), role in self._edges.items())

    def ancestors(self, node_id: str) -> set[str]:
        """Ids of every node `node_id` reads from, directly or not (nx.ancestors without networkx)."""
        return self._reachable(node_id, lambda n: (i.node for i in self._by_id[n].inputs))

    def descendants(self, node_id: str) -> set[str]:
        """Ids of every node that reads `node_id`, directly or not."""
        return self._reachable(node_id, lambda n: self._down.get(n, ()))

    def _reachable(self, node_id: str, step) -> set[str]:
        seen: set[str] = set()
        todo = [node_id]
        while todo:
            for other in step(todo.pop()):
                if other not in seen:
                    seen.add(other)
                    todo.append(other)
        return seen

    def to_data(self) -> dict:
        memo: dict = {}
        return {
            "schema_version": SCHEMA_VERSION,
            "pipeline": self.pipeline,
            "description": self.description,
            "params": {k: v for k, v in self.params},
            "targets": json.loads(self.targets),
            "source_file": self.source_file,
            "nodes": [_with_fingerprint(encode(n, memo)) for n in self.nodes],
            "edges": [list(e) for e in self.edges()],
        }

    def to_json(self) -> str:
        """Canonical, byte-stable JSON: sorted keys, one node and one edge per line, so a
        change to one node is a one-line diff (and the C encoder keeps it fast)."""
        with gc_paused():
            return self._to_json()

    def _to_json(self) -> str:
        data = self.to_data()
        parts = []
        for key in sorted(data):
            value = data[key]
            if key in ("nodes", "edges") and value:
                items = ",\n  ".join(canonical(v) for v in value)
                parts.append(f"{json.dumps(key)}: [\n  {items}\n ]")
            else:
                parts.append(f"{json.dumps(key)}: {canonical(value)}")
        return "{\n " + ",\n ".join(parts) + "\n}\n"

    @classmethod
    def from_json(cls, text: str | bytes) -> "Graph":
        """The graph `to_json` wrote; IRError for anything else (another schema version, a
        node edited by hand, a malformed value, a name that is not the compiler's)."""
        from .irgraph import read_graph
        return read_graph(text)
