"""`pipespec step`: one node in a fresh process, from the IR and the store alone."""

from __future__ import annotations

import json

from pipespec.compiler import ir

from . import records
from .errors import RunError, map_exception
from .executor import EXIT_FAILED, EXIT_GATE, EXIT_OK, EXIT_ROLLED_BACK
from .ops.base import Sample
from .step import BLOCKED, NodeResult, open_runner
from .store import Store


def run_step(graph: ir.Graph, node_id: str, store_url: str, root: str, sample_rows: int | None = None,
             seed: int = 0, hold: bool = False, retries: bool = True,
             rollout_step: int | None = None) -> tuple[int, dict]:
    """Run `node_id` (resolving its inputs from the cache), or only step `rollout_step` of a
    rollout; (exit code, the result as one JSON-ready dict)."""
    try:
        node = graph.node(node_id)
    except KeyError:
        return EXIT_FAILED, _failed(node_id, RunError("E0808", f"no node {node_id!r} in pipeline "
                                                                f"{graph.pipeline}"))
    steps = len(node.run_steps()) if node.kind == "Rollout" else 0
    if rollout_step is not None and not 1 <= rollout_step <= steps:
        return EXIT_FAILED, _failed(node_id, RunError("E0808", f"{node_id} has no rollout step {rollout_step} "
                                                                f"(it has {steps})"))
    sample = Sample(sample_rows, seed) if sample_rows else None
    try:
        runner = open_runner(graph, Store(store_url), root, sample=sample, hold=hold, retries=retries)
        runner.resolve(node_id)
    except RunError as exc:
        return EXIT_FAILED, _failed(node_id, exc)
    blocked = runner.blocked(node_id)
    if blocked is not None:
        return EXIT_GATE if blocked.status == BLOCKED else EXIT_FAILED, blocked.to_json()
    if rollout_step is not None:
        return _rollout_step(runner, node_id, rollout_step)
    result = runner.run(node_id)
    data = result.to_json()
    if result.ok:
        try:
            records.write_step(runner.store, graph.pipeline, data)
        except RunError as exc:
            return EXIT_FAILED, _failed(node_id, exc)
    return exit_code(result), data


def exit_code(result: NodeResult) -> int:
    """What `pipespec run` would exit with for this one result."""
    if not result.ok:
        return EXIT_FAILED
    if result.summary.get("outcome") == "rolled_back":
        return EXIT_ROLLED_BACK
    return EXIT_OK


EXIT_DECIDED = 5  # --rollout-step: the rollout was already decided (cached); later steps need not run


def _rollout_step(runner, node_id: str, k: int) -> tuple[int, dict]:
    """Exit 4 when this step rolls the rollout back, 5 when an earlier run decided it: either
    way the later steps and holds must not run."""
    node = runner.graph.node(node_id)
    try:
        report, decided, key = runner.run_rollout_step(node_id, k)
        records.write_step(runner.store, runner.graph.pipeline,  # keeps the reports live during holds
                           {"id": node_id, "kind": "Rollout", "status": f"step {k}", "key": key})
    except Exception as exc:  # noqa: BLE001 - reported like a failed node
        error = map_exception(exc, f"rollout {node.name}, step {k}")
        return EXIT_FAILED, _failed(node_id, error)
    if decided is not None:
        return EXIT_DECIDED, dict(decided.to_json(), rollout_step=k, decided=True)
    data = {"id": node_id, "kind": "Rollout", "status": "done", "rollout_step": k, "report": report}
    return (EXIT_ROLLED_BACK if report["rollback"] else EXIT_OK), data


def _failed(node_id: str, exc: RunError) -> dict:
    return {"id": node_id, "status": "failed", "error": exc.message, "code": exc.code, "hint": exc.hint}


def line(data: dict) -> str:
    """The one JSON line `pipespec step` prints (and `--result-file` holds)."""
    return json.dumps(data, sort_keys=True, separators=(",", ":"))


def verdict(data: dict) -> str | None:
    """A gate's verdict as a JSON boolean (`true`/`false`); None when it has none."""
    passed = (data.get("summary") or {}).get("passed")
    return None if passed is None else json.dumps(bool(passed))
