"""A compiled Kubeflow pipeline run the way a KFP backend runs it (tests/kfp_check.py: every
task's container command and args exactly as in pipeline.yaml, placeholders resolved, in
dependency order, trigger conditions honoured) as local `pipespec step` subprocesses; every
node then has the local executor's cache key and artifact digest (cross-target equivalence)."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import pytest
import yaml
from pipespec.compiler.lower import compile_file
from pipespec.runtime.executor import RunOptions, execute
from pipespec.runtime.progress import Reporter
from pipespec.runtime.store import Store
from pipespec.targets import kubeflow

pytestmark = [pytest.mark.kubeflow, pytest.mark.slow]  # every test needs the churn run (~14 s)
pytest.importorskip("kfp.pipeline_spec")
import kfp_check  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def local_run(spec: Path, store: Path, params=()):
    result = compile_file(str(spec), list(params))
    return execute(result.ir, Store(str(store)), str(spec.parent), RunOptions(jobs=2), Reporter(io.StringIO()))


def kfp_run(spec: Path, store: Path, work: Path, params=()):
    """Compile, write the files, run pipeline.yaml with the driver; (task runs, results by node id)."""
    result = compile_file(str(spec), list(params))
    artifact = kubeflow.compile(result.ir, {})
    out = work / "out"
    shutil.rmtree(out, ignore_errors=True)
    for rel, data in artifact.files.items():
        (out / rel).parent.mkdir(parents=True, exist_ok=True)
        (out / rel).write_bytes(data)
    [ir_file] = [rel for rel in artifact.files if rel.endswith(".ir.json")]
    pipeline = yaml.safe_load(artifact.files["pipeline.yaml"])
    runs = kfp_check.run_pipeline(pipeline, {"ir": str(out / ir_file), "store": str(store), "root": str(spec.parent)},
                                  work / "tasks")
    results = {}
    for name, run in runs.items():
        node = pipeline["root"]["dag"]["tasks"][name]["taskInfo"]["name"]
        if run.status == "succeeded":
            results[node] = json.loads(run.outputs["result"])
    return runs, results


@pytest.fixture(scope="module")
def churn(tmp_path_factory):
    base = tmp_path_factory.mktemp("kfp")
    shutil.copytree(ROOT / "examples" / "churn", base / "churn", ignore=shutil.ignore_patterns(".pipespec"))
    spec = base / "churn" / "pipeline.yaml"
    local = local_run(spec, base / "local")
    runs, results = kfp_run(spec, base / "kfp", base / "work")
    return spec, base, local, runs, results


def test_every_task_succeeds_with_the_local_keys_and_digests(churn):
    _, _, local, runs, results = churn
    assert local.exit_code == 0
    assert {n: r.status for n, r in runs.items()} == {n: "succeeded" for n in runs}, \
        {n: r.stderr[-2000:] for n, r in runs.items() if r.status != "succeeded"}
    assert {r.id: (r.key, r.digest) for r in local.results} == {
        n: (d["key"], d["digest"]) for n, d in results.items()}
    assert all(d["digest"] for d in results.values())


def test_the_tasks_ran_the_manifest_command_lines(churn):
    _, base, _, runs, _ = churn
    gate = runs["gate-model-quality"]
    assert gate.argv[:2] == ["pipespec", "step"] or gate.argv[1:3] == ["-m", "pipespec"]
    assert gate.argv[-7:-5] == ["--no-retries", "--result-file"] and gate.argv[-4] == "--digest-file"
    assert gate.argv[-2] == "--passed-file"
    assert gate.outputs["passed"] is True
    assert runs["rollout-churn-gbm"].outputs["result"].endswith("\n")
    assert json.loads(runs["rollout-churn-gbm"].outputs["result"])["summary"]["outcome"] == "promoted"


def test_a_failed_gate_is_false_and_the_rollout_is_not_triggered(churn):
    spec, base, _, _, _ = churn
    local = local_run(spec, base / "local", ["min_auc=0.99"])
    runs, results = kfp_run(spec, base / "kfp", base / "work-gate", ["min_auc=0.99"])
    assert local.exit_code == 3
    assert runs["gate-model-quality"].status == "succeeded" and runs["gate-model-quality"].outputs["passed"] is False
    assert runs["rollout-churn-gbm"].status == "not_triggered"
    assert {r.id: (r.key, r.digest) for r in local.results if r.id != "rollout.churn_gbm"} == {
        n: (d["key"], d["digest"]) for n, d in results.items()}
    assert {r.id: r.status for r in local.results}["rollout.churn_gbm"] == "blocked"


def test_a_second_run_reuses_the_store(churn):
    spec, base, _, _, first = churn
    runs, again = kfp_run(spec, base / "kfp", base / "work-again")
    assert {d["status"] for d in again.values()} == {"cached"}
    assert {n: d["digest"] for n, d in again.items()} == {n: d["digest"] for n, d in first.items()}
    # what downstream tasks take as inputs (so KFP's own cache key) is the same on both runs,
    # although the result lines differ (status cached, seconds)
    first_runs = churn[3]
    assert {n: r.outputs["digest"] for n, r in runs.items()} == {n: r.outputs["digest"] for n, r in first_runs.items()}
    assert all(r.outputs["digest"] == again[r.outputs and json.loads(r.outputs["result"])["id"]]["digest"]
               for r in runs.values())
