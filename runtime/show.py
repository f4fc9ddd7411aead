"""`pipespec show`: a node's output from the pipeline's latest run."""

from __future__ import annotations

import json

from pipespec.compiler import ir

from . import artifacts, records
from .errors import RunError
from .executor import resolve_names


def show_node(graph: ir.Graph, store, name: str, rows: int, fmt: str) -> str:
    (node_id,) = resolve_names(graph, (name,), "node")
    entry = _latest(store, graph.pipeline, node_id)
    if entry is None:
        raise RunError("E0807", f"{node_id} has no output in any run of {graph.pipeline} yet",
                       "run the pipeline first (`pipespec run SPEC`)")
    data = store.get(entry["digest"], f"output of {node_id}")
    value = artifacts.decode(entry["format"], data)
    if entry["format"] == artifacts.TABLE:
        return _table(value, rows, fmt)
    if entry["format"] == artifacts.MODEL:
        card = store.read_bytes(f"cards/{graph.pipeline}/{graph.node(node_id).name}.md")
        if fmt == "json":
            return json.dumps({"estimator": repr(value), "digest": entry["digest"],
                               "card": card.decode() if card else None}, indent=2)
        return card.decode() if card else repr(value)
    return json.dumps(value, indent=2, sort_keys=True)


def _latest(store, pipeline: str, node_id: str) -> dict | None:
    for record in records.latest(store, pipeline, count=50):
        for node in record.get("nodes", []):
            if node["id"] == node_id and node.get("digest"):
                return node
    return None


def _table(table, rows: int, fmt: str) -> str:
    head = table.slice(0, rows)
    if fmt == "json":
        return json.dumps({"schema": [[f.name, str(f.type)] for f in table.schema], "rows": table.num_rows,
                           "head": head.to_pylist()}, default=str, indent=2)
    lines = [f"{table.num_rows:,} rows, {table.num_columns} columns"]
    lines += [f"  {f.name}: {f.type}" for f in table.schema]
    if rows and table.num_rows:
        lines.append("")
        lines.extend(_grid(head))
    return "\n".join(lines)


def _grid(table) -> list[str]:
    names = table.column_names
    cells = [["null" if v is None else str(v) for v in table.column(n).to_pylist()] for n in names]
    widths = [max([len(n), *map(len, col)]) for n, col in zip(names, cells)]
    lines = ["  ".join(n.ljust(w) for n, w in zip(names, widths))]
    for i in range(table.num_rows):
        lines.append("  ".join(col[i].ljust(w) for col, w in zip(cells, widths)))
    return lines
