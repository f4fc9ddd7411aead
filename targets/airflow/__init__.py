"""The `airflow` target: a thin Airflow 3 DAG file plus the canonical IR beside it.

One task per IR node (rollouts: one task per rollout step, a hold between steps, then the
decision); dependencies from the IR's edges.  The DAG file (dagfile.py) reads like a hand-written
one; the scheduler's parse imports only Airflow.  Every spec value enters it through the `py`
and `ident` filters of `base.python_template` (checked literals); no field of any generated
operator is a Jinja template, so `{{ }}` in a spec is never rendered by Airflow either.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from pipespec.compiler.ir import Graph, Node

from .. import kube
from ..base import Artifact, UnsupportedError, ir_file, short_file_name, unknown_options
from .dagfile import EXIT_DECIDED, EXIT_GATE, EXIT_ROLLED_BACK, doc_md, render, summary  # noqa: F401

name = "airflow"
description = "an Airflow 3 DAG file (python, bash or kubernetes tasks) and the IR it runs"

FLAVOURS = ("python", "bash", "kubernetes")
OPTIONS = {
    "operator": "python (default: tasks call pipespec in the worker), bash (`pipespec step` in a "
                "shell) or kubernetes (a pod per task)",
    "dag_id": "the DAG id (default: targets.airflow.dag_id, else the pipeline name)",
    "store": "store directory or URL the tasks cache into (default: $PIPESPEC_STORE where the "
             "DAG is parsed, else .pipespec/ beside the DAG file; /pipespec/store in pods)",
    "root": "directory or URL relative source paths resolve against (default: $PIPESPEC_ROOT "
            "where the DAG is parsed, else the DAG folder; /pipespec in pods)",
    "image": "kubernetes: the pipespec runtime image (default: targets.airflow.image)",
    "namespace": "kubernetes: the pods' namespace (default: targets.airflow.namespace, else default)",
    "ir": "kubernetes: where pods read the IR (default: /pipespec/<the IR file's name>)",
}
SPEC_OPTIONS = ("schedule", "start_date", "catchup", "tags", "owner", "retries", "retry_delay", "pool")
OPTIONS.update({key: f"overrides targets.airflow.{key}" + (" (comma-separated)" if key == "tags" else "")
                for key in SPEC_OPTIONS})
TASK_ID = re.compile(r"[^A-Za-z0-9_]")
ID_MAX = 250  # task and DAG ids: Airflow's `validate_key` (airflow/sdk/definitions/_internal/node.py)


@dataclass(frozen=True)
class Task:
    """One task of the DAG: what it runs, after which tasks, with which operator arguments."""

    task_id: str
    node_id: str
    what: str           # node | gate | step | hold | decision
    arg: int | None     # rollout step number, or hold seconds
    upstream: tuple[str, ...]
    kwargs: dict = field(default_factory=dict)


def compile(ir: Graph, options: dict[str, Any]) -> Artifact:  # noqa: A001 - the Target protocol
    settings = _settings(ir, options)
    tasks = task_table(ir, settings)
    ir_name, ir_bytes = ir_file(ir)
    dag = render(ir, settings, tasks, ir_name, hashlib.sha256(ir_bytes).hexdigest())
    return Artifact({short_file_name(settings["dag_id"], ".py"): dag.encode(), ir_name: ir_bytes})


# --- settings ------------------------------------------------------------------------------


def _settings(ir: Graph, options: dict[str, Any]) -> dict:
    """`targets.airflow` from the spec, overridden by --option; every problem in one error."""
    spec = json.loads(ir.targets).get("airflow") or {}
    problems = unknown_options(options, OPTIONS)
    overrides, bad = _spec_overrides(options)
    problems += bad
    s = {**spec, **{k: v for k, v in options.items() if k in OPTIONS and k not in SPEC_OPTIONS}, **overrides}
    s.setdefault("operator", "python")
    s["dag_id"] = s.get("dag_id") or ir.pipeline.replace("-", "_")
    if s["operator"] not in FLAVOURS:
        problems.append(("operator", f"{s['operator']!r} is not one of {', '.join(FLAVOURS)}"))
    problems += _dag_id_problems(s["dag_id"])
    problems += [("tags", f"tag {t[:40]!r}… is longer than Airflow's 100 characters")
                 for t in s.get("tags", []) if len(t) > 100]
    if s["operator"] == "kubernetes" and not s.get("image"):
        problems.append(("image", "the kubernetes operator needs an image (targets.airflow.image or "
                                  "--option image=REF)"))
    if s.get("namespace") and not (len(s["namespace"]) <= 63 and kube.DNS1123_LABEL.match(s["namespace"])):
        problems.append(("namespace", f"{s['namespace']!r} is not a Kubernetes namespace (a DNS label)"))
    if problems:
        raise UnsupportedError(name, problems)
    return s


def _dag_id_problems(dag_id: str) -> list[tuple[str, str]]:
    if len(dag_id) > ID_MAX:
        return [("dag_id", f"{_short(dag_id)!r} is {len(dag_id):,} characters; Airflow allows at most "
                           f"{ID_MAX} (set targets.airflow.dag_id or --option dag_id=ID)")]
    if not re.fullmatch(r"[A-Za-z0-9_.-]+", dag_id):
        return [("dag_id", f"{_short(dag_id)!r} is not a valid DAG id ([A-Za-z0-9_.-], at most {ID_MAX})")]
    return []


def _short(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _spec_overrides(options: dict[str, Any]) -> tuple[dict, list[tuple[str, str]]]:
    """`--option` values for `targets.airflow` keys, checked and typed by the spec's own model."""
    given = {k: (v.split(",") if k == "tags" else v) for k, v in options.items() if k in SPEC_OPTIONS}
    if not given:
        return {}, []
    from pydantic import ValidationError
    from pipespec.compiler.spec import AirflowOptions
    try:
        model = AirflowOptions.model_validate(given, strict=False)
    except ValidationError as exc:
        return {}, [(f"--option {'.'.join(map(str, e['loc']))}", e["msg"]) for e in exc.errors()]
    return model.model_dump(include=set(given)), []


# --- tasks ---------------------------------------------------------------------------------


def task_id(node_id: str) -> str:
    """The Airflow task id of an IR node: `[A-Za-z0-9_]` only (`train.churn` -> `train_churn`)."""
    return TASK_ID.sub("_", node_id)


def task_table(ir: Graph, settings: dict) -> list[Task]:
    """Every task in topological order; a rollout is its steps, the holds between them and
    the decision.  Ids that collide after sanitizing are an error naming both nodes."""
    tasks: list[Task] = []
    for node in ir.nodes:
        upstream = tuple(sorted({task_id(p.node) for p in node.inputs}))
        kwargs = _task_kwargs(node, settings)
        if node.kind == "Rollout":
            tasks += _rollout_tasks(node, upstream, kwargs)
        else:
            tasks.append(Task(task_id(node.id), node.id, "gate" if node.kind == "Gate" else "node",
                              None, upstream, kwargs))
    problems = _long_ids(ir, tasks) + _collisions(tasks)
    if problems:
        raise UnsupportedError(name, problems)
    return tasks


def _rollout_tasks(node, upstream: tuple[str, ...], kwargs: dict) -> list[Task]:
    base, out, last = task_id(node.id), [], upstream
    for k, st in enumerate(node.run_steps(), start=1):
        out.append(Task(f"{base}_step{k}", node.id, "step", k, last, kwargs))
        last = (f"{base}_step{k}",)
        if st.hold_seconds:
            out.append(Task(f"{base}_hold{k}", node.id, "hold", st.hold_seconds, last))
            last = (f"{base}_hold{k}",)
    decision = dict(kwargs, trigger_rule="none_failed") if out else kwargs
    # the decision also reads the gates directly, so a failed gate skips it
    return out + [Task(base, node.id, "decision", None, tuple(sorted(set(last) | set(upstream))), decision)]


def _collisions(tasks: list[Task]) -> list[tuple[str, str]]:
    seen: dict[str, str] = {}
    problems = []
    for t in tasks:
        if t.task_id in seen and seen[t.task_id] != t.node_id:
            problems.append((t.node_id, f"its task id {t.task_id!r} is also the task id of {seen[t.task_id]}"))
        seen.setdefault(t.task_id, t.node_id)
    return problems


def _long_ids(ir: Graph, tasks: list[Task]) -> list[tuple[str, str]]:
    """One problem per node with a task id longer than Airflow takes (the DAG would not import)."""
    longest: dict[str, str] = {}
    for t in tasks:
        if len(t.task_id) > ID_MAX and len(t.task_id) > len(longest.get(t.node_id, "")):
            longest[t.node_id] = t.task_id
    return [(_where(ir.node(node_id)), f"its task id {_short(task)!r} is {len(task):,} characters; Airflow "
             f"allows at most {ID_MAX}: shorten the {_NAMED_BY[ir.node(node_id).kind]}'s name")
            for node_id, task in longest.items()]


_NAMED_BY = {"Source": "source", "Transform": "feature", "Train": "model", "Evaluate": "model",
             "Gate": "gate", "Rollout": "model"}  # the spec name a node's id is made of


def _where(node: Node) -> str:
    """A node as problems name it: its id (cut when long) and its spec position."""
    span = node.span
    return _short(node.id) + (f" ({span.file}:{span.line}:{span.col})" if span else "")


def _task_kwargs(node: Node, settings: dict) -> dict:
    kwargs: dict[str, Any] = {"doc_md": doc_md(node.description, f"{node.kind} `{node.id}`", node)}
    if node.retries is not None:
        kwargs["retries"] = node.retries
    res = node.resources
    if res is not None and res.cpus:
        kwargs["pool_slots"] = max(1, math.ceil(res.cpus))
    if settings["operator"] == "kubernetes":
        kwargs["name"] = pod_name(node.id)
        requests = _k8s_requests(res)
        if requests:
            kwargs["container_resources"] = requests
    return kwargs


def pod_name(node_id: str) -> str:
    """A DNS label for the pod (`pipespec-train-churn`); long ids keep a hash suffix (the
    operator appends its own random suffix, so the name stays well under 63)."""
    return kube.dns_label("pipespec-" + node_id, 50)


def _k8s_requests(res) -> dict | None:
    """Requests (and limits, where Kubernetes needs them) of a node's `resources`."""
    if res is None:
        return None
    requests, limits = {}, {}
    if res.cpus:
        requests["cpu"] = kube.cpu_quantity(res.cpus)
    if res.memory_bytes:
        requests["memory"] = limits["memory"] = kube.memory_quantity(res.memory_bytes)
    if res.gpus:
        limits["nvidia.com/gpu"] = str(res.gpus)
    out = {k: v for k, v in (("requests", requests), ("limits", limits)) if v}
    return out or None
