"""`pipespec plan`: what a run would do and why, without running anything.

Reads no data except to stat (and, when changed, hash) the sources.  A node is
*cached* when its key has an entry; it *will run* when its key is new (the reason
names the component that changed since the node's last run) or when an input
will run (its key is only known after that input's output is).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipespec.compiler import ir

from . import keys, records
from .errors import map_exception
from .executor import RunOptions, resolve_names, select
from .step import BLOCKED, CACHED, DAMAGED, NodeResult, Runner, open_runner

WILL_RUN = "run"


@dataclass
class PlanItem:
    id: str
    kind: str
    action: str          # cached | run | blocked | error
    reason: str
    estimate: float | None = None  # seconds, from the last run that computed this node
    key: str | None = None

    def to_json(self) -> dict:
        return {"id": self.id, "kind": self.kind, "action": self.action, "reason": self.reason,
                "estimate_seconds": self.estimate, "key": self.key}


def plan(graph: ir.Graph, store, root: str, options: RunOptions) -> list[PlanItem]:
    force = set(resolve_names(graph, options.force, "--force"))
    runner = open_runner(graph, store, root, sample=options.sample, read_only=True, verify=options.verify)
    previous, estimates = records.history(runner.store, graph.pipeline)
    selected = select(graph, options.only)
    items = []
    for node in graph.nodes:
        if node.id in selected:
            items.append(_plan_node(runner, node, previous.get(node.id), force, estimates.get(node.id)))
    return items


def _plan_node(runner: Runner, node: ir.Node, previous: dict | None, force: set, estimate) -> PlanItem:
    for port in node.inputs:
        upstream = runner.results.get(port.node)
        if upstream is None:
            own = keys.param_changes(previous.get("components") if previous else None, node)
            why = "; ".join([*own, f"input {port.node} will run"])
            return PlanItem(node.id, node.kind, WILL_RUN, why, estimate)
        if upstream.status == BLOCKED or upstream.summary.get("passed") is False:
            why = upstream.reason or f"{port.node} failed: " + "; ".join(upstream.summary.get("failed", []))
            runner.results[node.id] = NodeResult(node.id, node.kind, BLOCKED, reason=why)
            return PlanItem(node.id, node.kind, "blocked", why)
    try:
        result = runner.lookup(node.id)
    except Exception as exc:  # noqa: BLE001 - e.g. a source that does not exist
        error = map_exception(exc, f"{node.kind.lower()} {node.name}")
        return PlanItem(node.id, node.kind, "error", error.message)
    if result.status == CACHED and node.id not in force:
        runner.results[node.id] = result
        return PlanItem(node.id, node.kind, CACHED, "cached", None, result.key)
    if node.id in force:
        reason = "forced (--force)"
    elif result.status == DAMAGED:
        reason = result.reason or "its cached output cannot be used"
    else:
        reason = keys.explain_change(previous.get("components") if previous else None, result.components,
                                     node)
        if previous and previous.get("key") == result.key:
            reason = "cache entry missing (deleted or garbage-collected)"
    return PlanItem(node.id, node.kind, WILL_RUN, reason, estimate, result.key)

