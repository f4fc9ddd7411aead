"""Kubernetes names and quantities, shared by the targets that emit pods or manifests
(the Airflow kubernetes flavour, Kubeflow, KServe)."""

from __future__ import annotations

import hashlib
import math
import re

DNS_LABEL = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
"""A DNS-1035 label (starts with a letter): valid wherever Kubernetes wants a short name."""
DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
"""A DNS-1123 label (may start with a digit): what a namespace must be (at most 63)."""
_HASH = 8
_BINARY = ((2**40, "Ti"), (2**30, "Gi"), (2**20, "Mi"), (2**10, "Ki"))
_DECIMAL = ((10**12, "T"), (10**9, "G"), (10**6, "M"), (10**3, "k"))


def short_hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()[:_HASH]


def name(text: str, limit: int) -> str:
    """Lowercase, runs of anything else as one `-`, no leading/trailing `-`; a name longer
    than `limit` keeps its start and ends with a hash of the whole original text."""
    out = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-") or "x"
    if len(out) > limit:
        out = out[:limit - _HASH - 1].rstrip("-") + "-" + short_hash(text)
    return out


def dns_label(text: str, limit: int = 63) -> str:
    """A DNS-1035 label (starts with a letter, ends alphanumeric) of at most `limit` characters."""
    out = name(text, limit)
    if not out[0].isalpha():
        out = name("m-" + text, limit)
    return out


def cpu_quantity(cpus: float) -> str:
    """`2`, or millicores for a fraction (`0.5` -> `500m`)."""
    if float(cpus).is_integer():
        return str(int(cpus))
    return f"{math.ceil(round(cpus * 1000, 6))}m"  # round first: 4.03 * 1000 is 4030.000000000004


def memory_quantity(size: int) -> str:
    """The shortest exact Kubernetes quantity: `2Gi`, `2G`, `1536Mi`, or plain bytes."""
    exact = [(size // factor, unit) for factor, unit in _BINARY + _DECIMAL if size % factor == 0]
    number, unit = min(exact, default=(size, ""), key=lambda e: len(str(e[0])))
    return f"{number}{unit}"
