"""The local executor: every node of the graph, independent nodes in parallel, each cached.

Scheduling is a plain topological loop over a thread pool: pyarrow and
scikit-learn release the GIL for their heavy work.  A failed node skips what
depends on it; a failed gate blocks what depends on it; everything else still
runs (and is cached).  The run record is written at the end, even after failures.
"""

from __future__ import annotations

import math
import os
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Callable

from pipespec.compiler import ir

from . import records
from .finish import write_cards
from .errors import RunError
from .ops.base import Sample
from .progress import Reporter
from .step import NodeResult, Runner, open_runner

EXIT_OK, EXIT_FAILED, EXIT_GATE, EXIT_ROLLED_BACK, EXIT_INTERRUPTED = 0, 1, 3, 4, 130


@dataclass
class RunOptions:
    jobs: int = 0                      # 0: one per CPU
    only: tuple[str, ...] = ()         # NODE, NODE+ (and descendants), +NODE (and ancestors)
    force: tuple[str, ...] = ()
    sample: Sample | None = None
    hold: bool = False
    verify: bool = False               # re-hash every cached output before reusing it


@dataclass
class RunReport:
    run_id: str
    pipeline: str
    results: list[NodeResult]
    seconds: float
    sample: Sample | None
    record_path: str | None = None
    interrupted: bool = False

    @property
    def exit_code(self) -> int:
        if self.interrupted:
            return EXIT_INTERRUPTED
        statuses = {r.status for r in self.results}
        if "failed" in statuses:
            return EXIT_FAILED
        if any(r.summary.get("passed") is False for r in self.results):
            return EXIT_GATE
        if any(r.summary.get("outcome") == "rolled_back" for r in self.results):
            return EXIT_ROLLED_BACK
        return EXIT_OK

    @property
    def status(self) -> str:
        return {EXIT_OK: "ok", EXIT_FAILED: "failed", EXIT_GATE: "gate_failed",
                EXIT_ROLLED_BACK: "rolled_back", EXIT_INTERRUPTED: "interrupted"}[self.exit_code]


def resolve_names(graph: ir.Graph, names: tuple[str, ...], what: str) -> list[str]:
    """Node ids for names given on the command line: an id (`feature.x`) or a bare name (`x`)."""
    from pipespec.compiler.diagnostics import suggest
    ids = [n.id for n in graph.nodes]
    out = []
    for name in names:
        matches = [name] if name in ids else [n.id for n in graph.nodes if n.name == name]
        if len(matches) > 1:
            raise RunError("E0808", f"{what} '{name}' names {len(matches)} nodes: {', '.join(matches)}",
                           "use the node id")
        if not matches:
            raise RunError("E0808", f"{what} '{name}' is not a node of pipeline {graph.pipeline}",
                           suggest(name, ids))
        out.extend(matches)
    return out


def select(graph: ir.Graph, only: tuple[str, ...]) -> set[str]:
    """The nodes a run needs: the selection, its `+` closures, and every ancestor it reads."""
    if not only:
        return {n.id for n in graph.nodes}
    chosen: set[str] = set()
    for item in only:
        down, up = item.endswith("+"), item.startswith("+")
        (node_id,) = resolve_names(graph, (item.strip("+"),), "--only")
        chosen.add(node_id)
        if down:
            chosen |= graph.descendants(node_id)
        if up:
            chosen |= graph.ancestors(node_id)
    for node_id in list(chosen):
        chosen |= graph.ancestors(node_id)
    return chosen


Scheduler = Callable[[ir.Graph, Runner, list[str], int, Reporter], None]


def execute(graph: ir.Graph, store, root: str, options: RunOptions, reporter: Reporter,
            schedule: Scheduler | None = None) -> RunReport:
    """Run the selected nodes; `store` is the main store (samples use a namespace of it,
    and read its registry without writing it).

    `schedule(graph, runner, order, jobs, reporter)` runs the nodes of `order` and fills
    `runner.results` (calling `reporter.start/finish`); the default is a local thread pool,
    other executors (Ray) pass their own and share everything else: selection, reporting,
    model cards and the run record.
    """
    schedule = schedule or schedule_threads
    selected = select(graph, options.only)
    force = frozenset(resolve_names(graph, options.force, "--force"))
    runner = open_runner(graph, store, root, sample=options.sample, hold=options.hold, force=force,
                         verify=options.verify, log=reporter.log)
    store, registry = runner.store, runner.registry
    order = [n.id for n in graph.nodes if n.id in selected]
    run_id = records.new_run_id()
    reporter.begin(graph.pipeline, order, "sample run" if options.sample else "run")
    started = time.perf_counter()
    interrupted = False
    try:
        schedule(graph, runner, order, options.jobs or os.cpu_count() or 1, reporter)
    except KeyboardInterrupt:  # nodes already running finished (their writes are atomic)
        interrupted = True
    finally:
        reporter.end()
    try:
        write_cards(graph, store, registry, runner.results, options.sample)
    except RunError as exc:
        reporter.log("cards", f"model cards not written: {exc.message}")
    results = [runner.results[n] for n in order if n in runner.results]
    report = RunReport(run_id, graph.pipeline, results, time.perf_counter() - started, options.sample,
                       interrupted=interrupted)
    report.record_path = records.write(store, graph, report, options)
    return report


def slots(node: ir.Node, jobs: int) -> int:
    """How many of the `jobs` slots a node takes: its `resources.cpus`, rounded up, at most all."""
    cpus = node.resources.cpus if node.resources and node.resources.cpus else 1
    return max(1, min(jobs, math.ceil(cpus)))


def schedule_threads(graph: ir.Graph, runner: Runner, order: list[str], jobs: int, reporter: Reporter) -> None:
    """Start every ready node that fits in the free slots, in topological order; wait for one
    to finish; repeat."""
    inputs = {n: {p.node for p in graph.node(n).inputs if p.node in order} for n in order}
    waiting = dict(inputs)
    running: dict[Future, str] = {}
    free = jobs
    with ThreadPoolExecutor(max_workers=jobs, thread_name_prefix="pipespec") as pool:
        try:
            while waiting or running:
                for node_id in [n for n in order if n in waiting and not waiting[n]]:
                    blocked = runner.blocked(node_id)
                    if blocked:
                        del waiting[node_id]
                        runner.results[node_id] = blocked
                        reporter.finish(blocked)
                        _release(waiting, node_id)
                        continue
                    need = slots(graph.node(node_id), jobs)
                    if need > free:
                        continue
                    del waiting[node_id]
                    free -= need
                    reporter.start(node_id)
                    running[pool.submit(runner.run, node_id)] = node_id
                if not running:
                    continue
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    node_id = running.pop(future)
                    future.result()
                    free += slots(graph.node(node_id), jobs)
                    reporter.finish(runner.results[node_id])
                    _release(waiting, node_id)
        except KeyboardInterrupt:
            reporter.log("run", f"interrupted: letting {len(running)} running node(s) finish, "
                                "starting no more")
            pool.shutdown(wait=True, cancel_futures=True)
            for future, node_id in running.items():
                if future.done() and not future.cancelled():
                    reporter.finish(runner.results[node_id])
            raise


def _release(waiting: dict[str, set[str]], finished: str) -> None:
    for deps in waiting.values():
        deps.discard(finished)
