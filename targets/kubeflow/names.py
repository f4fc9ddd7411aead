"""Names Kubeflow and Kubernetes accept, made from pipespec ids: sanitized, truncated with a
deterministic hash suffix when too long, and checked for collisions."""

from __future__ import annotations

import hashlib
import re

KFP_NAME = re.compile(r"^[a-z0-9][a-z0-9-]{0,127}$")
"""Pipeline, task and component names in a KFP PipelineSpec."""
DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
"""Kubernetes names that must be DNS-1035 labels (KServe InferenceService, namespace)."""
DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$")

KFP_MAX = 128
ISVC_MAX = 45  # KServe derives `<name>-predictor-...` Knative names that must stay under 63
_HASH = 8


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH]


def kfp_name(text: str, limit: int = KFP_MAX) -> str:
    """Lowercase, runs of anything else as one `-`, no leading/trailing `-`; a name longer
    than `limit` keeps its start and ends with a hash of the whole original text."""
    name = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
    if len(name) > limit:
        name = name[:limit - _HASH - 1].rstrip("-") + "-" + short_hash(text)
    return name


def dns_label(text: str, limit: int = ISVC_MAX) -> str:
    """A DNS-1035 label (starts with a letter, ends alphanumeric) of at most `limit` characters."""
    name = kfp_name(text, limit)
    if not name[0].isalpha():
        name = kfp_name("m-" + text, limit)
    return name


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
