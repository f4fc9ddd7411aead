"""A rollout's decision is a function of its inputs (issue 11): recomputing it gives the same
digest whatever the registry already holds, locally and one step at a time (the orchestrator
path), and its latencies are CPU times that a busy machine does not inflate into another
decision."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from threadpoolctl import threadpool_limits

from pipespec.compiler.lower import compile_file
from pipespec.runtime import artifacts
from pipespec.runtime.executor import RunOptions, execute
from pipespec.runtime.ops import rollout
from pipespec.runtime.progress import Reporter
from pipespec.runtime.registry import Registry, version_of
from pipespec.runtime.step import open_runner
from pipespec.runtime.store import Store
from test_rollout import Sim, fit, full, spec

ROOT = Path(__file__).resolve().parent.parent
ROLLOUT = "rollout.churn_gbm"


# --- recomputing a decision --------------------------------------------------------------


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    """The churn example run once (the expensive part): (spec, store, results)."""
    target = tmp_path_factory.mktemp("churn") / "churn"
    shutil.copytree(ROOT / "examples" / "churn", target, ignore=shutil.ignore_patterns(".pipespec"))
    spec_path, store = target / "pipeline.yaml", target / ".pipespec"
    return spec_path, store, run_locally(spec_path, store)


def run_locally(spec_path: Path, store: Path):
    graph = compile_file(str(spec_path)).ir
    report = execute(graph, Store(str(store)), str(spec_path.parent), RunOptions(jobs=2),
                     Reporter(open(os.devnull, "w")))
    assert report.exit_code == 0, [(r.id, r.reason) for r in report.results if not r.ok]
    return {r.id: r for r in report.results}


def entry_path(store: Path, key: str) -> Path:
    return store / "cache" / key[:2] / f"{key}.json"


def candidate_history(store: Path, train_digest: str) -> list[str]:
    record = Registry(Store(str(store))).get("telecom-churn", "churn_gbm", version_of(train_digest))
    return [h["stage"] for h in record["history"]]


def test_a_recomputed_rollout_has_the_same_digest_and_the_registry_says_why(churn):
    spec_path, store, first = churn
    decided, version = first[ROLLOUT], version_of(first["train.churn_gbm"].digest)
    assert decided.summary["registry"] == f"Registry: {version} promoted to production."
    entry_path(store, decided.key).unlink()
    again = run_locally(spec_path, store)[ROLLOUT]
    assert (again.status, again.key, again.digest) == ("done", decided.key, decided.digest)
    assert again.summary["registry"] == (f"Registry: {version} was already production (an earlier run); "
                                         "left unchanged.")
    assert candidate_history(store, first["train.churn_gbm"].digest) == ["canary", "production"]
    decision = artifacts.decode(artifacts.JSON, Store(str(store)).get(again.digest))
    assert "Registry" not in decision["note"] and "registry" not in decision
    card = (store / "cards" / "telecom-churn" / "churn_gbm.md").read_text()
    assert "- stage: production" in card


def run_as_tasks(spec_path: Path, store: Path) -> str:
    """Every node as an orchestrator runs it (a fresh Runner per task, the rollout one step per
    task, then the decision): the rollout's digest."""
    graph = compile_file(str(spec_path)).ir
    for node in graph.nodes:
        tasks = [*range(1, len(node.run_steps()) + 1), None] if node.kind == "Rollout" else [None]
        for k in tasks:
            runner = open_runner(graph, Store(str(store)), str(spec_path.parent), retries=False)
            runner.resolve(node.id)
            if k is not None:
                report, decided, _ = runner.run_rollout_step(node.id, k)
                assert decided is None and report["rollback"] is False
            else:
                result = runner.run(node.id)
                assert result.ok, result.reason
    return result.digest


def test_the_step_path_decides_the_same_bytes_and_so_does_its_recomputation(churn, tmp_path):
    """On a store with the local run's upstream outputs but an empty registry (a first
    deployment, as locally); then the decision task again (reusing the step reports) once
    the registry holds the promotion."""
    spec_path, local_store, local = churn
    decided = local[ROLLOUT]
    store = tmp_path / "tasks"
    shutil.copytree(local_store / "objects", store / "objects")
    shutil.copytree(local_store / "cache", store / "cache")
    entry_path(store, decided.key).unlink(missing_ok=True)
    assert run_as_tasks(spec_path, store) == decided.digest
    entry_path(store, decided.key).unlink()
    graph = compile_file(str(spec_path)).ir
    runner = open_runner(graph, Store(str(store)), str(spec_path.parent), retries=False)
    runner.resolve(ROLLOUT)
    again = runner.run(ROLLOUT)
    assert (again.status, again.digest) == ("done", decided.digest)
    assert "already production" in again.summary["registry"]
    assert candidate_history(store, local["train.churn_gbm"].digest) == ["canary", "production"]


# --- latencies on a busy machine ---------------------------------------------------------

BUSY = "import sys, time\nend = time.monotonic() + float(sys.argv[1])\nwhile time.monotonic() < end: pass\n"
LOADERS = 3  # busy-loop processes: more than the 2 cores of a small CI machine
LOAD_FACTOR = 3.0  # SPEC §13: loaded CPU-time latencies stay within this of quiet ones


@contextlib.contextmanager
def busy_cores(n: int = LOADERS, seconds: float = 120.0):
    """`n` processes spinning on a core each (they stop by themselves after `seconds`)."""
    procs = [subprocess.Popen([sys.executable, "-c", BUSY, str(seconds)]) for _ in range(n)]
    try:
        time.sleep(0.3)  # let them start
        yield procs
        assert all(p.poll() is None for p in procs), "the load ended before the simulation did"
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@pytest.fixture(scope="module")
def gbm(tmp_path_factory):
    """A histogram gradient-boosted model (OpenMP; ~1.5-3 ms of CPU a request), trained on
    one thread before any load starts."""
    table = Sim(tmp_path_factory.mktemp("gbm")).table
    with threadpool_limits(limits=1):
        return fit(HistGradientBoostingClassifier(max_iter=100, random_state=0), table)


def gbm_canary(tmp_path: Path, model) -> tuple[Sim, object]:
    """Its canary against a production tree, with a latency threshold five times its cost,
    which wall-clock timings on loaded cores (p99 of 20-40 ms) would cross."""
    sim = Sim(tmp_path)
    sim.candidate = sim.put(model)
    return sim, spec(rollback_if="error_rate > 0.02 or latency_p99_ms > 20")


def simulate(sim: Sim, graph) -> tuple[dict, bytes, dict]:
    """(the decision, its artifact's bytes, the last step's report with its latencies)."""
    out = rollout.run(sim.context(graph))
    return out.value, artifacts.encode(artifacts.JSON, out.value), full(out)["steps"][-1]


def test_a_busy_machine_neither_changes_the_decision_nor_inflates_the_latencies(tmp_path, gbm):
    quiet, loaded = gbm_canary(tmp_path / "quiet", gbm), gbm_canary(tmp_path / "loaded", gbm)
    decision, quiet_bytes, quiet_step = simulate(*quiet)
    with busy_cores():
        _, loaded_bytes, loaded_step = simulate(*loaded)
    assert decision["outcome"] == "promoted", quiet_step
    assert loaded_bytes == quiet_bytes, loaded_step
    for metric in ("latency_p50_ms", "latency_p99_ms"):
        assert 0 < loaded_step[metric] <= LOAD_FACTOR * quiet_step[metric], (quiet_step, loaded_step)
