"""The kubeflow target's options: `targets.kubeflow` in the spec (carried by the IR), then
`--option KEY=VALUE` on the command line, each checked before anything is built."""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from typing import Any

from pipespec.compiler.ir import Graph

from ..base import unknown_options
from .. import kube
from .names import DNS_SUBDOMAIN

DEFAULT_IMAGE = "pipespec"

OPTIONS = {
    "image": f"container image holding pipespec that every task runs (default: {DEFAULT_IMAGE})",
    "pipeline_root": "KFP pipeline root; also the default location of the IR, store and data",
    "namespace": "Kubernetes namespace of the PipelineVersion and InferenceService resources",
    "service_account": "service account of the InferenceServices (KFP takes a run's at submission)",
    "caching": "true|false: KFP caching of the tasks whose output depends only on their inputs",
    "manifest": "pipeline (a PipelineSpec, default) | kubernetes (Pipeline + PipelineVersion resources)",
}
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class Options:
    image: str = DEFAULT_IMAGE
    pipeline_root: str | None = None
    namespace: str | None = None
    service_account: str | None = None
    caching: bool = True
    manifest: str = "pipeline"


def resolve(ir: Graph, overrides: dict[str, Any]) -> tuple[Options, list[tuple[str, str]]]:
    """The effective options and every problem with them (unknown keys, bad values)."""
    problems = unknown_options(overrides, OPTIONS)
    values = {k: v for k, v in (json.loads(ir.targets).get("kubeflow") or {}).items() if v is not None}
    for key in sorted(set(overrides) & set(OPTIONS)):
        values[key] = _parse(key, overrides[key], problems)
    values = {k: v for k, v in values.items() if k in {f.name for f in fields(Options)} and v is not None}
    problems += _check(values)
    return Options(**values), problems


def _parse(key: str, text: Any, problems: list) -> Any:
    if key != "caching" or isinstance(text, bool):
        return text if text != "" else None
    if str(text).lower() in _TRUE + _FALSE:
        return str(text).lower() in _TRUE
    problems.append(("--option caching", f"expected true or false, got {text!r}"))
    return None


def _check(values: dict[str, Any]) -> list[tuple[str, str]]:
    checks = (("namespace", kube.DNS1123_LABEL, 63), ("service_account", DNS_SUBDOMAIN, 253))
    problems = [(f"targets.kubeflow.{key}", f"{values[key]!r} is not a valid Kubernetes name")
                for key, pattern, limit in checks
                if key in values and not (isinstance(values[key], str) and len(values[key]) <= limit
                                          and pattern.match(values[key]))]
    if values.get("manifest", "pipeline") not in ("pipeline", "kubernetes"):
        problems.append(("targets.kubeflow.manifest", f"expected pipeline or kubernetes, got {values['manifest']!r}"))
    for key in ("image", "pipeline_root"):
        if key in values and (not isinstance(values[key], str) or not values[key].strip()):
            problems.append((f"targets.kubeflow.{key}", "expected a non-empty string"))
    return problems
