"""The local executor's scheduling: retries, resource slots, parallel independent nodes."""

from __future__ import annotations

import os
import threading
import time

from pipespec.compiler.lower import compile_file
from pipespec.runtime.executor import RunOptions, execute
from pipespec.runtime.ops import transform
from pipespec.runtime.progress import Reporter
from pipespec.runtime.store import Store

SPEC = """pipespec: 1
pipeline: sched
sources:
  d: {{format: csv, path: d.csv, schema: {{a: int64, b: float64}}}}
features:
  f1:
    from: d
    columns: {{c: a + 1}}
    retries: {retries}
    resources: {{cpus: {cpus}}}
  f2:
    from: d
    columns: {{e: b * 2}}
"""


def setup(tmp_path, retries=0, cpus=1):
    (tmp_path / "d.csv").write_text("a,b\n1,2.5\n2,3.5\n")
    spec = tmp_path / "p.yaml"
    spec.write_text(SPEC.format(retries=retries, cpus=cpus))
    return compile_file(str(spec), []).ir


def go(tmp_path, graph, jobs=2, log=None):
    reporter = Reporter(open(os.devnull, "w"))
    if log is not None:
        reporter.log = lambda node, line: log.append((node, line))
    report = execute(graph, Store(str(tmp_path / "store")), str(tmp_path), RunOptions(jobs=jobs), reporter)
    return {r.id: r for r in report.results}


def flaky(monkeypatch, failures: int):
    calls = []
    real = transform.run

    def run(ctx):
        if ctx.node.name == "f1":
            calls.append(1)
            if len(calls) <= failures:
                raise RuntimeError("transient")
        return real(ctx)

    monkeypatch.setattr(transform, "run", run)
    return calls


def test_a_failed_node_is_retried_as_often_as_the_spec_says(tmp_path, monkeypatch):
    calls = flaky(monkeypatch, failures=2)
    log = []
    results = go(tmp_path, setup(tmp_path, retries=2), log=log)
    assert results["feature.f1"].status == "done" and len(calls) == 3
    assert [line for node, line in log if "retrying" in line] == [
        "attempt 1 of 3 failed (E0806): retrying", "attempt 2 of 3 failed (E0806): retrying"]


def test_retries_run_out(tmp_path, monkeypatch):
    calls = flaky(monkeypatch, failures=5)
    results = go(tmp_path, setup(tmp_path, retries=1))
    assert results["feature.f1"].status == "failed" and len(calls) == 2
    assert results["feature.f1"].error.code == "E0806"
    assert results["feature.f2"].status == "done"


def concurrency(monkeypatch) -> list[int]:
    active, peaks, lock = [0], [], threading.Lock()
    real = transform.run

    def run(ctx):
        with lock:
            active[0] += 1
            peaks.append(active[0])
        time.sleep(0.3)
        try:
            return real(ctx)
        finally:
            with lock:
                active[0] -= 1

    monkeypatch.setattr(transform, "run", run)
    return peaks


def test_independent_nodes_run_in_parallel(tmp_path, monkeypatch):
    peaks = concurrency(monkeypatch)
    go(tmp_path, setup(tmp_path), jobs=2)
    assert max(peaks) == 2


def test_a_node_that_needs_every_cpu_runs_alone(tmp_path, monkeypatch):
    peaks = concurrency(monkeypatch)
    results = go(tmp_path, setup(tmp_path, cpus=2), jobs=2)
    assert max(peaks) == 1 and {r.status for r in results.values()} == {"done"}


def test_ctrl_c_stops_starting_nodes_and_records_an_interrupted_run(tmp_path, monkeypatch):
    from pipespec.runtime import records
    from pipespec.runtime.verify import verify

    def interrupt(ctx):
        raise KeyboardInterrupt

    monkeypatch.setattr(transform, "run", interrupt)
    graph = setup(tmp_path)
    store = Store(str(tmp_path / "store"))
    report = execute(graph, store, str(tmp_path), RunOptions(jobs=1), Reporter(open(os.devnull, "w")))
    assert report.exit_code == 130 and report.status == "interrupted"
    (record,) = records.latest(store, "sched", 5)
    assert record["status"] == "interrupted"
    assert {n["id"] for n in record["nodes"]} == {"source.d"}  # nothing after the interrupt started
    assert verify(store) == []


def test_the_live_progress_table_shows_every_node_with_status_and_rows(tmp_path):
    import io

    from pipespec.runtime.progress import LiveReporter, reporter_for

    graph = setup(tmp_path)
    stream = io.StringIO()
    reporter = reporter_for(stream, live=True)
    assert isinstance(reporter, LiveReporter)
    report = execute(graph, Store(str(tmp_path / "store")), str(tmp_path), RunOptions(jobs=2), reporter)
    assert report.exit_code == 0
    text = stream.getvalue()
    for node in ("source.d", "feature.f1", "feature.f2"):
        assert node in text
    assert "done" in text and "2" in text
    assert isinstance(reporter_for(io.StringIO()), Reporter)  # not a terminal: plain lines
