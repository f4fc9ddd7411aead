"""What runs inside a Ray worker: one IR node, through the `Runner` every target uses.

A task gets the run's `Payload` (IR JSON and settings, put in the object store once
per run and decoded once per worker process) and the small results of its inputs —
never data: the data lives in the pipespec store, so a cached node costs one store
lookup and moves nothing.  Results travel as plain dicts (`NodeResult.to_json()`
plus `sources`, the digests of the node's source ancestors, which an evaluation
records in the registry, and `log`, the lines the node logged).
"""

from __future__ import annotations

from dataclasses import dataclass

from pipespec.compiler import ir
from pipespec.compiler.diagnostics import Diagnostic, Span
from pipespec.runtime.errors import RunError
from pipespec.runtime.ops.base import Sample
from pipespec.runtime.registry import Registry
from pipespec.runtime.step import CACHED, FAILED, NodeResult, Runner
from pipespec.runtime.store import Store

_KEEP = 4  # decoded payloads a worker process keeps (workers outlive runs on a cluster)
_SHARED: dict[str, Shared] = {}


@dataclass(frozen=True)
class Payload:
    """Everything a task needs besides its inputs' results; one object per run."""

    ir_json: str
    store_url: str               # where results are cached (a sample run's namespace)
    registry_url: str            # the main store: gates read its registry
    registry_read_only: bool     # sample runs never change the registry
    root: str                    # what relative source paths resolve against
    sample: tuple[int, int] | None
    hold: bool
    force: tuple[str, ...]
    verify: bool = False         # re-hash cached outputs before reusing them (run --verify)


@dataclass(frozen=True)
class Shared:
    payload: Payload
    graph: ir.Graph
    store: Store
    registry: Registry


def payload_for(graph: ir.Graph, runner: Runner) -> Payload:
    """The driver's runner, as a payload (store URLs made absolute, so workers agree)."""
    sample = runner.sample
    return Payload(graph.to_json(), store_url(runner.store), store_url(runner.registry.store),
                   runner.registry.read_only, runner.root,
                   (sample.rows, sample.seed) if sample else None, runner.hold, tuple(sorted(runner.force)),
                   runner.verify)


def payload_key(payload: Payload) -> str:
    """What identifies a payload's content: workers outlive runs, and an unchanged pipeline
    run again on the same cluster needs no new decoding."""
    from pipespec.runtime.hashing import digest_bytes, digest_json
    settings = [payload.store_url, payload.registry_url, payload.registry_read_only, payload.root,
                payload.sample, payload.hold, list(payload.force), payload.verify]
    return digest_json([digest_bytes(payload.ir_json.encode()), settings])


def store_url(store: Store) -> str:
    return store.root if store.local else store.url


def run_node(box: tuple[str, bytes], node_id: str, *upstream: dict) -> dict:
    """The Ray task: a skipped/blocked result when an input failed, else `Runner.run`.

    `box` is `(payload key, payload ObjectRef pickled)`: a worker fetches and decodes a
    payload only the first time it sees its key.  The ref travels as bytes rather than
    as a nested ObjectRef, which would make every task a borrower of it (a round trip to
    the driver per task); the driver keeps the payload pinned while it is connected.
    `upstream` are the results of the node's inputs, resolved by Ray.
    """
    lines: list[str] = []
    try:
        shared = _shared(*box)
    except RunError as exc:
        return _setup_failed(node_id, exc)
    _forget_listings(shared)
    runner = _runner(shared, lambda _node, line: lines.append(line))
    sources = _load_upstream(runner, upstream)
    result = runner.blocked(node_id)
    if result is None:
        result = runner.run(node_id)  # model ops fix their own thread count (ops/_modeling.py)
    if result.kind == "Source" and result.digest:
        sources[node_id] = result.digest
    return result_to_dict(result, sources, lines)


def _shared(key: str, ref_bytes: bytes) -> Shared:
    shared = _SHARED.get(key)
    if shared is None:
        import ray
        shared = _decode(ray.get(ray.cloudpickle.loads(ref_bytes)))
        while len(_SHARED) >= _KEEP:
            _SHARED.pop(next(iter(_SHARED)))
        _SHARED[key] = shared
    return shared


def _decode(payload: Payload) -> Shared:
    try:
        graph = ir.Graph.from_json(payload.ir_json)
    except (ValueError, KeyError, TypeError) as exc:
        raise RunError("E0806", f"the IR sent to the Ray worker cannot be read: {exc}",
                       "the worker's pipespec version differs from the driver's") from None
    main = Store(payload.registry_url)
    store = main if payload.store_url == payload.registry_url else Store(payload.store_url)
    return Shared(payload, graph, store, Registry(main, read_only=payload.registry_read_only))


def _forget_listings(shared: Shared) -> None:
    """fsspec caches directory listings per process (and reuses filesystems across runs);
    other workers write to the same remote store, so every task starts from fresh listings."""
    for store in {id(s): s for s in (shared.store, shared.registry.store)}.values():
        if not store.local:
            store.fs.invalidate_cache()


def _runner(shared: Shared, log) -> Runner:
    p = shared.payload
    return Runner(shared.graph, shared.store, shared.registry, p.root,
                  sample=Sample(*p.sample) if p.sample else None, hold=p.hold, force=frozenset(p.force),
                  verify=p.verify, log=log)


def _load_upstream(runner: Runner, upstream: tuple[dict, ...]) -> dict[str, str]:
    """Put the inputs' results (and their source ancestors' digests) into the runner."""
    sources: dict[str, str] = {}
    for data in upstream:
        result = result_from_dict(data)
        runner.results[result.id] = result
        sources.update(data.get("sources") or {})
    for source_id, digest in sources.items():
        runner.results.setdefault(source_id, NodeResult(source_id, "Source", CACHED, digest=digest))
    return sources


def _setup_failed(node_id: str, exc: RunError) -> dict:
    """Before the graph is decoded there is no kind or span: the driver adds them."""
    result = NodeResult(node_id, "", FAILED, error=exc.diagnostic(None), reason=exc.message)
    return result_to_dict(result, {}, [])


# --- results as plain dicts ----------------------------------------------------------


def result_to_dict(result: NodeResult, sources: dict[str, str], log: list[str]) -> dict:
    data = result.to_json()
    data["seconds"] = result.seconds
    data["sources"] = sources
    data["log"] = log
    return data


def result_from_dict(data: dict) -> NodeResult:
    return NodeResult(data["id"], data["kind"], data["status"], key=data.get("key"), digest=data.get("digest"),
                      format=data.get("format"), rows=data.get("rows"), seconds=data.get("seconds") or 0.0,
                      summary=data.get("summary") or {}, components=data.get("components"),
                      error=_error_from_dict(data.get("error")), reason=data.get("reason"))


def _error_from_dict(data: dict | None) -> Diagnostic | None:
    if not data:
        return None
    span = Span.from_json(data) if data.get("file") is not None and data.get("line") is not None else None
    return Diagnostic(data["code"], data["message"], span, data.get("hint"), data.get("severity", "error"))
