"""The extra inputs of Source, Gate and Rollout cache keys, computed without the ops.

A fully cached run computes every node's key and runs no op, so, like the op
versions in keys.py, these live apart from the op modules (which import pyarrow,
numpy and scikit-learn: ~0.3 s).  They need only the stat cache and the registry;
the exception is a SQL source, whose data digest is that of the query's result.
The op modules use the same functions (and `ctx.memo` entries), so the key and the
run always see the same source data and production model.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from pipespec.compiler import expr as E

from .errors import RunError
from .hashing import digest_bytes
from .statcache import StatCache, location

PRODUCTION = "production"
SQL_MEMO = "source.sql_table"  # a SQL source's result: read for its key, reused by its run


def key_extra(ctx) -> dict:
    """What besides its definition and inputs a node's output depends on (see keys.py)."""
    compute = _BY_KIND.get(ctx.node.kind)
    return compute(ctx) if compute else {}


# --- sources ---------------------------------------------------------------------------


def source_key(ctx) -> dict:
    """The digest of the source data (and the sample drawn), so changed data means a new key."""
    extra: dict[str, Any] = {"data": data_digest(ctx)}
    if ctx.sample is not None:
        extra["sample"] = {"rows": ctx.sample.rows, "seed": ctx.sample.seed}
    return extra


def data_digest(ctx) -> str:
    node = ctx.node
    if node.format == "sql":
        from .artifacts import encode_table
        from .ops import source
        table = ctx.memo[SQL_MEMO] = source._query(node, ctx.root)
        return digest_bytes(encode_table(table))
    where = locate(node.path, ctx.root)
    where.check_exists()
    cache = StatCache(location(ctx.store))
    if where.remote:
        return cache.remote_digest(where.fs, where.fs_path, where.path)
    return cache.file_digest(where.path)


@dataclass(frozen=True)
class Location:
    """A source path as written (`shown`) and where it resolves: a local path or a URL."""

    shown: str
    path: str
    remote: bool

    @cached_property
    def _remote(self) -> tuple[Any, str]:
        import fsspec
        return fsspec.core.url_to_fs(self.path)

    @property
    def fs(self):
        return self._remote[0]

    @property
    def fs_path(self) -> str:
        return self._remote[1]

    def check_exists(self) -> None:
        exists = self.fs.exists(self.fs_path) if self.remote else os.path.isfile(self.path)
        if not exists and not self.remote and os.path.isdir(self.path):
            raise RunError("E0801", f"source path {self.shown} is a directory, not a file "
                           f"(resolved to {self.path})", "point `path:` at the data file")
        if not exists:
            raise RunError("E0801",
                           f"source file {self.shown} does not exist (resolved to {self.path})",
                           "check `path:` (relative paths start at the spec file's directory)")

    def open(self, decompress: bool = False):
        """A binary file (Arrow's own when local); `decompress` undoes a `.gz`/`.bz2`/`.zst`
        suffix, as Arrow's CSV reader does for local paths."""
        if self.remote:
            return self.fs.open(self.fs_path, "rb", compression="infer" if decompress else None)
        import pyarrow as pa
        return pa.input_stream(self.path) if decompress else pa.OSFile(self.path, "rb")

    @contextmanager
    def source(self, decompress: bool = False):
        """What Arrow readers take: the local path (read natively), else an open file."""
        if not self.remote:
            yield self.path
            return
        with self.open(decompress) as f:
            yield f


def locate(path: str, root: str) -> Location:
    target = path.removeprefix("file://")
    if "://" in target:
        return Location(path, target, True)
    if os.path.isabs(target):
        return Location(path, target, False)
    base = root.removeprefix("file://")
    if "://" in base:
        return Location(path, base.rstrip("/") + "/" + target, True)
    return Location(path, os.path.normpath(os.path.join(os.path.abspath(base), target)), False)


# --- gates -----------------------------------------------------------------------------


def gate_key(ctx) -> dict:
    """The production baseline a model gate compares with: a new one changes the decision."""
    if ctx.node.subject != "model" or not reads_production(ctx.node.checks):
        return {}
    record = gate_production(ctx)
    return {"production": record["digest"] if record else None}


def reads_production(checks) -> bool:
    return any(production_metrics(c.expr) for c in checks)


def production_metrics(expr: E.Expr) -> list[str]:
    return [n.name for n in E.walk(expr) if isinstance(n, E.Qualified) and n.qualifier == PRODUCTION]


def gated_model(ctx) -> str:
    """The model whose metrics feed the gate (the Evaluate node `evaluate.<model>`)."""
    return ctx.graph.node(ctx.node.inputs[0].node).name


def gate_production(ctx) -> dict | None:
    """The registry record the candidate is compared with, looked up once per step."""
    if PRODUCTION not in ctx.memo:
        record = None
        if ctx.registry is not None:
            candidate = ctx.load("metrics")["model"]
            record = ctx.registry.production(ctx.pipeline, gated_model(ctx), exclude_digest=candidate)
        ctx.memo[PRODUCTION] = record
    return ctx.memo[PRODUCTION]


# --- rollouts --------------------------------------------------------------------------


def rollout_key(ctx) -> dict:
    """The decision depends on the model it is compared against."""
    record = rollout_baseline(ctx)
    return {"production": record["digest"] if record else None}


def rollout_baseline(ctx) -> dict | None:
    if ctx.registry is None:
        return None
    if "baseline" not in ctx.memo:  # read once, so the key and the run see the same record
        ctx.memo["baseline"] = ctx.registry.production(
            ctx.pipeline, ctx.node.model, exclude_digest=ctx.input_digests["model"])
    return ctx.memo["baseline"]


_BY_KIND = {"Source": source_key, "Gate": gate_key, "Rollout": rollout_key}
