"""Compiled DAGs executed by a real Airflow 3 (`dag.test()`, SQLite metadata DB in a temp
AIRFLOW_HOME): the churn example end to end with the python and bash flavours gives every
node the local executor's cache key and artifact digest; a failed gate skips the rollout
and says why; holds are really waited; a rolled-back canary stops at its step."""

from __future__ import annotations

import io
import re
import shutil
import sys
from pathlib import Path

import pytest

import airflow_env
from pipespec.compiler.lower import compile_file
from pipespec.runtime.executor import RunOptions, execute
from pipespec.runtime.progress import Reporter
from pipespec.runtime.step import open_runner
from pipespec.runtime.store import Store
from pipespec.targets import airflow as target

pytestmark = [pytest.mark.airflow, pytest.mark.slow]  # every test waits for the metadata DB (~13 s)
pytest.importorskip("airflow")

ROOT = Path(__file__).resolve().parent.parent
HOLDS = re.compile(r".*_hold\d+$")


@pytest.fixture(scope="module", autouse=True)
def metadata_db():
    airflow_env.migrate()


@pytest.fixture
def churn(tmp_path):
    shutil.copytree(ROOT / "examples" / "churn", tmp_path / "churn", ignore=shutil.ignore_patterns(".pipespec"))
    return tmp_path / "churn" / "pipeline.yaml"


def compile_dag(spec: Path, name: str, *params: str, **options) -> Path:
    result = compile_file(str(spec), list(params))
    assert result.ir is not None, result.diagnostics
    folder = airflow_env.DAGS / name
    shutil.rmtree(folder, ignore_errors=True)
    return airflow_env.write(target.compile(result.ir, options).files, folder)


def run_dag(folder: Path, store: Path, root: Path, monkeypatch, skip_holds=True):
    """dag.test() of the one DAG in `folder`; {task id: state}."""
    monkeypatch.setenv("PIPESPEC_STORE", str(store))
    monkeypatch.setenv("PIPESPEC_ROOT", str(root))
    monkeypatch.setenv("PIPESPEC_BIN", str(Path(sys.executable).parent / "pipespec"))
    bag = airflow_env.dagbag(folder)
    assert bag.import_errors == {}
    (dag,) = bag.dags.values()
    run = dag.test(mark_success_pattern=HOLDS if skip_holds else None)
    return run, {ti.task_id: str(ti.state) for ti in run.get_task_instances()}


def local_outputs(spec: Path, store: Path, *params: str) -> dict[str, tuple]:
    result = compile_file(str(spec), list(params))
    report = execute(result.ir, Store(str(store)), str(spec.parent), RunOptions(jobs=2), Reporter(io.StringIO()))
    return {r.id: (r.key, r.digest) for r in report.results}


def store_outputs(spec: Path, store: Path, *params: str) -> dict[str, tuple]:
    """Each node's key and digest as found in `store` (what the DAG's tasks cached)."""
    graph = compile_file(str(spec), list(params)).ir
    runner = open_runner(graph, Store(str(store)), str(spec.parent), read_only=True)
    out = {}
    for node in graph.nodes:
        result = runner.lookup(node.id)
        runner.results[node.id] = result
        out[node.id] = (result.key, result.digest)
    return out


@pytest.mark.parametrize("flavour", ["python", "bash"])
def test_churn_runs_end_to_end_with_the_local_keys_and_digests(churn, tmp_path, monkeypatch, flavour):
    folder = compile_dag(churn, f"churn-{flavour}", operator=flavour)
    run, states = run_dag(folder, tmp_path / "af-store", churn.parent, monkeypatch)
    assert str(run.state) == "success", states
    assert set(states.values()) == {"success"}
    assert set(states) >= {"source_customers", "gate_model_quality", "rollout_churn_gbm_step3", "rollout_churn_gbm"}
    local = local_outputs(churn, tmp_path / "local-store")
    assert store_outputs(churn, tmp_path / "af-store") == local
    assert all(key and digest for key, digest in local.values())


def test_a_second_run_reuses_every_node_and_skips_the_decided_rollout_steps(churn, tmp_path, monkeypatch):
    folder = compile_dag(churn, "churn-again")
    store = tmp_path / "store"
    run_dag(folder, store, churn.parent, monkeypatch)
    before = {p: p.stat().st_mtime_ns for p in (store / "objects").rglob("*") if p.is_file()}
    run, states = run_dag(folder, store, churn.parent, monkeypatch, skip_holds=False)
    assert str(run.state) == "success"
    # step 1 finds the rollout decided (cached): it, the holds and later steps are skipped, not waited
    assert states["rollout_churn_gbm_step1"] == states["rollout_churn_gbm_hold1"] == "skipped"
    assert states["rollout_churn_gbm_step3"] == "skipped" and states["rollout_churn_gbm"] == "success"
    after = {p: p.stat().st_mtime_ns for p in (store / "objects").rglob("*") if p.is_file()}
    assert after == before  # nothing recomputed


@pytest.mark.parametrize("flavour", ["python", "bash"])
def test_a_failed_gate_skips_the_rollout_and_the_log_says_why(churn, tmp_path, monkeypatch, caplog, flavour):
    folder = compile_dag(churn, f"churn-gate-{flavour}", "min_auc=0.999", operator=flavour)
    run, states = run_dag(folder, tmp_path / "store", churn.parent, monkeypatch)
    assert states["gate_model_quality"] == "success" and states["train_churn_gbm"] == "success"
    rollout = {t: s for t, s in states.items() if t.startswith("rollout_")}
    assert rollout and set(rollout.values()) == {"skipped"}, rollout
    if flavour == "python":
        assert "gate.model_quality failed" in caplog.text and "auc" in caplog.text


HOLD_SPEC = """\
pipespec: 1
pipeline: hold-demo
sources:
  rows: {format: csv, path: rows.csv, schema: {x: float64, y: bool}}
models:
  m:
    from: rows
    target: y
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [accuracy]
rollout:
  model: m
  strategy: %s
  steps: %s
  rollback_if: %s
"""
CANARY = "[{traffic: 50, hold: 3s}, {traffic: 100}]"


def hold_spec(tmp_path: Path, rollback_if: str, strategy: str = "canary", steps: str = CANARY) -> Path:
    rows = "\n".join(f"{i / 10},{'true' if i % 3 else 'false'}" for i in range(60))
    (tmp_path / "rows.csv").write_text("x,y\n" + rows + "\n")
    (tmp_path / "p.yaml").write_text(HOLD_SPEC % (strategy, steps, rollback_if))
    return tmp_path / "p.yaml"


def test_a_hold_is_really_waited_between_the_steps(tmp_path, monkeypatch):
    spec = hold_spec(tmp_path, "error_rate > 0.5")
    run, states = run_dag(compile_dag(spec, "hold-demo"), tmp_path / "store", tmp_path, monkeypatch,
                          skip_holds=False)
    assert str(run.state) == "success", states
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    hold = tis["rollout_m_hold1"]
    assert hold.state == "success" and (hold.end_date - tis["rollout_m_step1"].end_date).total_seconds() >= 3
    assert tis["rollout_m_step2"].start_date >= hold.end_date
    assert store_outputs(spec, tmp_path / "store") == local_outputs(spec, tmp_path / "local")


@pytest.mark.parametrize("flavour", ["python", "bash"])
def test_a_rollback_stops_at_its_step_and_fails_the_decision(tmp_path, monkeypatch, flavour):
    spec = hold_spec(tmp_path, "latency_p99_ms >= 0")  # always true: rolled back at step 1
    run, states = run_dag(compile_dag(spec, f"rollback-{flavour}", operator=flavour), tmp_path / "store",
                          tmp_path, monkeypatch)
    # the step that rolled back skips itself, the hold and the later steps; the decision runs
    assert states["rollout_m_step1"] == states["rollout_m_hold1"] == states["rollout_m_step2"] == "skipped"
    assert states["rollout_m"] == "failed" and str(run.state) == "failed"
    tis = {ti.task_id: ti for ti in run.get_task_instances()}
    assert tis["rollout_m"].try_number == 1  # a rolled-back decision is not retried
    local = local_outputs(spec, tmp_path / "local")
    assert store_outputs(spec, tmp_path / "store")["rollout.m"] == local["rollout.m"]


@pytest.mark.parametrize("strategy, steps, rollback_if, last, outcome", [
    ("canary", "[{traffic: 100}]", "latency_p99_ms >= 0", "rollout_m_step1", "failed"),  # rolls back at the last
    ("blue_green", "[]", "latency_p99_ms >= 0", "rollout_m_step1", "failed"),
    ("blue_green", "[{traffic: 100, hold: 1s}]", "error_rate > 0.5", "rollout_m_hold1", "success"),
    ("shadow", "[]", "error_rate > 0.5", "rollout_m_step1", "success"),
    ("direct", "[]", "error_rate > 0.5", None, "success"),
])
def test_every_strategy_reaches_its_decision(tmp_path, monkeypatch, strategy, steps, rollback_if, last, outcome):
    spec = hold_spec(tmp_path, rollback_if, strategy, steps)
    run, states = run_dag(compile_dag(spec, f"{strategy}-{len(steps)}"), tmp_path / "store", tmp_path,
                          monkeypatch, skip_holds=False)
    assert states["rollout_m"] == outcome and str(run.state) == outcome, states
    assert set(states) == {"source_rows", "train_m", "evaluate_m", "rollout_m"} | ({last} if last else set()) | (
        {"rollout_m_step1"} if last else set())
    local = local_outputs(spec, tmp_path / "local")
    assert store_outputs(spec, tmp_path / "store") == local
