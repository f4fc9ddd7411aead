"""The `kubeflow` target: a KFP v2 pipeline and KServe rollout manifests.

Files: `pipeline.yaml` (a PipelineSpec, schemaVersion 2.1.0, or with `manifest=kubernetes`
the Pipeline + PipelineVersion resources), the canonical IR every task runs
(`<pipeline>.<sha256 prefix>.ir.json`, content-named so a manifest always names the IR it
was compiled with) and, for a spec with a rollout, `serving/` (InferenceServices and a
README).  Every spec string enters the YAML as data through `yaml.safe_dump`.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

import yaml
from pipespec.compiler.ir import Graph

from ..base import Artifact, UnsupportedError, ir_file
from . import names, options, pipeline, serving

name = "kubeflow"
description = "a Kubeflow Pipelines v2 pipeline.yaml (+ KServe rollout manifests in serving/)"
OPTIONS = options.OPTIONS
PIPELINE_FILE = "pipeline.yaml"


def compile(ir: Graph, options_: dict[str, Any]) -> Artifact:  # noqa: A001 - the Target protocol
    opts, problems = options.resolve(ir, options_)
    tasks, clashes = names.assign([n.id for n in ir.nodes])
    manifests, readme, warnings, serving_problems = serving.build(ir, opts)
    problems += [(_at(ir, node_id), why) for node_id, why in clashes + serving_problems]
    if problems:
        raise UnsupportedError(name, problems)
    ir_name, ir_json = ir_file(ir)
    spec = pipeline.pipeline_spec(ir, opts, tasks, ir_name, fingerprints(ir, ir_json),
                                  hashlib.sha256(ir_json).hexdigest())
    files = {PIPELINE_FILE: dump_pipeline(ir, spec, opts), ir_name: ir_json}
    files.update({path: dump(doc) for path, doc in manifests.items()})
    if readme:
        files["serving/README.md"] = readme.encode()
    if not (options_.get("image") or (json.loads(ir.targets).get("kubeflow") or {}).get("image")):
        warnings.insert(0, f"{ir.source_file or ir.pipeline}: warning: kubeflow: no image given "
                           f"(targets.kubeflow.image or --option image=REF): the tasks name the "
                           f"placeholder {options.DEFAULT_IMAGE!r}, an image holding pipespec you must build")
    return Artifact(files, warnings=tuple(warnings))


def fingerprints(ir: Graph, ir_json: bytes) -> dict[str, str]:
    """Node id -> fingerprint, read back from the canonical JSON that already holds them (one
    node per line, in IR order; strings there escape `"`, so the key cannot occur in a value)."""
    found = _FINGERPRINT.findall(ir_json)
    if len(found) != len(ir.nodes):
        return {n["id"]: n["fingerprint"] for n in json.loads(ir_json)["nodes"]}
    return {node.id: fp.decode() for node, fp in zip(ir.nodes, found)}


_FINGERPRINT = re.compile(rb'"fingerprint":"([0-9a-f]{64})"')


def dump_pipeline(ir: Graph, spec: dict, opts: options.Options) -> bytes:
    if opts.manifest == "pipeline":
        return dump(spec)
    digest = hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()
    return dump_all(pipeline.kubernetes_documents(ir, spec, opts, digest))


_DUMPER = getattr(yaml, "CSafeDumper", yaml.SafeDumper)


def dump(data: Any) -> bytes:
    return yaml.dump(data, Dumper=_DUMPER, sort_keys=True, allow_unicode=False, width=10**6).encode()


def dump_all(documents: list) -> bytes:
    return yaml.dump_all(documents, Dumper=_DUMPER, sort_keys=True, allow_unicode=False, width=10**6).encode()


def _at(ir: Graph, node_id: str) -> str:
    try:
        return f"{node_id} ({serving.where(ir, ir.node(node_id))})"
    except KeyError:
        return node_id
