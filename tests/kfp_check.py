"""Test helpers for the kubeflow target: a semantic validator of a KFP v2 PipelineSpec (on top
of the protobuf parse) and a driver that runs it the way a KFP backend would, as local
subprocesses: each task's container command and args exactly as written, placeholders
resolved, in dependency order, trigger conditions honoured, retries applied."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from google.protobuf import json_format
from kfp.pipeline_spec import pipeline_spec_pb2

NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
INPUT = re.compile(r"\{\{\$\.inputs\.parameters\['([^']+)'\]\}\}")
OUTPUT = re.compile(r"\{\{\$\.outputs\.parameters\['([^']+)'\]\.output_file\}\}")
CLAUSE = re.compile(r"^inputs\.parameter_values\['([^']+)'\] == (true|false)$")
GO_BOOL = {"1": True, "t": True, "T": True, "TRUE": True, "true": True, "True": True,
           "0": False, "f": False, "F": False, "FALSE": False, "false": False, "False": False}


def parse(spec: dict) -> pipeline_spec_pb2.PipelineSpec:
    """Strict protobuf parse of the whole spec and of every executor (deploymentSpec is a Struct)."""
    message = json_format.ParseDict(spec, pipeline_spec_pb2.PipelineSpec(), ignore_unknown_fields=False)
    for executor in spec["deploymentSpec"]["executors"].values():
        json_format.ParseDict(executor, pipeline_spec_pb2.PipelineDeploymentConfig.ExecutorSpec(),
                              ignore_unknown_fields=False)
    return message


def problems(spec: dict) -> list[str]:
    """Everything a KFP backend would reject or mis-run that the protobuf schema does not catch."""
    out: list[str] = []
    components, executors = spec["components"], spec["deploymentSpec"]["executors"]
    tasks = spec["root"]["dag"]["tasks"]
    root_inputs = spec["root"].get("inputDefinitions", {}).get("parameters", {})
    if not NAME.match(spec["pipelineInfo"]["name"]):
        out.append(f"pipeline name {spec['pipelineInfo']['name']!r}")
    for label, comp in components.items():
        out += _component_problems(label, comp, executors)
    used = set()
    for name, task in tasks.items():
        comp = components.get(task["componentRef"]["name"])
        used.add(task["componentRef"]["name"])
        if not NAME.match(name):
            out.append(f"task name {name!r}")
        if comp is None:
            out.append(f"{name}: unknown component {task['componentRef']['name']}")
            continue
        out += _task_problems(name, task, comp, tasks, components, root_inputs)
    out += [f"component {c} is never used" for c in sorted(set(components) - used)]
    out += [f"executor {e} is never used" for e in sorted(set(executors) - {c.get("executorLabel") for c in components.values()})]
    cycle = find_cycle(tasks)
    if cycle:
        out.append("cycle: " + " -> ".join(cycle))
    return out


def _component_problems(label: str, comp: dict, executors: dict) -> list[str]:
    if not NAME.match(label) or comp.get("executorLabel") not in executors:
        return [f"component {label}: bad name or missing executor {comp.get('executorLabel')}"]
    container = executors[comp["executorLabel"]]["container"]
    inputs = comp.get("inputDefinitions", {}).get("parameters", {})
    outputs = comp.get("outputDefinitions", {}).get("parameters", {})
    text = " ".join(container["command"] + container.get("args", []))
    bad = [n for n in INPUT.findall(text) if n not in inputs] + [n for n in OUTPUT.findall(text) if n not in outputs]
    leftover = INPUT.sub("", OUTPUT.sub("", text))
    return ([f"{label}: placeholder for undeclared {bad}"] if bad else []) + \
           ([f"{label}: unknown placeholder in {leftover!r}"] if "{{$" in leftover else [])


def _task_problems(name, task, comp, tasks, components, root_inputs) -> list[str]:
    out = []
    declared = comp.get("inputDefinitions", {}).get("parameters", {})
    given = task.get("inputs", {}).get("parameters", {})
    out += [f"{name}: input {k} not declared" for k in given if k not in declared]
    out += [f"{name}: input {k} not given" for k, d in declared.items() if k not in given and not d.get("isOptional")]
    deps = set(task.get("dependentTasks", []))
    out += [f"{name}: depends on unknown task {d}" for d in deps if d not in tasks]
    for key, value in given.items():
        if "componentInputParameter" in value and value["componentInputParameter"] not in root_inputs:
            out.append(f"{name}.{key}: unknown pipeline input")
        if "taskOutputParameter" in value:
            ref = value["taskOutputParameter"]
            producer = tasks.get(ref["producerTask"])
            if producer is None or ref["producerTask"] not in deps:
                out.append(f"{name}.{key}: producer {ref['producerTask']} missing or not a dependency")
                continue
            produced = components.get(producer["componentRef"]["name"], {}).get("outputDefinitions", {})
            produced = produced.get("parameters", {})
            if ref["outputParameterKey"] not in produced:
                out.append(f"{name}.{key}: {ref['producerTask']} has no output {ref['outputParameterKey']}")
    condition = task.get("triggerPolicy", {}).get("condition")
    if condition:
        for clause in condition.split(" && "):
            m = CLAUSE.match(clause)
            if not m or declared.get(m.group(1), {}).get("parameterType") != "BOOLEAN":
                out.append(f"{name}: condition clause {clause!r}")
    return out


def find_cycle(tasks: dict) -> list[str] | None:
    state: dict[str, int] = {}

    def visit(n, path):
        state[n] = 1
        for d in sorted(tasks[n].get("dependentTasks", [])):
            if state.get(d) == 1:
                return path + [n, d]
            if d in tasks and d not in state:
                found = visit(d, path + [n])
                if found:
                    return found
        state[n] = 2
        return None

    for n in sorted(tasks):
        if n not in state:
            found = visit(n, [])
            if found:
                return found
    return None


# --- the driver --------------------------------------------------------------------------


@dataclass
class TaskRun:
    status: str  # succeeded | failed | not_triggered | skipped (an upstream did not succeed)
    attempts: int = 0
    argv: list[str] = field(default_factory=list)
    returncode: int | None = None
    outputs: dict = field(default_factory=dict)
    stderr: str = ""


def order(tasks: dict) -> list[str]:
    """Topological order of the DAG, ties by name (what the backend may pick)."""
    done, out = set(), []
    while len(out) < len(tasks):
        ready = sorted(n for n in tasks if n not in done and set(tasks[n].get("dependentTasks", [])) <= done)
        assert ready, "cycle"
        out.append(ready[0])
        done.add(ready[0])
    return out


def run_pipeline(spec: dict, arguments: dict, workdir: Path) -> dict[str, TaskRun]:
    tasks = spec["root"]["dag"]["tasks"]
    pipeline_inputs = {k: d.get("defaultValue") for k, d in spec["root"]["inputDefinitions"]["parameters"].items()}
    pipeline_inputs.update(arguments)
    assert all(v is not None for v in pipeline_inputs.values()), f"missing pipeline arguments: {pipeline_inputs}"
    runs: dict[str, TaskRun] = {}
    for name in order(tasks):
        task = tasks[name]
        if any(runs[d].status != "succeeded" for d in task.get("dependentTasks", [])):
            runs[name] = TaskRun("skipped")
            continue
        inputs = resolve_inputs(task, pipeline_inputs, runs)
        condition = task.get("triggerPolicy", {}).get("condition")
        if condition and not evaluate(condition, inputs):
            runs[name] = TaskRun("not_triggered")
            continue
        runs[name] = run_task(spec, name, task, inputs, workdir / name)
    return runs


def resolve_inputs(task: dict, pipeline_inputs: dict, runs: dict[str, TaskRun]) -> dict:
    values = {}
    for key, ref in task.get("inputs", {}).get("parameters", {}).items():
        if "runtimeValue" in ref:
            values[key] = ref["runtimeValue"]["constant"]
        elif "componentInputParameter" in ref:
            values[key] = pipeline_inputs[ref["componentInputParameter"]]
        else:
            out = ref["taskOutputParameter"]
            values[key] = runs[out["producerTask"]].outputs[out["outputParameterKey"]]
    return values


def evaluate(condition: str, inputs: dict) -> bool:
    """The `&&` of `inputs.parameter_values['x'] == true|false` clauses (all the target writes)."""
    result = True
    for clause in condition.split(" && "):
        m = CLAUSE.match(clause)
        assert m, f"unsupported condition {clause!r}"
        result = result and inputs[m.group(1)] is (m.group(2) == "true")
    return result


def text(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value).removesuffix(".0") if value.is_integer() else repr(value)
    return str(value)


def command_line(spec: dict, task: dict, inputs: dict, outdir: Path) -> tuple[list[str], dict]:
    comp = spec["components"][task["componentRef"]["name"]]
    container = spec["deploymentSpec"]["executors"][comp["executorLabel"]]["container"]
    declared = comp.get("outputDefinitions", {}).get("parameters", {})
    files = {k: outdir / "outputs" / k for k in declared}

    def fill(arg: str) -> str:
        arg = INPUT.sub(lambda m: text(inputs[m.group(1)]), arg)
        return OUTPUT.sub(lambda m: str(files[m.group(1)]), arg)

    argv = [fill(a) for a in container["command"] + container.get("args", [])]
    if argv[0] == "pipespec" and shutil.which("pipespec") is None:
        argv = [sys.executable, "-m", "pipespec"] + argv[1:]
    return argv, {k: (files[k], d["parameterType"]) for k, d in declared.items()}


def run_task(spec: dict, name: str, task: dict, inputs: dict, outdir: Path) -> TaskRun:
    argv, outputs = command_line(spec, task, inputs, outdir)
    attempts = 1 + int(task.get("retryPolicy", {}).get("maxRetryCount", 0))
    for attempt in range(1, attempts + 1):
        done = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
        if done.returncode == 0:
            return TaskRun("succeeded", attempt, argv, 0, read_outputs(outputs), done.stderr)
    return TaskRun("failed", attempts, argv, done.returncode, {}, done.stderr + done.stdout)


def read_outputs(outputs: dict) -> dict:
    """As the v2 launcher does: the file's text, parsed by the declared type (Go ParseBool)."""
    values = {}
    for key, (path, kind) in outputs.items():
        raw = path.read_text()
        values[key] = GO_BOOL[raw.strip()] if kind == "BOOLEAN" else raw
    return values
