"""Run a pipeline on Ray: one task per IR node, with the local executor's reporting and cache.

`RaySchedule` is a scheduler for `runtime.executor.execute`, so selection, progress,
model cards and run records are the local executor's own code.  Every selected node
becomes one Ray task, submitted in topological order with its inputs' ObjectRefs as
arguments: Ray starts a task when its inputs are done.  Those refs carry small result
dicts, never data (the data is in the pipespec store).  The driver reports each node
as its task completes and fills the runner's results, exactly as the thread pool does.

A node whose op fails is a failed result (at its YAML line) returned by the task; a
task that dies (worker crash, out of memory) becomes a failed result with the last
frame of the remote traceback; what depends on a failure is skipped, and independent
branches still finish.  Ctrl-C cancels every outstanding task.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import dataclass

from pipespec.compiler import ir
from pipespec.compiler.diagnostics import Diagnostic
from pipespec.runtime.progress import Reporter
from pipespec.runtime.step import FAILED, NodeResult, Runner

from . import cluster, worker

CANCEL_GRACE = 5.0  # seconds a cancelled task gets to stop before its worker is killed
BATCH = 0.02         # seconds the driver gathers completions before reporting them


@dataclass
class RaySchedule:
    """A scheduler for `execute(..., schedule=RaySchedule(...))`.

    Without an address (or with `local`; and no RAY_ADDRESS) it starts a local Ray sized by
    `jobs` for the run and stops it after; with one (`auto`, `HOST:PORT`, `ray://HOST:PORT`)
    it connects and leaves the cluster running.  An already connected process (`ray.init` done by the
    caller) is used as it is.  `fit_resources`: cap requests at the largest node instead of
    failing (default: only on a Ray started for this run).
    """

    address: str | None = None
    namespace: str | None = None
    object_store_memory: int | None = None
    connect_timeout: float = cluster.CONNECT_TIMEOUT
    fit_resources: bool | None = None
    cancel_grace: float = CANCEL_GRACE

    def __call__(self, graph: ir.Graph, runner: Runner, order: list[str], jobs: int,
                 reporter: Reporter) -> None:
        session = cluster.Session(self.address, self.namespace, jobs, self.object_store_memory,
                                  self.connect_timeout)
        with session:
            if session.started:
                reporter.log("ray", f"started a local Ray with {jobs} CPUs in {session.seconds:.1f}s")
            fit = session.started if self.fit_resources is None else self.fit_resources
            options = cluster.task_options(graph, order, cluster.capacity(), fit)
            try:
                _Driver(graph, runner, order, reporter, options, self.cancel_grace).run()
            finally:
                if session.owned:  # the connection closes: its published payloads go with it
                    _PUBLISHED.clear()


def schedule_for(graph: ir.Graph, address: str | None = None, **overrides) -> RaySchedule:
    """A RaySchedule for a spec: its `targets.ray` namespace and object store size, and the
    address given, else RAY_ADDRESS, else the spec's `targets.ray.address`, else none (a
    local Ray for the run; `local` asks for that explicitly)."""
    opts = json.loads(graph.targets or "{}").get("ray") or {}
    memory = opts.get("object_store_memory")
    if memory:
        from pipespec.compiler.spec import parse_memory
        memory = parse_memory(memory)
    address = address or os.environ.get("RAY_ADDRESS") or opts.get("address")
    return RaySchedule(address=address, namespace=opts.get("namespace"), object_store_memory=memory or None,
                       **overrides)


def run_ir(ir_path: str, store_url: str, root: str, address: str | None = "auto", jobs: int = 0) -> int:
    """Run a compiled IR on Ray and print `pipespec run`'s summary; the exit code of `run`."""
    from pipespec.runtime.errors import RunError
    from pipespec.runtime.executor import EXIT_FAILED, RunOptions, execute
    from pipespec.runtime.report import run_summary
    from pipespec.runtime.store import Store

    try:
        with open(ir_path, "rb") as fh:
            graph = ir.Graph.from_json(fh.read())
    except (OSError, ValueError, KeyError, TypeError) as exc:
        print(f"error: {ir_path} is not a pipespec IR file: {exc}", file=sys.stderr)
        return EXIT_FAILED
    try:
        report = execute(graph, Store(store_url), os.path.abspath(root), RunOptions(jobs=jobs),
                         Reporter(sys.stderr), schedule=schedule_for(graph, address))
    except RunError as exc:
        print(f"error[{exc.code}]: {exc.message}" + (f"\n  = hint: {exc.hint}" if exc.hint else ""),
              file=sys.stderr)
        return EXIT_FAILED
    print(run_summary(report, {}))
    return report.exit_code


# --- the driver loop -----------------------------------------------------------------


class _Driver:
    """Submits every node, then turns completed tasks into results in topological order."""

    def __init__(self, graph: ir.Graph, runner: Runner, order: list[str], reporter: Reporter,
                 options: dict[str, dict], cancel_grace: float):
        self.graph, self.runner, self.order, self.reporter = graph, runner, order, reporter
        self.options, self.cancel_grace = options, cancel_grace
        self.index = {n: i for i, n in enumerate(order)}
        self.inputs = {n: sorted({p.node for p in graph.node(n).inputs}) for n in order}
        self.readers: dict[str, list[str]] = {n: [] for n in order}
        for node_id, ups in self.inputs.items():
            for up in ups:
                self.readers[up].append(node_id)
        self.pending: dict = {}      # ObjectRef -> node id, not yet completed
        self.arrived: dict = {}      # node id -> ObjectRef completed, waiting for its inputs' results

    def run(self) -> None:
        try:
            self._submit()
            while self.pending:
                self._collect(self._wait())
        except KeyboardInterrupt:
            self._cancel()
            raise

    def _submit(self) -> None:
        task = _task()
        box = _publish(worker.payload_for(self.graph, self.runner))
        refs: dict[str, object] = {}
        for node_id in self.order:
            upstream = [refs[u] for u in self.inputs[node_id]]
            refs[node_id] = task.options(**self.options[node_id]).remote(box, node_id, *upstream)
            self.pending[refs[node_id]] = node_id
            if not upstream:
                self.reporter.start(node_id)

    def _wait(self) -> list:
        """Whatever completes within BATCH seconds (at least one): one ray.wait per batch,
        not per task, keeps the driver's cost per node small."""
        import ray
        refs = list(self.pending)
        ready, _ = ray.wait(refs, num_returns=1)
        if len(refs) > 1:
            ready, _ = ray.wait(refs, num_returns=len(refs), timeout=BATCH)
        return ready

    def _collect(self, ready: list) -> None:
        for ref in ready:
            self.arrived[self.pending.pop(ref)] = ref
        runnable = [n for n in sorted(self.arrived, key=self.index.__getitem__)
                    if all(u in self.runner.results or u in self.arrived for u in self.inputs[n])]
        values = _get_all([self.arrived[n] for n in runnable])
        for node_id, value in zip(runnable, values):
            if all(u in self.runner.results for u in self.inputs[node_id]):
                del self.arrived[node_id]
                self._finish(node_id, self._result(node_id, value))

    def _result(self, node_id: str, value) -> NodeResult:
        node = self.graph.node(node_id)
        if isinstance(value, BaseException):
            return self.runner.blocked(node_id) or crashed(node, value)
        data = value
        for line in data.get("log") or ():
            self.reporter.log(node_id, line)
        result = worker.result_from_dict(data)
        result.kind = node.kind
        if result.error is not None and result.error.span is None:
            result.error = Diagnostic(result.error.code, result.error.message, node.span, result.error.hint)
        return result

    def _finish(self, node_id: str, result: NodeResult, start_readers: bool = True) -> None:
        self.runner.results[node_id] = result
        self.reporter.finish(result)
        for reader in self.readers[node_id] if start_readers else ():
            if all(u in self.runner.results for u in self.inputs[reader]) and not self.runner.blocked(reader):
                self.reporter.start(reader)

    def _cancel(self) -> None:
        """Cancel what is outstanding; record what still finished; leave the store valid
        (writes are atomic, and an entry is written only after its object)."""
        import ray
        outstanding = list(self.pending)
        self.reporter.log("run", f"interrupted: cancelling {len(outstanding)} Ray task(s)")
        for force in (False, True):  # a KeyboardInterrupt in the task first; then kill its worker
            for ref in outstanding:
                ray.cancel(ref, force=force)
            ready, outstanding = ray.wait(outstanding, num_returns=len(outstanding), timeout=self.cancel_grace)
            if not outstanding:
                break
        ready, _ = ray.wait(list(self.pending), num_returns=len(self.pending), timeout=0)
        for ref in sorted(ready, key=lambda r: self.index[self.pending[r]]):
            node_id = self.pending.pop(ref)
            try:
                data = ray.get(ref)
            except ray.exceptions.RayError:
                continue  # cancelled: not part of the record
            if data.get("status") != FAILED:
                result = worker.result_from_dict(dict(data, kind=self.graph.node(node_id).kind))
                self._finish(node_id, result, start_readers=False)


_PUBLISHED: dict[tuple, tuple] = {}  # (payload key, job, node) -> (ObjectRef, its pickled bytes)


def _publish(payload: worker.Payload) -> tuple[str, bytes]:
    """The payload in the object store, once per content per Ray connection: pickling the
    ref pins it for as long as this process is connected, so an unchanged pipeline run
    again reuses it (and workers, which keep decoded payloads, decode nothing)."""
    import ray
    context = ray.get_runtime_context()
    key = worker.payload_key(payload)
    slot = (key, context.get_job_id(), context.get_node_id())
    if slot not in _PUBLISHED:
        ref = ray.put(payload)
        _PUBLISHED[slot] = (ref, ray.cloudpickle.dumps(ref))
    return key, _PUBLISHED[slot][1]


def _get_all(refs: list) -> list:
    """The values of completed refs; a task's error in place of its value."""
    import ray
    try:
        return ray.get(refs)
    except ray.exceptions.RayError:
        return [_get_one(ref) for ref in refs]


def _get_one(ref):
    import ray
    try:
        return ray.get(ref)
    except ray.exceptions.RayError as exc:
        return exc


_TASK = None


def _task():
    """The Ray remote function (created once: Ray exports it to the cluster on first use)."""
    global _TASK
    if _TASK is None:
        import ray
        _TASK = ray.remote(worker.run_node)
    return _TASK


def crashed(node: ir.Node, exc: BaseException) -> NodeResult:
    """A failed result for a task Ray reports as failed: the op never returned a result."""
    why = describe(exc)
    message = f"{node.kind.lower()} {node.name}: the Ray task failed: {why}"
    hint = None
    if "died" in why or "memory" in why.lower():
        hint = ("the worker process died (a crash, or out of memory: raise `resources.memory`); "
                "`retries` re-runs a node after such failures")
    elif "No module named 'pipespec" in why:
        hint = "install pipespec where the Ray workers run (a runtime_env with pip: [pipespec])"
    return NodeResult(node.id, node.kind, FAILED, error=Diagnostic("E0806", message, node.span, hint),
                      reason=message)


def describe(exc: BaseException) -> str:
    """The last frame and the exception line of a remote traceback, not Ray's whole dump."""
    import ray
    if isinstance(exc, ray.exceptions.TaskCancelledError):
        return "cancelled"
    if isinstance(exc, ray.exceptions.RayTaskError):
        return _traceback_summary(exc.traceback_str or "") or type(exc.cause).__name__
    text = str(exc).strip()
    return (text.splitlines()[0] if text else type(exc).__name__)[:300]


def _traceback_summary(traceback: str) -> str:
    lines = [line.rstrip() for line in traceback.splitlines() if line.strip()]
    frames = [line.strip() for line in lines if line.lstrip().startswith('File "')]
    last = lines[-1].strip() if lines else ""
    return f"{last} ({frames[-1]})" if frames else last
