"""Whether a cached node's effect on the registry is still there.

An Evaluate registers its model version and a Rollout moves it to its stage; both happen
when the node runs.  A cached result is reused only while the registry still holds what
the run did (a record removed by `cache verify --delete`, say); otherwise the node runs
again and does it again, idempotently.  Light: the registry only, no op module.
"""

from __future__ import annotations

from pipespec.compiler import ir

from .registry import version_of

_STAGE_OF = {"promoted": "production", "rolled_back": "archived"}


def missing_effect(ctx, summary: dict) -> str | None:
    """Why the registry no longer shows what this node's cached run did, or None."""
    registry = ctx.registry
    if ctx.sample is not None or registry is None or registry.read_only:
        return None
    if isinstance(ctx.node, ir.Evaluate):
        return _registered(ctx, ctx.node.name)
    if isinstance(ctx.node, ir.Rollout):
        return _registered(ctx, ctx.node.model) or _staged(ctx, summary)
    return None


def _registered(ctx, model: str) -> str | None:
    version = version_of(ctx.input_digests["model"])
    if ctx.registry.get(ctx.pipeline, model, version) is None:
        return f"model {model} version {version} is not in the registry"
    return None


def _staged(ctx, summary: dict) -> str | None:
    stage = _STAGE_OF.get(summary.get("outcome"))
    version = version_of(ctx.input_digests["model"])
    record = ctx.registry.get(ctx.pipeline, ctx.node.model, version)
    if stage and record["stage"] != stage:
        return f"model {ctx.node.model} version {version} is {record['stage']}, not {stage}"
    return None
