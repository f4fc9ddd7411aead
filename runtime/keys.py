"""Cache keys: what a node's output depends on, hashed.

key = BLAKE3 of the canonical JSON of its *components*: the node's IR fingerprint,
the op kind and version, the digests of its input artifacts, the params it uses,
the versions of the libraries that shape its output, and whatever else the op
declares (`key_extra`: a source's data digest, a gate's production baseline, a
sample's size and seed).  Components are kept in the cache entry and the run
record, so `pipespec plan` can say which one changed.
"""

from __future__ import annotations

import functools
from importlib.metadata import PackageNotFoundError, version

from pipespec.compiler import ir

from .hashing import digest_json, short

# kind -> (op version, distributions whose versions affect the output).  Bump an op's
# version whenever the same inputs would give a different output.  Kept here rather
# than in the op modules so a fully cached run imports no op (and no scikit-learn).
OPS: dict[str, tuple[str, tuple[str, ...]]] = {
    "Source": ("1", ("pyarrow", "numpy")),  # numpy draws the rows of a sample run
    "Transform": ("1", ("pyarrow",)),
    "Train": ("1", ("scikit-learn", "numpy", "scipy", "skops")),
    "Evaluate": ("1", ("scikit-learn", "numpy", "scipy", "skops")),
    "Gate": ("1", ("pyarrow",)),
    "Rollout": ("2", ("scikit-learn", "numpy")),  # 2: CPU-time latencies, registry action out of the decision
}


@functools.lru_cache(maxsize=None)
def dist_version(name: str) -> str:
    try:
        return version(name)
    except PackageNotFoundError:
        return "absent"


@functools.lru_cache(maxsize=4096)
def _fingerprint(node: ir.Node) -> str:
    return node.fingerprint()


def components(node: ir.Node, inputs: dict[str, str], extra: dict) -> dict:
    op_version, dists = OPS[node.kind]
    return {
        "fingerprint": _fingerprint(node),
        "op": f"{node.kind}/{op_version}",
        "inputs": dict(sorted(inputs.items())),
        "params": {k: v for k, v in node.params},
        "versions": {d: dist_version(d) for d in dists},
        **extra,
    }


def key_of(parts: dict) -> str:
    return digest_json(parts)


def explain_change(old: dict | None, new: dict, node: ir.Node) -> str:
    """Why a node's key differs from its last run's, in words (the first reason that applies)."""
    if old is None:
        return "no earlier run of this node"
    reasons = []
    for role, digest in new.get("inputs", {}).items():
        before = old.get("inputs", {}).get(role)
        if before != digest:
            upstream = next((i.node for i in node.inputs if i.role == role), role)
            reasons.append(f"input {upstream} changed ({short(before)} -> {short(digest)})")
    if old.get("data") != new.get("data") and "data" in new:
        reasons.append(f"source {node.name} changed (digest {short(old.get('data'))} -> {short(new['data'])})")
    if old.get("sample") != new.get("sample"):
        reasons.append("sample size or seed changed")
    if old.get("production") != new.get("production"):
        reasons.append(f"the production model changed ({short(old.get('production'))} -> "
                       f"{short(new.get('production'))})")
    reasons.extend(_param_diff(old.get("params", {}), new.get("params", {})))
    if not reasons and old.get("fingerprint") != new.get("fingerprint"):
        reasons.append("its definition in the spec changed")
    if old.get("op") != new.get("op"):
        reasons.append(f"the runtime operation changed ({old.get('op')} -> {new.get('op')})")
    for dist, v in new.get("versions", {}).items():
        if old.get("versions", {}).get(dist) != v:
            reasons.append(f"{dist} changed ({old.get('versions', {}).get(dist)} -> {v})")
    return "; ".join(reasons) or "cache entry missing (deleted or garbage-collected)"


def param_changes(old: dict | None, node: ir.Node) -> list[str]:
    """The params this node uses whose values differ from its last run (empty when unknown)."""
    return _param_diff(old.get("params", {}), dict(node.params)) if old else []


def _param_diff(old: dict, new: dict) -> list[str]:
    out = []
    for name in sorted(set(old) | set(new)):
        a, b = old.get(name, "unset"), new.get(name, "unset")
        if a != b:
            out.append(f"param {name} changed ({a!r} -> {b!r})")
    return out

