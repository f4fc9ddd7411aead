"""Names Kubeflow and Kubernetes accept, made from pipespec ids: sanitized, truncated with a
deterministic hash suffix when too long, and checked for collisions."""

from __future__ import annotations

import re

from .. import kube

KFP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
"""Pipeline, task and component names in a KFP PipelineSpec."""
DNS_LABEL = kube.DNS_LABEL
"""Kubernetes names that must be DNS-1035 labels (KServe InferenceService, namespace)."""
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

KFP_MAX = 128
ISVC_MAX = 45  # KServe derives `<name>-predictor-...` Knative names that must stay under 63


def kfp_name(text: str, limit: int = KFP_MAX) -> str:
    """A KFP name: see `kube.name`."""
    return kube.name(text, limit)


def dns_label(text: str, limit: int = ISVC_MAX) -> str:
    return kube.dns_label(text, limit)


def assign(ids: list[str], make=kfp_name) -> tuple[dict[str, str], list[tuple[str, str]]]:
    """id -> name for every id, and one problem per id whose name another id already took."""
    names: dict[str, str] = {}
    owner: dict[str, str] = {}
    problems = []
    for ident in ids:
        name = make(ident)
        if name in owner:
            problems.append((ident, f"its Kubeflow name {name!r} is also the name of {owner[name]} "
                                    "(names are lowercased, other characters become '-'); rename one"))
        owner.setdefault(name, ident)
        names[ident] = name
    return names, problems
