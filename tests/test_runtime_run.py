"""End-to-end runs of the examples: caching by node status, invalidation, plan, gates,
rollback, step in a fresh process, sample runs, failures.  Statuses, never timings."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import networkx as nx
import pytest
from click.testing import CliRunner

from pipespec.cli import main
from pipespec.compiler.lower import compile_file
from pipespec.runtime import records
from pipespec.runtime.executor import RunOptions, execute
from pipespec.runtime.plan import plan
from pipespec.runtime.progress import Reporter
from pipespec.runtime.registry import Registry
from pipespec.runtime.store import Store

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def churn_dir(tmp_path_factory) -> Path:
    """One copy of the churn example per module, run once (the expensive part)."""
    target = tmp_path_factory.mktemp("churn") / "churn"
    shutil.copytree(ROOT / "examples" / "churn", target, ignore=shutil.ignore_patterns(".pipespec"))
    return target


def fresh_copy(tmp_path: Path, example: str = "churn") -> Path:
    target = tmp_path / example
    shutil.copytree(ROOT / "examples" / example, target, ignore=shutil.ignore_patterns(".pipespec"))
    return target


def run(spec: Path, *params: str, store: Path | None = None, **options):
    result = compile_file(str(spec), list(params))
    assert result.ir is not None, result.diagnostics
    st = Store(str(store or spec.parent / ".pipespec"))
    report = execute(result.ir, st, str(spec.parent), RunOptions(jobs=2, **options), Reporter(open(os.devnull, "w")))
    return report, {r.id: r for r in report.results}, result.ir


def statuses(by_id) -> dict[str, str]:
    return {k: r.status for k, r in by_id.items()}


def downstream_of(graph, nodes) -> set[str]:
    out = set(nodes)
    for n in nodes:
        out |= nx.descendants(graph.graph, n)
    return out


def cli(*args):
    return CliRunner().invoke(main, list(map(str, args)), catch_exceptions=False)


# --- the churn example, first and second run ---------------------------------------


@pytest.fixture(scope="module")
def churn_runs(churn_dir):
    spec = churn_dir / "pipeline.yaml"
    first = run(spec)
    second = run(spec)
    return spec, first, second


def test_first_run_computes_every_node_and_succeeds(churn_runs):
    _, (report, by_id, graph), _ = churn_runs
    assert report.exit_code == 0, [(r.id, r.reason) for r in report.results if not r.ok]
    assert set(by_id) == {n.id for n in graph.nodes}
    assert set(statuses(by_id).values()) == {"done"}


def test_second_run_reuses_every_node_with_the_same_outputs(churn_runs):
    _, (_, first, _), (report, second, _) = churn_runs
    assert set(statuses(second).values()) == {"cached"}
    assert {k: r.digest for k, r in first.items()} == {k: r.digest for k, r in second.items()}
    assert {k: r.key for k, r in first.items()} == {k: r.key for k, r in second.items()}
    assert report.exit_code == 0


def test_outputs_match_the_compiled_schemas(churn_runs):
    import pyarrow as pa

    from pipespec.runtime import artifacts
    from pipespec.runtime.arrowtypes import schema_of
    spec, (_, by_id, graph), _ = churn_runs
    store = Store(str(spec.parent / ".pipespec"))
    for node in graph.nodes:
        if node.kind in ("Source", "Transform"):
            table = artifacts.decode_table(store.get(by_id[node.id].digest))
            assert isinstance(table, pa.Table)
            assert table.schema.remove_metadata() == schema_of(node.output), node.id


def test_run_record_lists_every_node_with_key_status_and_digest(churn_runs):
    spec, _, (report, by_id, graph) = churn_runs
    record = json.loads(Path(report.record_path).read_text())
    assert record["status"] == "ok" and record["pipeline"] == "telecom-churn"
    assert [n["id"] for n in record["nodes"]] == [n.id for n in graph.nodes]
    for n in record["nodes"]:
        assert n["key"] == by_id[n["id"]].key and n["digest"] == by_id[n["id"]].digest
        assert n["status"] == "cached" and n["seconds"] >= 0


def test_plan_after_a_run_says_everything_is_cached(churn_runs):
    spec = churn_runs[0]
    out = cli("plan", spec)
    assert out.exit_code == 0, out.output
    assert "everything is cached" in out.output
    data = json.loads(cli("plan", spec, "--format", "json").output)
    assert data["will_run"] == 0 and {n["action"] for n in data["nodes"]} == {"cached"}


def test_the_model_is_registered_and_promoted_and_has_a_card(churn_runs):
    spec, (_, by_id, _), _ = churn_runs
    store = Store(str(spec.parent / ".pipespec"))
    registry = Registry(store)
    prod = registry.production("telecom-churn", "churn_gbm")
    assert prod is not None and prod["digest"] == by_id["train.churn_gbm"].digest
    assert prod["metrics"]["roc_auc"] > 0.75
    card = store.read_bytes("cards/telecom-churn/churn_gbm.md").decode()
    assert "roc_auc" in card and "simulated" in card.lower()


# --- invalidation -----------------------------------------------------------------


def test_changing_a_param_reruns_exactly_the_nodes_downstream_of_it(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    run(spec)
    _, by_id, graph = run(spec, "min_tenure_days=60")
    users = {n.id for n in graph.nodes if "min_tenure_days" in dict(n.params)}
    assert users == {"feature.churn_features", "gate.training_data"}
    expected = downstream_of(graph, users)
    ran = {k for k, s in statuses(by_id).items() if s == "done"}
    assert ran == expected
    assert {k for k, s in statuses(by_id).items() if s == "cached"} == set(by_id) - expected


def test_plan_names_the_param_that_changed(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    run(spec)
    data = json.loads(cli("plan", spec, "-p", "min_tenure_days=60", "--format", "json").output)
    actions = {n["id"]: n for n in data["nodes"]}
    assert actions["feature.churn_features"]["action"] == "run"
    assert "param min_tenure_days changed (30 -> 60)" in actions["feature.churn_features"]["reason"]
    assert actions["train.churn_gbm"]["reason"] == "input feature.churn_features will run"
    assert actions["source.customers"]["action"] == "cached"


def test_editing_one_derived_column_reruns_that_feature_and_its_dependents(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    _, before, _ = run(spec)
    text = spec.read_text()
    spec.write_text(text.replace("under_30: age < 30", "under_30: age < 40"))
    _, after, graph = run(spec)
    ran = {k for k, s in statuses(after).items() if s == "done"}
    assert "feature.customer_plans" in ran
    assert ran <= downstream_of(graph, {"feature.customer_plans"})
    # below the edit, a node re-runs exactly when one of its inputs' bytes changed (early cut-off)
    for node in graph.nodes:
        if node.id == "feature.customer_plans" or node.id not in ran and node.id not in downstream_of(
                graph, {"feature.customer_plans"}):
            continue
        changed = any(before[i.node].digest != after[i.node].digest for i in node.inputs)
        assert (node.id in ran) == changed, node.id
    assert {"feature.churn_features", "train.churn_gbm"} <= ran


def test_touching_a_source_without_changing_its_bytes_reruns_nothing(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    run(spec)
    data = spec.parent / "data" / "customers.csv"
    os.utime(data, ns=(data.stat().st_atime_ns, data.stat().st_mtime_ns + 10**9))
    _, by_id, _ = run(spec)
    assert set(statuses(by_id).values()) == {"cached"}


def test_changing_a_source_reruns_it_and_plan_says_why(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    run(spec)
    plans = spec.parent / "data" / "plans.csv"
    plans.write_text(plans.read_text().replace("\n", "\r\n"))  # same rows, different bytes
    items = {i.id: i for i in plan(compile_file(str(spec), []).ir, Store(str(spec.parent / ".pipespec")),
                                   str(spec.parent), RunOptions())}
    assert items["source.plans"].action == "run"
    assert items["source.plans"].reason.startswith("source plans changed (digest ")
    assert items["source.customers"].action == "cached"
    _, by_id, _ = run(spec)
    assert by_id["source.plans"].status == "done"
    # same rows -> same table -> everything downstream reused (early cut-off)
    assert by_id["feature.customer_plans"].status == "cached"


# --- gates and rollout ----------------------------------------------------------------


def test_a_failed_gate_stops_the_rollout_with_exit_code_3(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    out = cli("run", spec, "-p", "min_auc=0.999", "--no-progress")
    assert out.exit_code == 3, out.output
    assert "gate gate.model_quality failed" in out.output
    assert "FAIL roc_auc >= params.min_auc" in out.output and "threshold 0.999" in out.output
    record = records.latest(Store(str(spec.parent / ".pipespec")), "telecom-churn")[0]
    by_id = {n["id"]: n for n in record["nodes"]}
    assert by_id["rollout.churn_gbm"]["status"] == "blocked"
    assert record["status"] == "gate_failed"
    assert Registry(Store(str(spec.parent / ".pipespec"))).production("telecom-churn", "churn_gbm") is None


def test_rollback_when_rollback_if_triggers(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    spec.write_text(spec.read_text().replace(
        "rollback_if: error_rate > 0.02 or latency_p99_ms > 250 or prediction_drift > 0.3",
        "rollback_if: latency_p99_ms >= 0"))
    out = cli("run", spec, "--no-progress")
    assert out.exit_code == 4, out.output
    assert "rolled_back" in out.output and "step 1" in out.output
    registry = Registry(Store(str(spec.parent / ".pipespec")))
    assert registry.production("telecom-churn", "churn_gbm") is None
    (version,) = registry.versions("telecom-churn", "churn_gbm")
    assert version["stage"] == "archived"


# --- step in a fresh process ------------------------------------------------------------


@pytest.mark.slow
def test_step_in_fresh_processes_gives_the_same_keys_and_digests(churn_runs, tmp_path):
    spec, (_, local, graph), _ = churn_runs
    ir_path = tmp_path / "ir.json"
    ir_path.write_text(graph.to_json())
    store = tmp_path / "store"
    for node in graph.nodes:
        proc = subprocess.run([sys.executable, "-m", "pipespec", "step", str(ir_path), "--node", node.id,
                               "--store", str(store), "--root", str(spec.parent)],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        line = json.loads(proc.stdout.strip().splitlines()[-1])
        assert line["status"] == "done", line
        assert (line["key"], line["digest"]) == (local[node.id].key, local[node.id].digest), node.id
    again = subprocess.run([sys.executable, "-m", "pipespec", "step", str(ir_path), "--node",
                            "train.churn_gbm", "--store", str(store), "--root", str(spec.parent)],
                           capture_output=True, text=True, timeout=300)
    assert json.loads(again.stdout.strip().splitlines()[-1])["status"] == "cached"


def test_step_before_its_inputs_ran_is_a_clear_error(churn_runs, tmp_path):
    spec, (_, _, graph), _ = churn_runs
    ir_path = tmp_path / "ir.json"
    ir_path.write_text(graph.to_json())
    out = cli("step", ir_path, "--node", "train.churn_gbm", "--store", tmp_path / "empty",
              "--root", spec.parent)
    assert out.exit_code == 1
    line = json.loads(out.output.strip().splitlines()[-1])
    assert line["code"] == "E0807" and "upstream" in line["error"]


# --- sample runs ------------------------------------------------------------------------


def test_sample_run_uses_its_own_namespace_and_leaves_the_registry_alone(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    out = cli("run", spec, "--sample", "800", "--seed", "3", "--no-progress", "-p", "min_auc=0.5")
    assert "sample run" in out.output and "800 rows" in out.output
    store = Store(str(spec.parent / ".pipespec"))
    assert Registry(store).models() == []
    assert records.pipelines(store) == []  # no full run recorded
    ns = store.namespace("sample-800-seed3")
    (record,) = records.latest(ns, "telecom-churn", 5)
    assert record["sample"] == {"rows": 800, "seed": 3}
    by_id = {n["id"]: n for n in record["nodes"]}
    assert by_id["source.customers"]["rows"] == 800
    again = cli("run", spec, "--sample", "800", "--seed", "3", "--no-progress", "-p", "min_auc=0.5")
    assert again.exit_code == out.exit_code
    (latest, _) = records.latest(ns, "telecom-churn", 5)
    assert {n["status"] for n in latest["nodes"]} == {"cached"}


# --- failures ---------------------------------------------------------------------------


def test_a_missing_source_fails_its_branch_only_and_points_at_the_yaml(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    (spec.parent / "data" / "usage.parquet").unlink()
    out = cli("run", spec, "--no-progress")
    assert out.exit_code == 1
    assert "pipeline.yaml:48:3: error[E0801]" in out.output
    record = records.latest(Store(str(spec.parent / ".pipespec")), "telecom-churn")[0]
    by_id = {n["id"]: n["status"] for n in record["nodes"]}
    assert by_id["source.usage"] == "failed"
    assert by_id["feature.customer_plans"] == "done"  # independent branch still finished
    assert by_id["feature.usage_recent"] == "skipped" and by_id["train.churn_gbm"] == "skipped"


def test_unknown_only_node_is_a_usage_error_with_a_suggestion(churn_runs):
    out = cli("run", churn_runs[0], "--only", "churn_featurs", "--no-progress")
    assert out.exit_code == 2 and "E0808" in out.output and "churn_features" in out.output


def test_only_runs_the_node_and_what_it_reads(tmp_path):
    spec = fresh_copy(tmp_path) / "pipeline.yaml"
    report, by_id, _ = run(spec, only=("usage_recent",))
    assert set(by_id) == {"source.usage", "feature.usage_recent"}
    report, by_id, _ = run(spec, only=("customer_plans+",), force=("customer_plans",))
    assert by_id["feature.customer_plans"].status == "done"
    assert by_id["source.customers"].status == "done"
    assert "rollout.churn_gbm" in by_id


def test_the_demand_example_runs_then_is_fully_cached(tmp_path):
    spec = fresh_copy(tmp_path, "demand") / "pipeline.yaml"
    report, first, graph = run(spec)
    assert report.exit_code == 0, [(r.id, r.reason) for r in report.results if not r.ok]
    assert set(statuses(first).values()) == {"done"} and len(first) == len(graph.nodes) == 22
    assert first["rollout.demand_gbm"].summary["outcome"] == "promoted"
    assert first["rollout.demand_ridge"].summary["outcome"] == "shadowed"
    report, second, _ = run(spec)
    assert set(statuses(second).values()) == {"cached"}
    assert {k: r.digest for k, r in first.items()} == {k: r.digest for k, r in second.items()}
    registry = Registry(Store(str(spec.parent / ".pipespec")))
    assert registry.production("retail-demand", "demand_gbm")["digest"] == first["train.demand_gbm"].digest
    assert registry.production("retail-demand", "demand_ridge") is None  # shadow never promotes


def test_an_ambiguous_name_asks_for_the_id(churn_runs):
    out = cli("show", churn_runs[0], "churn_gbm")
    assert out.exit_code == 2
    assert "names 3 nodes: train.churn_gbm, evaluate.churn_gbm, rollout.churn_gbm" in out.output


def test_show_prints_a_table_head_metrics_and_the_model_card(churn_runs):
    spec = churn_runs[0]
    table = cli("show", spec, "usage_recent", "--rows", "2")
    assert table.exit_code == 0 and "773 rows, 8 columns" in table.output and "customer_id" in table.output
    metrics = json.loads(cli("show", spec, "evaluate.churn_gbm").output)
    assert metrics["metrics"]["roc_auc"] > 0.75
    card = cli("show", spec, "train.churn_gbm").output
    assert card.startswith("# Model card: `churn_gbm`") and "## Data lineage" in card


def test_runs_lists_both_runs_newest_first(churn_runs):
    out = cli("runs", churn_runs[0])
    lines = out.output.strip().splitlines()
    assert len(lines) >= 2 and "0 ran, 11 cached" in lines[0] and "11 ran, 0 cached" in lines[-1]
    assert "churn_gbm.roc_auc=" in lines[0]
