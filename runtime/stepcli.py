"""`pipespec step`: one node in a fresh process, from the IR and the store alone."""

from __future__ import annotations

import json

from pipespec.compiler import ir

from .errors import RunError
from .executor import EXIT_FAILED, EXIT_GATE, EXIT_OK
from .ops.base import Sample
from .step import BLOCKED, open_runner
from .store import Store


def run_step(graph: ir.Graph, node_id: str, store_url: str, root: str, sample_rows: int | None = None,
             seed: int = 0, hold: bool = False) -> tuple[int, str]:
    """Run `node_id` (resolving its inputs from the cache); (exit code, one JSON line)."""
    try:
        graph.node(node_id)
    except KeyError:
        return EXIT_FAILED, _line({"id": node_id, "status": "failed",
                                   "error": f"no node {node_id!r} in pipeline {graph.pipeline}"})
    sample = Sample(sample_rows, seed) if sample_rows else None
    try:
        runner = open_runner(graph, Store(store_url), root, sample=sample, hold=hold)
        runner.resolve(node_id)
    except RunError as exc:
        return EXIT_FAILED, _line({"id": node_id, "status": "failed", "error": exc.message,
                                   "code": exc.code, "hint": exc.hint})
    blocked = runner.blocked(node_id)
    if blocked is not None:
        return EXIT_GATE if blocked.status == BLOCKED else EXIT_FAILED, _line(blocked.to_json())
    result = runner.run(node_id)
    return (EXIT_OK if result.ok else EXIT_FAILED), _line(result.to_json())


def _line(data: dict) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"))
