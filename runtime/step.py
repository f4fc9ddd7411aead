"""Running one node: the function every executor and orchestrator target calls.

`Runner.run(node_id)` computes the node's cache key from its inputs' digests,
returns the cached entry when there is one, and otherwise loads the inputs
(verified), runs the op, stores the output and then the entry.  It needs only the
IR, a store and the directory relative source paths resolve against; input
digests come from results already in memory or, in a fresh process, from the
cache entries of the ancestors (`resolve`).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

from pipespec.compiler import ir
from pipespec.compiler.diagnostics import Diagnostic

from . import artifacts, keys
from .errors import CorruptArtifact, RunError, map_exception
from .keyextra import key_extra
from .ops import module_for
from .ops.base import STEP_REPORTS, Context, Sample
from .sideeffects import missing_effect
from .store import CacheEntry, DamagedEntry, StoreError

CACHED, DONE, FAILED, SKIPPED, BLOCKED = "cached", "done", "failed", "skipped", "blocked"
MISSING, DAMAGED = "missing", "damaged"  # lookup only: no entry; an entry whose output cannot be used


@dataclass
class NodeResult:
    id: str
    kind: str
    status: str
    key: str | None = None
    digest: str | None = None
    format: str | None = None
    rows: int | None = None
    seconds: float = 0.0
    summary: dict = field(default_factory=dict)
    components: dict | None = None
    error: Diagnostic | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        return self.status in (CACHED, DONE)

    @property
    def blocks(self) -> bool:
        """A gate that failed (or a result that failed) stops what depends on it."""
        return not self.ok or self.summary.get("passed") is False

    def to_json(self) -> dict:
        data = {k: getattr(self, k) for k in ("id", "kind", "status", "key", "digest", "format", "rows",
                                               "summary", "components", "reason")}
        data["seconds"] = round(self.seconds, 4)
        data["error"] = self.error.to_json() if self.error else None
        return data


@dataclass
class Runner:
    graph: ir.Graph
    store: Any
    registry: Any
    root: str
    sample: Sample | None = None
    hold: bool = False
    force: frozenset[str] = frozenset()
    retries: bool = True  # False: one attempt (an orchestrator retries with its own policy)
    verify: bool = False  # re-hash every cached output before reusing it (not only its size)
    log: Callable[[str, str], None] = lambda node_id, line: None
    results: dict[str, NodeResult] = field(default_factory=dict)
    _healing: threading.Lock = field(default_factory=threading.Lock, repr=False)

    # --- keys ----------------------------------------------------------------------

    def input_digests(self, node: ir.Node) -> dict[str, str] | None:
        """role -> digest of every input, or None when an input has no result yet."""
        digests = {}
        for port in node.inputs:
            result = self.results.get(port.node)
            if result is None or result.digest is None:
                return None
            digests[port.role] = result.digest
        return digests

    def context(self, node: ir.Node, digests: dict[str, str]) -> Context:
        formats = {p.role: artifacts.format_for(self.graph.node(p.node).output) for p in node.inputs}
        loaded: dict[str, Any] = {}

        def loader(role: str) -> Any:
            if role not in loaded:
                data = self.store.get(digests[role], f"input {role} of {node.id}")
                loaded[role] = artifacts.decode(formats[role], data)
            return loaded[role]

        def digest_of(node_id: str) -> str | None:
            result = self.results.get(node_id)
            return result.digest if result else None

        return Context(graph=self.graph, node=node, store=self.store, registry=self.registry,
                       root=self.root, input_digests=digests, loader=loader, digest_of=digest_of,
                       sample=self.sample, hold=self.hold, log=lambda line: self.log(node.id, line))

    def key(self, node: ir.Node, ctx: Context) -> tuple[str, dict]:
        extra = key_extra(ctx)
        if self.sample is not None and node.kind == "Source":
            extra.setdefault("sample", {"rows": self.sample.rows, "seed": self.sample.seed})
        parts = keys.components(node, ctx.input_digests, extra)
        return keys.key_of(parts), parts

    # --- running -------------------------------------------------------------------

    def lookup(self, node_id: str, heal: bool = False) -> NodeResult:
        """The node's result from the cache only (no op runs): CACHED, MISSING (no entry) or
        DAMAGED (an entry whose output cannot be used; `heal` drops a corrupt output)."""
        node = self.graph.node(node_id)
        digests = self.input_digests(node)
        if digests is None:
            return NodeResult(node_id, node.kind, SKIPPED, reason="inputs not available")
        ctx = self.context(node, digests)
        key, parts = self.key(node, ctx)
        entry, why = self._reusable(node, key, heal, ctx)
        if entry is not None:
            return _from_entry(node, key, parts, entry)
        return NodeResult(node_id, node.kind, DAMAGED if why else MISSING, key=key, components=parts,
                          reason=why)

    def _reusable(self, node: ir.Node, key: str, heal: bool,
                  ctx: Context) -> tuple[CacheEntry | None, str | None]:
        """(the entry of `key` when its output can be reused, else why not): a damaged entry,
        an output missing or corrupt (its size, or with `verify` its hash), or a registry that
        no longer shows what the node did, is a miss."""
        try:
            entry = self.store.get_entry(key)
        except DamagedEntry as exc:
            return None, exc.message
        if entry is None:
            return None, None
        if entry.kind != node.kind or entry.format != artifacts.format_for(node.output):
            return None, f"cache entry {key[:12]}… is damaged: it names a {entry.kind} output ({entry.format})"
        state = self.store.object_state(entry, self.verify)
        if state == "corrupt" and heal:
            self.store.discard(entry.digest)
        if state is not None:
            return None, f"its cached output {entry.digest[:12]}… is {state}"
        gone = missing_effect(ctx, entry.summary)
        return (None, f"its cached result is not in the registry any more ({gone})") if gone else (entry, None)

    def run(self, node_id: str) -> NodeResult:
        """Run (or reuse) one node; a failure is retried `retries` times, as orchestrators do
        (never a corrupt input: that is healed by recomputing its producer, once)."""
        node = self.graph.node(node_id)
        started = time.perf_counter()
        attempts = 1 + ((node.retries or 0) if self.retries else 0)
        for attempt in range(1, attempts + 1):
            result = self._attempt(node)
            if result.status != FAILED or attempt == attempts or result.error.code == "E0805":
                break
            self.log(node_id, f"attempt {attempt} of {attempts} failed ({result.error.code}): retrying")
        result.seconds = time.perf_counter() - started
        self.results[node_id] = result
        return result

    def _attempt(self, node: ir.Node) -> NodeResult:
        try:
            try:
                return self._run(node)
            except CorruptArtifact as exc:
                if not self._heal_input(node, exc):
                    raise
                return self._run(node)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a reported result
            error = map_exception(exc, _what(node))
            return NodeResult(node.id, node.kind, FAILED, error=error.diagnostic(node.span),
                              reason=error.message)

    def _heal_input(self, node: ir.Node, exc: CorruptArtifact) -> bool:
        """An input whose bytes do not hash to its digest: drop it and recompute its producer
        (under a lock: two readers of one corrupt output recompute it once)."""
        producer = next((p.node for p in node.inputs if p.node in self.results
                         and self.results[p.node].digest == exc.expected), None)
        if producer is None:
            return False
        with self._healing:
            if self.results[producer].digest == exc.expected and not self._intact(exc.expected):
                self.log(node.id, f"warning: input {producer} ({exc.expected[:12]}…) is corrupt: recomputing it")
                self.store.discard(exc.expected)
                self.results[producer] = self._run(self.graph.node(producer), force=True)
        return True

    def _intact(self, digest: str) -> bool:
        try:
            self.store.get(digest)
        except (CorruptArtifact, StoreError):
            return False
        return True

    def _prepare(self, node: ir.Node) -> tuple[Context, str, dict]:
        digests = self.input_digests(node)
        if digests is None:
            missing = [p.node for p in node.inputs if p.node not in self.results]
            raise RunError("E0807", f"{_what(node)}: upstream results are missing: {', '.join(missing)}")
        ctx = self.context(node, digests)
        key, parts = self.key(node, ctx)
        return ctx, key, parts

    def _cached(self, node: ir.Node, key: str, parts: dict, ctx: Context) -> NodeResult | None:
        if node.id in self.force:
            return None
        entry, why = self._reusable(node, key, True, ctx)
        if why:
            self.log(node.id, f"warning: {why}: recomputing")
        return _from_entry(node, key, parts, entry) if entry else None

    def _run(self, node: ir.Node, force: bool = False) -> NodeResult:
        ctx, key, parts = self._prepare(node)
        cached = None if force else self._cached(node, key, parts, ctx)
        if cached is not None:
            return cached
        if node.kind == "Rollout":
            ctx.memo[STEP_REPORTS] = self._step_reports(node, key)
        output = module_for(node.kind).run(ctx)
        fmt = artifacts.format_for(node.output)
        info = self.store.put(artifacts.encode(fmt, output.value))
        self.store.put_entry(CacheEntry(key=key, kind=node.kind, format=fmt, digest=info.digest, size=info.size,
                                        rows=output.rows, summary=output.summary, components=parts))
        return NodeResult(node.id, node.kind, DONE, key=key, digest=info.digest, format=fmt,
                          rows=output.rows, summary=output.summary, components=parts)

    # --- rollout steps as their own tasks ----------------------------------------------

    def run_rollout_step(self, node_id: str, k: int) -> tuple[dict, NodeResult | None, str]:
        """Step `k` of a rollout on its own (orchestrators run one task per step, with the
        hold between them): (its report, None, the rollout's key), or ({}, the cached
        decision, key) when the rollout was already decided.  The report is kept in the store
        under the rollout's key, where the decision (`run`) takes it instead of replaying it."""
        node = self.graph.node(node_id)
        if node.kind != "Rollout" or not 1 <= k <= len(node.run_steps()):
            raise RunError("E0808", f"{node_id} has no rollout step {k}")
        ctx, key, parts = self._prepare(node)
        cached = self._cached(node, key, parts, ctx)
        if cached is not None:
            return {}, cached, key
        from .ops.rollout import simulate_step
        report = simulate_step(ctx, k, alone=True)
        self.store.write_json(_step_path(key, k), report)
        return report, None, key

    def _step_reports(self, node: ir.Rollout, key: str) -> dict[int, dict]:
        found = {}
        for k in range(1, len(node.run_steps()) + 1):
            try:
                report = self.store.read_json(_step_path(key, k))
            except StoreError:
                report = None
            if not isinstance(report, dict) or not report:
                if report is not None or self.store.read_bytes(_step_path(key, k)) is not None:
                    self.log(node.id, f"warning: the report of rollout step {k} is damaged: replaying from there")
                break
            found[k] = report
        return found

    def blocked(self, node_id: str) -> NodeResult | None:
        """A skipped/blocked result when an input failed or a gate upstream failed, else None."""
        node = self.graph.node(node_id)
        for port in node.inputs:
            upstream = self.results.get(port.node)
            if upstream is None or upstream.status in (FAILED, SKIPPED):
                return NodeResult(node_id, node.kind, SKIPPED, reason=f"upstream {port.node} failed")
            if upstream.status == BLOCKED:
                return NodeResult(node_id, node.kind, BLOCKED, reason=upstream.reason)
            if upstream.summary.get("passed") is False:
                failed = "; ".join(upstream.summary.get("failed", []))
                return NodeResult(node_id, node.kind, BLOCKED, reason=f"{port.node} failed: {failed}")
        return None

    def resolve(self, node_id: str) -> None:
        """Fill `results` for every ancestor of `node_id` from the cache (fresh-process steps)."""
        ancestors = self.graph.ancestors(node_id)
        for node in self.graph.nodes:
            if node.id in ancestors and node.id not in self.results:
                result = self.lookup(node.id, heal=True)
                if result.status == DAMAGED:  # it had a result: recompute it (its inputs are here)
                    self.log(node_id, f"warning: upstream {node.id}: {result.reason}: recomputing it")
                    result = self.run(node.id)
                if not result.ok:
                    raise RunError("E0807", f"{_what(self.graph.node(node_id))}: upstream {node.id} has no "
                                   "result for its current inputs",
                                   f"run {node.id} first (its inputs or the data changed since it ran)")
                self.results[node.id] = result


def _step_path(key: str, k: int) -> str:
    return f"rollout-steps/{key}/{k}.json"


def _from_entry(node: ir.Node, key: str, parts: dict, entry: CacheEntry) -> NodeResult:
    return NodeResult(node.id, node.kind, CACHED, key=key, digest=entry.digest, format=entry.format,
                      rows=entry.rows, summary=entry.summary, components=parts)


def _what(node: ir.Node) -> str:
    return f"{node.kind.lower()} {node.name}"


def sample_store(store, sample: Sample | None):
    """Sample runs cache into their own namespace, so they never mix with full runs."""
    return store if sample is None else store.namespace(f"sample-{sample.rows}-seed{sample.seed}")


def open_runner(graph: ir.Graph, store, root: str, *, sample: Sample | None = None,
                read_only: bool = False, **options) -> Runner:
    """A Runner over the main `store`: a sample run caches into its namespace and reads the
    main registry without writing it."""
    from .registry import Registry
    registry = Registry(store, read_only=read_only or sample is not None)
    return Runner(graph, sample_store(store, sample), registry, root, sample=sample, **options)
