"""After a run: a model card for every trained model, from the run's results.

Every executor (local, Ray) calls `write_cards` once its nodes are done; cards are
written to `cards/<pipeline>/<model>.md` in the store the run cached into.
"""

from __future__ import annotations

from pipespec.compiler import ir

from . import artifacts
from .errors import RunError
from .registry import version_of


def write_cards(graph: ir.Graph, store, registry, results: dict, sample=None) -> list[str]:
    from .cards import model_card

    written = []
    for node in graph.nodes:
        train = results.get(node.id)
        if node.kind != "Train" or train is None or not train.ok:
            continue
        model = node.name
        try:
            evaluation = _json(store, results.get(f"evaluate.{model}"))
            gates = {g.name: _json(store, results.get(g.id)) or {} for g in _gates_of(graph, model)}
            rollout = _with_measurements(_json(store, results.get(f"rollout.{model}")),
                                         results.get(f"rollout.{model}"))
        except RunError:
            continue  # a damaged artifact is reported where it is read by a node, not here
        record = None if sample else registry.get(graph.pipeline, model, version_of(train.digest))
        card = model_card(graph, model, train_entry={"rows": train.rows, "digest": train.digest},
                          metrics=(evaluation or {}).get("metrics"), gate_decisions=gates,
                          rollout_decision=rollout, registry_record=record, sample=sample)
        relpath = f"cards/{graph.pipeline}/{model}.md"
        store.write_bytes(relpath, card.encode())
        written.append(store.path(relpath))
    return written


def _gates_of(graph: ir.Graph, model: str) -> list[ir.Node]:
    """Model gates on this model, and every gate its rollout requires."""
    found = {}
    for node in graph.nodes:
        if node.kind == "Gate" and any(i.node == f"evaluate.{model}" for i in node.inputs):
            found[node.id] = node
    for port in graph.node(f"rollout.{model}").inputs if f"rollout.{model}" in _ids(graph) else ():
        if port.role.startswith("gate:"):
            found[port.node] = graph.node(port.node)
    return [found[k] for k in sorted(found)]


def _with_measurements(decision: dict | None, result) -> dict | None:
    """The rollout decision with the latencies this run measured (kept in its summary)."""
    if decision is None:
        return None
    summary = result.summary or {}
    return dict(decision, steps=summary.get("steps", decision.get("steps", [])),
                reason=summary.get("reason", decision.get("reason")))


def _ids(graph: ir.Graph) -> set[str]:
    return {n.id for n in graph.nodes}


def _json(store, result) -> dict | None:
    if result is None or not result.ok or result.format != artifacts.JSON:
        return None
    return artifacts.decode(artifacts.JSON, store.get(result.digest))
