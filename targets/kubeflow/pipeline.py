"""The KFP v2 PipelineSpec of an IR: one task per node, one component per distinct
(kind, inputs, resources) named after the tasks that use it, every executor a container
running `pipespec step`.

Each task's inputs are the pipeline's `ir`, `store` and `root`, its node id and the node's
IR fingerprint (constants), and every upstream task's `digest` (of its output, written by
`pipespec step --digest-file`): so KFP's own cache key follows the data — within one IR
version (the content-named IR's URL is an input too, so a changed spec starts afresh), a task
is reused when its inputs' bytes are unchanged.  Each task
also outputs `result`, the JSON line `pipespec step` prints, for people reading the run.
Gates also output `passed` (BOOLEAN); a rollout's
`triggerPolicy.condition` requires every gate it depends on to have passed.
"""

from __future__ import annotations

import re
from typing import Any

from pipespec.compiler.ir import Graph, Node, Resources

from ..kube import cpu_quantity, memory_quantity
from .names import KFP_MAX, kfp_name
from .options import Options

SCHEMA_VERSION = "2.1.0"
API_VERSION = "pipelines.kubeflow.org/v2beta1"
RESULT, DIGEST, PASSED = "result", "digest", "passed"
COMPONENT_PREFIX = "comp-"  # as the kfp SDK names components (kfp.dsl.utils.sanitize_component_name)
PIPELINE_INPUTS = {
    "ir": ("pipespec/{ir_file}", "URL or path of the pipeline's IR JSON (the .ir.json file beside this one)"),
    "store": ("pipespec/store", "pipespec store (directory or fsspec URL) every task reads and writes"),
    "root": ("pipespec", "directory or URL the spec's relative source paths resolve against"),
}
KFP_CACHED_KINDS = frozenset({"Transform", "Train", "Evaluate"})
"""Kinds whose output is a function of their KFP inputs alone.  Sources read data KFP does not
see, gates and rollouts read the model registry (and rollouts change it): always run (the
pipespec store still reuses their cached results)."""
_ROLE = re.compile(r"^[a-z][a-z_]*$")
_GPU = "nvidia.com/gpu"


def param(name: str) -> str:
    return "{{$.inputs.parameters['" + name + "']}}"


def output_file(name: str) -> str:
    return "{{$.outputs.parameters['" + name + "'].output_file}}"


def pipeline_spec(ir: Graph, opts: Options, tasks: dict[str, str], ir_file: str,
                  fingerprints: dict[str, str] | None = None, ir_sha256: str | None = None) -> dict:
    """The PipelineSpec as data (JSON field names, as `json_format.MessageToDict` writes them)."""
    signatures = {n.id: signature(n) for n in ir.nodes}
    labels = component_labels(ir, signatures, tasks)
    fingerprints = fingerprints or {n.id: n.fingerprint() for n in ir.nodes}
    spec = {
        "pipelineInfo": pipeline_info(ir),
        "schemaVersion": SCHEMA_VERSION,
        "components": {labels[s]: component(s, labels[s]) for s in labels},
        "deploymentSpec": {"executors": {executor_label(labels[s]): executor(s, opts, ir_sha256)
                                         for s in labels}},
        "root": {"dag": {"tasks": {tasks[n.id]: task(n, labels[signatures[n.id]], tasks, opts, fingerprints[n.id])
                                   for n in ir.nodes}},
                 "inputDefinitions": {"parameters": root_inputs(opts, ir_file)}},
    }
    if opts.pipeline_root:
        spec["defaultPipelineRoot"] = opts.pipeline_root
    return spec


def pipeline_info(ir: Graph) -> dict:
    info = {"name": kfp_name(ir.pipeline), "displayName": ir.pipeline}
    if ir.description:
        info["description"] = ir.description
    return info


def root_inputs(opts: Options, ir_file: str) -> dict:
    """`ir`, `store`, `root`: defaults under the pipeline root when there is one, else required."""
    params = {}
    for name, (default, description) in PIPELINE_INPUTS.items():
        params[name] = {"parameterType": "STRING", "description": description}
        if opts.pipeline_root:
            params[name]["defaultValue"] = opts.pipeline_root.rstrip("/") + "/" + default.format(ir_file=ir_file)
            params[name]["isOptional"] = True
    return params


# --- components ------------------------------------------------------------------------


def input_names(node: Node) -> tuple[tuple[str, str], ...]:
    """(input name, upstream node id) per input port: the role, or `gate_<i>` for gates."""
    names, gates = [], 0
    for k, port in enumerate(node.inputs):
        if port.role.startswith("gate:"):
            names.append((f"gate_{gates}", port.node))
            gates += 1
        else:
            names.append((port.role if _ROLE.match(port.role) else f"upstream_{k}", port.node))
    return tuple(names)


def signature(node: Node) -> tuple:
    """What makes two nodes share a component: kind, upstream input names and resources."""
    res = node.resources or Resources()
    return node.kind, tuple(name for name, _ in input_names(node)), (res.cpus, res.memory_bytes, res.gpus or 0)


def component_labels(ir: Graph, signatures: dict[str, tuple], tasks: dict[str, str]) -> dict[tuple, str]:
    """Each component named after the task that uses it (`comp-gate-model-quality`); one that
    several tasks share, after the first and how many more (`comp-source-customers-and-2-more`).
    KFP's own rule for the characters (`kfp.dsl.utils.maybe_rename_for_k8s`); at most 128 with
    the prefix (cut with a hash); a name already taken gets `-2`, `-3`... in the IR's order."""
    users: dict[tuple, list[str]] = {}
    for node in ir.nodes:
        users.setdefault(signatures[node.id], []).append(tasks[node.id])
    labels: dict[tuple, str] = {}
    taken: set[str] = set()
    for sig, names in users.items():
        text = names[0] if len(names) == 1 else f"{names[0]}-and-{len(names) - 1}-more"
        label, k = _component_label(text), 1
        while label in taken:
            k += 1
            label = _component_label(f"{text}-{k}")
        labels[sig] = label
        taken.add(label)
    return labels


def _component_label(text: str) -> str:
    return COMPONENT_PREFIX + kfp_name(text, KFP_MAX - len(COMPONENT_PREFIX))


def executor_label(component_label: str) -> str:
    return "exec-" + component_label.removeprefix(COMPONENT_PREFIX)


def component(sig: tuple, label: str) -> dict:
    kind, inputs, _ = sig
    params = {name: {"parameterType": "STRING"} for name in ("fingerprint", "ir", "node", "root", "store")}
    for name in inputs:
        params[name] = {"parameterType": "STRING"}
        if name.startswith("gate_"):
            params["passed_" + name.removeprefix("gate_")] = {"parameterType": "BOOLEAN"}
    outputs = {RESULT: {"parameterType": "STRING"}, DIGEST: {"parameterType": "STRING"}}
    if kind == "Gate":
        outputs[PASSED] = {"parameterType": "BOOLEAN"}
    return {"executorLabel": executor_label(label), "inputDefinitions": {"parameters": params},
            "outputDefinitions": {"parameters": outputs}}


def executor(sig: tuple, opts: Options, ir_sha256: str | None) -> dict:
    """The container; `--ir-sha256` makes a task refuse an `ir` input other than the IR this
    pipeline was compiled with (the input can be overridden when a run is submitted)."""
    kind, _, resources = sig
    args = [param("ir"), *(["--ir-sha256", ir_sha256] if ir_sha256 else []), "--node", param("node"), "--store", param("store"), "--root", param("root"),
            "--no-retries", "--result-file", output_file(RESULT), "--digest-file", output_file(DIGEST)]
    if kind == "Gate":
        args += ["--passed-file", output_file(PASSED)]
    container = {"image": opts.image, "command": ["pipespec", "step"], "args": args}
    limits = resource_limits(*resources)
    if limits:
        container["resources"] = limits
    return {"container": container}


def resource_limits(cpus: float | None, memory: int | None, gpus: int) -> dict:
    """Limits as the kfp SDK writes them: legacy numbers (GB for memory) and quantities."""
    out: dict[str, Any] = {}
    if cpus:
        out.update(cpuLimit=float(cpus), resourceCpuLimit=cpu_quantity(cpus))
    if memory:
        out.update(memoryLimit=memory / 10**9, resourceMemoryLimit=memory_quantity(memory))
    if gpus:
        out["accelerator"] = {"count": str(gpus), "resourceCount": str(gpus), "type": _GPU, "resourceType": _GPU}
    return out


# --- tasks -----------------------------------------------------------------------------


def task(node: Node, label: str, tasks: dict[str, str], opts: Options, fingerprint: str) -> dict:
    ports = input_names(node)
    params = {name: {"componentInputParameter": name} for name in ("ir", "root", "store")}
    params["node"] = {"runtimeValue": {"constant": node.id}}
    params["fingerprint"] = {"runtimeValue": {"constant": fingerprint}}
    for name, upstream in ports:
        params[name] = _output_of(tasks[upstream], DIGEST)
        if name.startswith("gate_"):
            params["passed_" + name.removeprefix("gate_")] = _output_of(tasks[upstream], PASSED)
    spec = {"taskInfo": {"name": node.id}, "componentRef": {"name": label}, "inputs": {"parameters": params},
            "cachingOptions": {"enableCache": opts.caching and node.kind in KFP_CACHED_KINDS}}
    if ports:
        spec["dependentTasks"] = sorted({tasks[upstream] for _, upstream in ports})
    if node.retries:
        spec["retryPolicy"] = {"maxRetryCount": node.retries, "backoffDuration": "0s", "backoffFactor": 2.0,
                               "backoffMaxDuration": "3600s"}
    gates = [name for name, _ in ports if name.startswith("gate_")]
    if gates:
        spec["triggerPolicy"] = {"condition": condition(gates)}
    return spec


def condition(gates: list[str]) -> str:
    """Every gate passed, in the CEL the KFP driver evaluates over the task's inputs."""
    return " && ".join(f"inputs.parameter_values['passed_{g.removeprefix('gate_')}'] == true" for g in gates)


def _output_of(producer: str, key: str) -> dict:
    return {"taskOutputParameter": {"producerTask": producer, "outputParameterKey": key}}


# --- the Kubernetes-native form ----------------------------------------------------------


def kubernetes_documents(ir: Graph, spec: dict, opts: Options, digest: str) -> list[dict]:
    """Pipeline + PipelineVersion resources (what `kfp` writes with kubernetes_manifest_format),
    the version named after the content so applying a changed spec adds a version."""
    name = spec["pipelineInfo"]["name"]
    version = name[:KFP_MAX - 11].rstrip("-") + "-" + digest[:10]
    meta = {"namespace": opts.namespace} if opts.namespace else {}
    pipeline = {"apiVersion": API_VERSION, "kind": "Pipeline", "metadata": {"name": name, **meta},
                "spec": {"displayName": ir.pipeline}}
    pipeline_version = {"apiVersion": API_VERSION, "kind": "PipelineVersion",
                        "metadata": {"name": version, **meta},
                        "spec": {"displayName": f"{ir.pipeline} {digest[:10]}", "pipelineName": name,
                                 "pipelineSpec": spec}}
    if ir.description:
        pipeline["spec"]["description"] = pipeline_version["spec"]["description"] = ir.description
    return [pipeline, pipeline_version]

