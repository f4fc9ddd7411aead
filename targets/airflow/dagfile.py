"""The DAG file of the `airflow` target: one statement per task, then the `>>` wiring, laid
out as `ruff format` would (layout.py).  Every spec value enters it through the `py` and
`ident` filters of `base.python_template`; nothing else reaches the text."""

from __future__ import annotations

import functools
import keyword
import re
from dataclasses import dataclass
from importlib import resources

from pipespec.compiler.ir import Graph, Node
from pipespec.compiler.spec import parse_duration

from ..base import python_template
from .layout import Arg, Str, arg, fits, spelled

_TEMPLATE = resources.files(__package__).joinpath("dag.py.j2").read_text(encoding="utf-8")
# exit codes of `pipespec step` (runtime/stepcli.py; not imported, so compiling stays light —
# a test checks they agree)
EXIT_GATE, EXIT_ROLLED_BACK, EXIT_DECIDED = 3, 4, 5


@dataclass(frozen=True)
class Statement:
    """`var = operator(args...)`: one task of the DAG file."""

    var: str
    operator: str
    args: tuple[Arg, ...]


@dataclass(frozen=True)
class Wiring:
    """`[upstream, ...] >> downstream`, on one line when it fits (`inline`)."""

    upstream: tuple[str, ...]
    downstream: str
    inline: bool


_OPERATORS = {"python": {"gate": "PipespecGate"}, "bash": {}, "kubernetes": {}}
_DEFAULT_OPERATOR = {"python": "PipespecTask", "bash": "PipespecStep", "kubernetes": "PipespecPod"}
_KWARG_ORDER = ("name", "container_resources", "trigger_rule", "retries", "pool_slots", "doc_md")
_RESERVED = frozenset({
    "DAG", "HERE", "Hold", "IMAGE", "IR_FILE", "IR_IN_POD", "IR_MATCHES", "IR_NAME", "IR_SHA256",
    "NAMESPACE", "ROOT", "STORE", "COMMAND", "BashOperator", "KubernetesPodOperator", "PipespecGate",
    "PipespecPod", "PipespecStep", "PipespecTask", "PythonOperator", "ShortCircuitOperator",
    "WaitSensor", "annotations", "dag", "datetime", "exit_code", "functools", "hashlib", "ir", "k8s",
    "os", "run"})
VAR_MAX = 60  # longer task ids get `task_<n>` as their variable, so every line fits in 100


def render(ir: Graph, s: dict, tasks: list, ir_name: str, ir_sha256: str) -> str:
    """The DAG file of `tasks` (the target's task table) with settings `s`."""
    flavour = s["operator"]
    names = _variables(tasks)
    statements = [_statement(t, names[t.task_id], flavour) for t in tasks]
    dag_args = _dag_args(ir, s)
    return _template().render(
        flavour=flavour, constants=_constants(s, ir_name, ir_sha256), dag_args=dag_args,
        statements=statements, wiring=[_wiring(t, names) for t in tasks if t.upstream],
        holds=any(t.what == "hold" for t in tasks),
        uses_datetime=bool(s.get("start_date") or s.get("retry_delay")) or any(t.what == "hold" for t in tasks),
        uses_k8s_models=any(a.kind == "resources" for st in statements for a in st.args),
        exit_rolled_back=EXIT_ROLLED_BACK, skip_step=(EXIT_GATE, EXIT_ROLLED_BACK, EXIT_DECIDED),
        skip_other=(EXIT_GATE,))


@functools.cache
def _template():
    """Compiled once per process: Jinja compiling the template costs more than rendering it."""
    return python_template(_TEMPLATE)


def _constants(s: dict, ir_name: str, ir_sha256: str) -> list[Arg]:
    """Module-level names: the IR, the store and root (compiled in, or read where the DAG is
    parsed), and for pods the image, namespace and where the IR is inside them."""
    out = [arg("IR_NAME", ir_name, 0, "assign"), arg("IR_SHA256", ir_sha256, 0, "assign")]
    pods = s["operator"] == "kubernetes"
    for key, env, default in (("STORE", "PIPESPEC_STORE", "/pipespec/store" if pods else ".pipespec"),
                              ("ROOT", "PIPESPEC_ROOT", "/pipespec" if pods else None)):
        given = s.get(key.lower())
        out.append(arg(key, given, 0, "assign") if given else Arg(key, spelled((env, default)), kind="env"))
    if pods:
        out += [arg("IR_IN_POD", s.get("ir") or f"/pipespec/{ir_name}", 0, "assign"),
                arg("IMAGE", s.get("image"), 0, "assign"),
                arg("NAMESPACE", s.get("namespace") or "default", 0, "assign")]
    return out


def _dag_args(ir: Graph, s: dict) -> list[Arg]:
    schedule = s.get("schedule")
    out = [arg("dag_id", s["dag_id"], 4),
           arg("description", summary(ir.description) or f"pipespec pipeline {ir.pipeline}", 4),
           arg("doc_md", doc_md(ir.description, f"pipespec pipeline `{ir.pipeline}` from "
                                                f"{ir.source_file or 'a spec'}"), 4)]
    if s.get("start_date"):
        out.append(Arg("start_date", tuple(int(p) for p in s["start_date"].split("-")), kind="datetime"))
    out.append(arg("schedule", schedule, 4))
    if schedule == "@continuous":
        out.append(Arg("max_active_runs", 1, kind="continuous"))
    out += [arg("catchup", bool(s.get("catchup")), 4), _tags(sorted(set(s.get("tags", []))))]
    default_args = tuple(_default_args(s))
    out.append(Arg("default_args", default_args, kind="dict") if default_args else Arg("default_args", {}))
    return out


def _tags(tags: list[str]) -> Arg:
    inline = arg("tags", tags, 4)
    if inline.kind == "literal" and fits(4, "tags=", repr(inline.value), ","):
        return inline
    return Arg("tags", tuple(arg("", t, 8, "item") for t in tags), kind="list")


def _default_args(s: dict) -> list[Arg]:
    out = [arg(k, s[k], 8, "entry") for k in ("owner", "retries", "pool") if s.get(k) is not None]
    if s.get("retry_delay"):
        out.append(Arg(Str("retry_delay"), timedelta(parse_duration(s["retry_delay"])), kind="timedelta"))
    return out


def _statement(t, var: str, flavour: str) -> Statement:
    args = [arg("task_id", t.task_id, 8)]
    if t.what == "hold":
        args += [Arg("time_to_wait", timedelta(t.arg), kind="timedelta"), Arg("deferrable", True)]
        return Statement(var, "Hold", tuple(args))
    args.append(arg("node_id", t.node_id, 8))
    if t.what == "step":
        args.append(Arg("rollout_step", t.arg))
    for key in _KWARG_ORDER:
        if key == "container_resources" and key in t.kwargs:
            value = spelled(t.kwargs[key])
            args.append(Arg(key, tuple((k, value[k]) for k in ("requests", "limits") if k in value),
                            kind="resources"))
        elif key in t.kwargs:
            args.append(arg(key, t.kwargs[key], 8))
    return Statement(var, _OPERATORS[flavour].get(t.what, _DEFAULT_OPERATOR[flavour]), tuple(args))


def _wiring(t, names: dict[str, str]) -> Wiring:
    upstream = tuple(names[u] for u in t.upstream)
    down = names[t.task_id]
    text = upstream[0] if len(upstream) == 1 else "[" + ", ".join(upstream) + "]"
    return Wiring(upstream, down, fits(4, text, " >> ", down))


def _variables(tasks: list) -> dict[str, str]:
    """Task id -> its variable in the DAG file: the id itself where it is a short identifier
    that names nothing else in the file, else `task_<position>`."""
    names: dict[str, str] = {}
    taken, ids = set(_RESERVED), {t.task_id for t in tasks}
    for i, t in enumerate(tasks, start=1):
        var = t.task_id
        if not (var.isidentifier() and var.isascii() and len(var) <= VAR_MAX
                and not keyword.iskeyword(var) and var not in taken):
            var = f"task_{i}"
            while var in taken or var in ids:
                var += "_"
        names[t.task_id] = var
        taken.add(var)
    return names


def timedelta(seconds: int) -> tuple[str, int]:
    """(unit, count) of a duration in its largest whole unit: 1800 s is `minutes=30`."""
    for unit, size in (("days", 86400), ("hours", 3600), ("minutes", 60)):
        if seconds % size == 0:
            return Str(unit), seconds // size
    return Str("seconds"), seconds


SUMMARY_MAX = 200


def summary(text: str | None) -> str:
    """The DAG's one-line description: the description's first line; when that is longer
    than 200 characters, its first sentence, else its words up to 200 characters and `…`."""
    lines = (text or "").strip().splitlines()
    first = lines[0].strip() if lines else ""
    if len(first) <= SUMMARY_MAX:
        return first
    sentence = re.match(r"(.+?[.!?])\s", first)
    if sentence and len(sentence.group(1)) <= SUMMARY_MAX:
        return sentence.group(1)
    cut = first[:SUMMARY_MAX].rsplit(" ", 1)[0] if " " in first[:SUMMARY_MAX] else first[:SUMMARY_MAX - 1]
    return cut.rstrip(" ,;:") + "…"


def doc_md(text: str | None, what: str, node: Node | None = None) -> str:
    """Markdown for the Airflow UI.  It always ends with the generated footer: Airflow reads
    a `doc_md` ending in `.md` as a file path, which a spec must never trigger."""
    where = f" (spec line {node.span.line})" if node is not None and node.span else ""
    return ((text.rstrip() + "\n\n") if text else "") + f"*{what}{where}, generated by pipespec.*"
