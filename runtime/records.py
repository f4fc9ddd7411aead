"""Run records: one JSON document per run at `runs/<pipeline>/<run_id>.json`, and the newest
results of nodes run alone at `steps/<pipeline>/<node id>/<key>.json`.

Run ids start with the UTC time, so sorting by id sorts by start; `latest` and
`gc` rely on that.
"""

from __future__ import annotations

import datetime as _dt
import secrets

from pipespec.compiler import ir

from .errors import StoreError


def new_run_id() -> str:
    now = _dt.datetime.now(_dt.timezone.utc)
    return now.strftime("%Y%m%dT%H%M%S") + f"{now.microsecond // 1000:03d}-{secrets.token_hex(3)}"


def write(store, graph: ir.Graph, report, options) -> str:
    relpath = f"runs/{graph.pipeline}/{report.run_id}.json"
    store.write_json(relpath, {
        "run_id": report.run_id,
        "pipeline": graph.pipeline,
        "spec": graph.source_file,
        "finished_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "seconds": round(report.seconds, 4),
        "status": report.status,
        "exit_code": report.exit_code,
        "sample": {"rows": report.sample.rows, "seed": report.sample.seed} if report.sample else None,
        "params": {k: v for k, v in graph.params},
        "only": list(options.only),
        "force": list(options.force),
        "nodes": [r.to_json() for r in report.results],
    })
    return store.path(relpath)


def write_step(store, pipeline: str, result: dict) -> None:
    """A node's result run on its own (`pipespec step`, what orchestrators call), at
    `steps/<pipeline>/<node id>/<key>.json`, rewritten each time the key is used: an
    orchestrated pipeline writes no run record, and gc keeps what the newest of these name."""
    store.write_json(f"steps/{pipeline}/{result['id']}/{result['key']}.json",
                     {k: result.get(k) for k in ("id", "kind", "status", "key", "digest")})


def step_records(store) -> dict[tuple[str, str], list[str]]:
    """(pipeline, node id) -> the relative paths of its step records."""
    found: dict[tuple[str, str], list[str]] = {}
    for rel in store.list("steps"):
        parts = rel.split("/")
        if len(parts) == 4 and rel.endswith(".json"):
            found.setdefault((parts[1], parts[2]), []).append(rel)
    return found


def run_ids(store, pipeline: str) -> list[str]:
    return [rel.rsplit("/", 1)[1][:-5] for rel in store.list(f"runs/{pipeline}") if rel.endswith(".json")]


def pipelines(store) -> list[str]:
    return sorted({rel.split("/")[1] for rel in store.list("runs") if rel.count("/") == 2})


def read(store, pipeline: str, run_id: str) -> dict | None:
    """A run record; StoreError naming the file when it is damaged (not JSON, or not a record)."""
    relpath = f"runs/{pipeline}/{run_id}.json"
    record = store.read_json(relpath)
    problem = None if record is None else run_problem(record)
    if problem:
        raise StoreError(f"run record {relpath} is damaged: {problem}",
                         "run `pipespec cache verify --delete` to remove it")
    return record


_NODE_FIELDS = (("id", str, False), ("status", str, True), ("key", str, True), ("digest", str, True),
                ("components", dict, True), ("summary", dict, True), ("seconds", (int, float), True))


def run_problem(record) -> str | None:
    """What makes `record` not a run record (None when it is one)."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    if not isinstance(record.get("run_id"), str):
        return "no run_id"
    nodes = record.get("nodes")
    if not isinstance(nodes, list):
        return "'nodes' is not a list"
    for i, node in enumerate(nodes):
        problem = _fields_problem(node, _NODE_FIELDS)
        if problem:
            return f"nodes[{i}]: {problem}"
    return None


def step_problem(record) -> str | None:
    """What makes `record` not a step record."""
    return _fields_problem(record, (("id", str, False), ("key", str, False), ("status", str, True),
                                    ("digest", str, True)))


def _fields_problem(data, fields) -> str | None:
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    for name, kind, optional in fields:
        value = data.get(name)
        if not (isinstance(value, kind) and not isinstance(value, bool) or optional and value is None):
            return f"'{name}' is {type(value).__name__}"
    return None


def latest(store, pipeline: str, count: int = 1) -> list[dict]:
    """The newest `count` records, newest first."""
    found = []
    for run_id in reversed(run_ids(store, pipeline)):
        record = read(store, pipeline, run_id)
        if record:
            found.append(record)
        if len(found) == count:
            break
    return found


def history(store, pipeline: str, count: int = 20) -> tuple[dict[str, dict], dict[str, float]]:
    """From the newest `count` records, one read: node id -> its newest entry with a key
    (plan's "why"), and node id -> seconds of its newest computed (`done`) run (estimates)."""
    seen: dict[str, dict] = {}
    seconds: dict[str, float] = {}
    for record in latest(store, pipeline, count):
        for node in record.get("nodes", []):
            if node.get("components") and node["id"] not in seen:
                seen[node["id"]] = node
            if node.get("status") == "done" and node["id"] not in seconds:
                seconds[node["id"]] = node.get("seconds") or 0.0
    return seen, seconds
