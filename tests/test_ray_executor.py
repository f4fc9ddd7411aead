"""The Ray scheduler against a real (local, 2-CPU) Ray: the same keys, digests and cache
as the local executor, gates, failures at their YAML line, crashes, resources, Ctrl-C."""

from __future__ import annotations

import io
import logging
import os
import secrets
import shutil
from pathlib import Path

import pytest
from pipespec.compiler.lower import compile_file
from pipespec.runtime import records
from pipespec.runtime.errors import RunError
from pipespec.runtime.executor import RunOptions, execute
from pipespec.runtime.verify import verify
from pipespec.runtime.ops.base import Sample
from pipespec.runtime.progress import Reporter
from pipespec.runtime.registry import Registry
from pipespec.runtime.store import Store

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # a local Ray and the churn run: ~13 s
ray = pytest.importorskip("ray")

from pipespec.targets.ray import executor
from pipespec.targets.ray.executor import RaySchedule

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """One local Ray for the module (start-up is the slow part), with token auth and the
    faults of tests/ray_faults.py installed in its workers."""
    import ray_faults

    marks = tmp_path_factory.mktemp("marks")
    token = marks / "token"
    token.write_text(secrets.token_hex(32))
    saved = {k: os.environ.pop(k, None) for k in ("RAY_AUTH_MODE", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_TOKEN")}
    os.environ["RAY_AUTH_TOKEN_PATH"] = str(token)  # Ray 2.60 turns token auth on for a local ray.init
    ray.cloudpickle.register_pickle_by_value(ray_faults)
    ray.init(address="local", num_cpus=2, include_dashboard=False, object_store_memory=256 * 2**20,
             log_to_driver=False, logging_level=logging.ERROR,
             runtime_env={"worker_process_setup_hook": ray_faults.install,
                          "env_vars": {"PIPESPEC_TEST_MARKS": str(marks)}})
    try:
        yield marks
    finally:
        ray.shutdown()
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v


def copy_example(base: Path, name: str) -> Path:
    shutil.copytree(ROOT / "examples" / name, base / name, ignore=shutil.ignore_patterns(".pipespec"))
    return base / name / "pipeline.yaml"


def run(spec: Path, store: Path, *params: str, schedule=None, log: io.StringIO | None = None, **options):
    result = compile_file(str(spec), list(params))
    assert result.ir is not None, result.diagnostics
    reporter = Reporter(log if log is not None else io.StringIO())
    return execute(result.ir, Store(str(store)), str(spec.parent), RunOptions(jobs=2, **options), reporter,
                   schedule=schedule)


def outputs(report) -> dict[str, tuple]:
    return {r.id: (r.key, r.digest) for r in report.results}


def statuses(report) -> dict[str, str]:
    return {r.id: r.status for r in report.results}


@pytest.fixture(scope="module")
def churn(tmp_path_factory, ray_cluster):
    base = tmp_path_factory.mktemp("churn")
    spec = copy_example(base, "churn")
    local = run(spec, base / "A")
    log = io.StringIO()
    on_ray = run(spec, base / "B", schedule=RaySchedule(), log=log)
    return spec, base, local, on_ray, log.getvalue()


def test_churn_on_ray_has_the_local_keys_and_digests(churn):
    _, _, local, on_ray, log = churn
    assert local.exit_code == on_ray.exit_code == 0
    assert set(statuses(on_ray).values()) == {"done"}
    assert outputs(on_ray) == outputs(local)
    assert [r.id for r in on_ray.results] == [r.id for r in local.results]
    assert "train.churn_gbm: fitted sklearn.ensemble.HistGradientBoostingClassifier" in log  # relayed


def test_a_ray_run_records_the_run_writes_cards_and_promotes_like_a_local_run(churn):
    _, base, _, on_ray, _ = churn
    store = Store(str(base / "B"))
    record = records.read(store, "telecom-churn", on_ray.run_id)
    assert record["status"] == "ok" and len(record["nodes"]) == 11
    assert all(n["components"] for n in record["nodes"])
    assert (base / "B" / "cards" / "telecom-churn" / "churn_gbm.md").is_file()
    assert stages(base / "B") == stages(base / "A") and "production" in stages(base / "B").values()


def stages(store: Path) -> dict[str, str]:
    return {v["version"]: v["stage"] for v in Registry(Store(str(store))).versions("telecom-churn", "churn_gbm")}


def test_ray_after_local_and_local_after_ray_reuse_everything(churn):
    spec, base, local, _, _ = churn
    again_on_ray = run(spec, base / "A", schedule=RaySchedule())
    again_local = run(spec, base / "B")
    assert set(statuses(again_on_ray).values()) == {"cached"}
    assert set(statuses(again_local).values()) == {"cached"}
    assert outputs(again_on_ray) == outputs(again_local) == outputs(local)


def test_verify_on_ray_recomputes_a_same_size_corrupt_output(churn, tmp_path):
    """`run --verify` reaches the Ray workers: a flipped byte in a leaf's output is found by
    its hash and the node recomputed, to the clean digest."""
    spec, base, local, *_ = churn
    shutil.copytree(base / "B", tmp_path / "store")
    gate = next(r for r in local.results if r.id == "gate.model_quality")
    path = Path(Store(str(tmp_path / "store")).object_path(gate.digest))
    data = bytearray(path.read_bytes())
    data[5] ^= 0x01
    path.write_bytes(bytes(data))
    plain = run(spec, tmp_path / "store", schedule=RaySchedule())
    assert statuses(plain)["gate.model_quality"] == "cached"  # same size: only --verify sees it
    checked = run(spec, tmp_path / "store", schedule=RaySchedule(), verify=True)
    assert statuses(checked)["gate.model_quality"] == "done"
    assert outputs(checked) == outputs(local)
    assert verify(Store(str(tmp_path / "store"))) == []


def test_a_failed_gate_on_ray_stops_the_rollout_with_exit_code_3(churn, tmp_path):
    spec, base, *_ = churn
    shutil.copytree(base / "B", tmp_path / "store")
    report = run(spec, tmp_path / "store", "min_auc=0.999", schedule=RaySchedule())
    by_id = {r.id: r for r in report.results}
    assert report.exit_code == 3
    assert by_id["gate.model_quality"].summary["passed"] is False
    assert by_id["rollout.churn_gbm"].status == "blocked"
    assert by_id["train.churn_gbm"].status == "cached"


def test_a_sample_run_on_ray_matches_local_and_leaves_the_registry_alone(churn, tmp_path):
    spec, base, *_ = churn
    shutil.copytree(base / "A", tmp_path / "A")
    shutil.copytree(base / "B", tmp_path / "B")
    registry_before = sorted(p.read_bytes() for p in (tmp_path / "B" / "registry").rglob("*.json"))
    local = run(spec, tmp_path / "A", sample=Sample(200, 3))
    on_ray = run(spec, tmp_path / "B", sample=Sample(200, 3), schedule=RaySchedule())
    assert on_ray.exit_code == local.exit_code
    assert outputs(on_ray) == outputs(local)
    assert (tmp_path / "B" / "namespaces" / "sample-200-seed3").is_dir()
    assert sorted(p.read_bytes() for p in (tmp_path / "B" / "registry").rglob("*.json")) == registry_before


def test_demand_on_ray_has_the_local_keys_and_digests(tmp_path, ray_cluster):
    spec = copy_example(tmp_path, "demand")
    local = run(spec, tmp_path / "A")
    on_ray = run(spec, tmp_path / "B", schedule=RaySchedule(fit_resources=True))  # asks for 4 CPUs
    assert local.exit_code == on_ray.exit_code
    assert outputs(on_ray) == outputs(local)
    assert set(statuses(run(spec, tmp_path / "B", schedule=RaySchedule(fit_resources=True))).values()) \
        == {"cached"}


# --- failures ------------------------------------------------------------------------

TINY = """pipespec: 1
pipeline: tiny
sources:
  d: {{format: csv, path: d.csv, schema: {{a: int64, b: float64, y: bool}}}}
features:
  ok:
    from: d
    columns: {{c: a + 1}}
  {bad}:
    from: d
    columns: {{e: b * 2}}
    retries: 1
  after:
    from: {bad}
    columns: {{f: e + 1}}
models:
  big:
    from: ok
    target: y
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [accuracy]
    resources: {{cpus: {cpus}, memory: 1GiB}}
"""


def tiny(tmp_path: Path, bad: str = "fine", cpus: float = 1) -> Path:
    rows = "\n".join(f"{i},{i / 7:.3f},{'true' if i % 3 else 'false'}" for i in range(60))
    (tmp_path / "d.csv").write_text("a,b,y\n" + rows + "\n")
    spec = tmp_path / "p.yaml"
    spec.write_text(TINY.format(bad=bad, cpus=cpus))
    return spec


def test_an_impossible_resource_request_fails_fast_naming_the_node_and_its_line(tmp_path, ray_cluster):
    with pytest.raises(RunError) as err:
        run(tiny(tmp_path, cpus=64), tmp_path / "store", schedule=RaySchedule())
    message = err.value.message
    assert message.startswith("the Ray cluster cannot run 2 nodes (Ray would wait for them forever): "
                              "train big (p.yaml:17:3) asks for 64 CPUs (largest node: 2 CPUs, cluster: 2 CPUs); "
                              "evaluate big (p.yaml:17:3)")
    assert not (tmp_path / "store" / "cache").exists()


def test_a_failing_op_fails_at_its_yaml_line_and_the_independent_branch_finishes(tmp_path, ray_cluster):
    report = run(tiny(tmp_path, bad="boom"), tmp_path / "store", schedule=RaySchedule())
    by_id = {r.id: r for r in report.results}
    assert report.exit_code == 1
    boom = by_id["feature.boom"]
    assert boom.status == "failed" and boom.error.code == "E0806"
    assert "boom in the op" in boom.error.message and (boom.error.span.file, boom.error.span.line) == ("p.yaml", 9)
    assert by_id["feature.after"].status == "skipped"
    assert {by_id[n].status for n in ("feature.ok", "train.big", "evaluate.big")} == {"done"}
    assert Store(str(tmp_path / "store")).get_entry(by_id["train.big"].key) is not None


def test_a_crashed_worker_is_retried_then_reported_briefly_at_the_yaml_line(tmp_path, ray_cluster):
    report = run(tiny(tmp_path, bad="crash_me"), tmp_path / "store", schedule=RaySchedule())
    by_id = {r.id: r for r in report.results}
    crashed = by_id["feature.crash_me"]
    assert crashed.status == "failed" and crashed.error.span.line == 9
    assert "the Ray task failed" in crashed.error.message and "died" in crashed.error.message
    assert len(crashed.error.message) < 400 and "Traceback" not in crashed.error.message
    attempts = (ray_cluster / "crash_me").read_text().split()
    assert len(attempts) == 2  # retries: 1 -> Ray's max_retries for a dead worker
    assert by_id["feature.after"].status == "skipped" and by_id["evaluate.big"].status == "done"


def test_ctrl_c_cancels_outstanding_tasks_and_records_an_interrupted_run(tmp_path, ray_cluster, monkeypatch):
    real = executor._Driver._collect

    def collect(self, ready):
        real(self, ready)
        if "evaluate.big" in self.runner.results:
            raise KeyboardInterrupt

    monkeypatch.setattr(executor._Driver, "_collect", collect)
    report = run(tiny(tmp_path, bad="slow"), tmp_path / "store", schedule=RaySchedule(cancel_grace=2))
    by_id = {r.id: r for r in report.results}
    assert report.interrupted and report.exit_code == 130
    assert "feature.slow" not in by_id and by_id["evaluate.big"].status == "done"
    assert report.seconds < 20  # the 60 s sleep was cancelled (its worker killed)
    store = Store(str(tmp_path / "store"))
    assert records.read(store, "tiny", report.run_id)["status"] == "interrupted"
    assert verify(store) == []


# --- without a cluster ---------------------------------------------------------------


def test_a_ray_task_error_is_summarised_as_its_last_frame_and_exception():
    tb = ('Traceback (most recent call last):\n  File "/x/worker.py", line 10, in run_node\n    go()\n'
          '  File "/x/ops/transform.py", line 42, in run\n    raise ValueError("bad")\nValueError: bad\n')
    assert executor._traceback_summary(tb) == 'ValueError: bad (File "/x/ops/transform.py", line 42, in run)'


def test_resource_requests_are_capped_on_a_ray_started_for_the_run_and_checked_otherwise():
    from pipespec.targets.ray import cluster

    graph = compile_file(str(ROOT / "examples" / "demand" / "pipeline.yaml"), []).ir
    cap = cluster.Capacity(({"CPU": 2.0, "memory": 8.0 * 2**30},))
    order = [n.id for n in graph.nodes]
    fitted = cluster.task_options(graph, order, cap, fit=True)
    train = next(n for n in order if n.startswith("train."))
    assert fitted[train]["num_cpus"] == 2 and fitted[train]["name"] == train
    with pytest.raises(RunError, match=r"asks for 4 CPUs \(largest node: 2 CPUs, cluster: 2 CPUs\)"):
        cluster.task_options(graph, order, cap, fit=False)
    both = cluster.Capacity(({"CPU": 8.0, "memory": 1.0 * 2**30}, {"CPU": 1.0, "memory": 64.0 * 2**30}))
    with pytest.raises(RunError, match="on one node"):  # enough of each, never on the same node
        cluster.task_options(graph, order, both, fit=False)


def test_the_address_comes_from_the_caller_then_ray_address_then_the_spec(monkeypatch):
    graph = compile_file(str(ROOT / "examples" / "demand" / "pipeline.yaml"), []).ir  # ray:// in targets
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    assert executor.schedule_for(graph).address == "ray://ray-head.ml-pipelines:10001"
    assert executor.schedule_for(graph).object_store_memory == 2 * 2**30
    assert executor.schedule_for(graph, "local").address == "local"
    monkeypatch.setenv("RAY_ADDRESS", "10.0.0.1:6379")
    assert executor.schedule_for(graph).address == "10.0.0.1:6379"
    assert executor.schedule_for(graph, "auto").address == "auto"

