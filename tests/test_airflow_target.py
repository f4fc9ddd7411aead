"""The `airflow` compile target against a real Airflow 3: every example and valid spec gives
a file that parses, loads in a DagBag with no import errors, and whose tasks and edges are
the IR's; golden files per example; the file reads like a hand-written one (lines of at most
100 columns, ruff-clean); the kubernetes flavour's pods build offline.

Refresh the golden files with `pytest --update-golden` and review the diff."""

from __future__ import annotations

import ast
import dataclasses
import json
import hashlib
import re
import subprocess
import sys
from pathlib import Path

import pytest

import airflow_env  # noqa: F401  (sets AIRFLOW_HOME before airflow is imported)
from pipespec.compiler import ir
from pipespec.compiler.lower import compile_file
from pipespec.runtime import executor, stepcli
from pipespec.targets import airflow as target
from pipespec.targets.airflow import dagfile
from pipespec.targets import kube
from pipespec.targets.base import UnsupportedError
from pipespec.targets.registry import TARGETS

pytestmark = pytest.mark.airflow
pytest.importorskip("airflow")

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ("churn", "demand")
VALID = sorted((ROOT / "specs" / "valid").glob("*.yaml"))
IMAGE = {"image": "registry.example/pipespec:1"}


def graph(spec: Path, *params: str) -> ir.Graph:
    result = compile_file(str(spec), list(params))
    assert result.ir is not None, result.diagnostics
    return result.ir


def dag_file(files: dict[str, bytes]) -> bytes:
    (name,) = [n for n in files if n.endswith(".py")]
    return files[name]


@pytest.mark.parametrize("flavour", target.FLAVOURS)
@pytest.mark.parametrize("example", EXAMPLES)
def test_each_example_compiles_to_its_golden_dag(example, flavour, golden):
    files = target.compile(graph(ROOT / "examples" / example / "pipeline.yaml"), dict(IMAGE, operator=flavour)).files
    golden.check(f"airflow/{example}/{flavour}", {rel: data for rel, data in files.items()
                                                   if not rel.endswith(".ir.json")})


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_output_is_the_dag_and_the_canonical_ir_and_is_deterministic(example):
    g = graph(ROOT / "examples" / example / "pipeline.yaml")
    files = target.compile(g, IMAGE).files
    (ir_file,) = [n for n in files if n.endswith(".ir.json")]
    canonical = TARGETS["ir"].compile(g, {}).files[f"{g.pipeline}.ir.json"]
    assert files[ir_file] == canonical
    assert ir_file == f"{g.pipeline}.{hashlib.sha256(canonical).hexdigest()[:12]}.ir.json"  # named by content
    tree = ast.parse(dag_file(files))
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets
                if isinstance(t, ast.Name)}
    assert ast.literal_eval(assigned["IR_SHA256"]) == hashlib.sha256(files[ir_file]).hexdigest()
    assert target.compile(graph(ROOT / "examples" / example / "pipeline.yaml"), IMAGE).files == files
    text = dag_file(files).decode()
    assert str(ROOT) not in text and "pipespec 0." not in text  # no paths or versions inside


HEAVY = ("pipespec", "pyarrow", "sklearn", "ray", "numpy", "pandas")


@pytest.mark.parametrize("flavour", target.FLAVOURS)
def test_the_dag_file_imports_nothing_heavy_at_module_level(flavour):
    text = dag_file(target.compile(graph(ROOT / "examples" / "churn" / "pipeline.yaml"),
                                   dict(IMAGE, operator=flavour)).files)
    tree = ast.parse(text)
    top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
    names = [a.name for n in top for a in n.names] + [n.module or "" for n in top if isinstance(n, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] in HEAVY]


def columns(line: str) -> int:
    import unicodedata

    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in line)


@pytest.mark.parametrize("flavour", target.FLAVOURS)
def test_the_dag_file_reads_like_a_hand_written_one(flavour):
    """One statement per task, `>>` wiring, real datetime literals, lines of at most 100."""
    g = graph(ROOT / "examples" / "churn" / "pipeline.yaml")
    text = dag_file(target.compile(g, dict(IMAGE, operator=flavour)).files).decode()
    assert max(columns(line) for line in text.splitlines()) <= 100
    assert "start_date=datetime.datetime(2025, 5, 5, tzinfo=datetime.timezone.utc)," in text
    assert "TASKS" not in text and "for _" not in text  # no table and loop
    assert '    train_churn_gbm = Pipespec' in text and '        task_id="train_churn_gbm",' in text
    assert "    [feature_churn_features, train_churn_gbm] >> evaluate_churn_gbm\n" in text
    assert 'description="Weekly churn-risk model for a telecom\'s postpaid customers.",' in text
    assert "retry_delay\": datetime.timedelta(minutes=10)" in text
    hold = text[text.index("class Hold"):].split("\n\n\n")[0]
    assert len(hold.splitlines()) <= 6  # the provider workaround stays small


def ruff(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ruff", *args, "--no-cache", "--config",
                           str(ROOT / "pyproject.toml")], capture_output=True, text=True, timeout=120,
                          check=False)


def test_ruff_accepts_every_generated_dag(tmp_path):
    """`ruff check` and `ruff format --check` (the project's settings: line length 100) on the DAG
    of every example and valid spec in every flavour, and on one full of hostile strings."""
    pytest.importorskip("ruff")
    for flavour in target.FLAVOURS:
        compile_all(tmp_path / flavour, flavour)
    hostile = "'\"\\ {{ x }}\u2028中文 " * 50 + "x" * 300
    bad = dataclasses.replace(graph(ROOT / "examples" / "churn" / "pipeline.yaml"), description=hostile)
    airflow_env.write(target.compile(bad, {"store": hostile, "owner": hostile}).files, tmp_path / "hostile")
    dags = sorted(str(p) for p in tmp_path.rglob("*.py"))
    assert len(dags) == 3 * (len(EXAMPLES) + len(VALID)) + 1
    for path in dags:
        assert max(columns(line) for line in Path(path).read_text().splitlines()) <= 100, path
    done = ruff("check", *dags)
    assert done.returncode == 0, done.stdout[-3000:]
    done = ruff("format", "--check", "--diff", *dags)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]


def test_long_strings_are_split_into_parts_that_read_back_whole():
    from pipespec.targets.airflow import layout

    for text in ["word " * 80, "x" * 700, "a\nb\n" * 40, "'\"" * 90, "中" * 120, "\u2028\x85" * 40]:
        parts = layout.parts(text, 8)
        assert "".join(parts) == text and all(8 + columns(repr(p)) <= 100 for p in parts)
        assert ast.literal_eval("(" + " ".join(repr(p) for p in parts) + ")") == text
    assert layout.parts("Tariff.\n\n*Source*", 12) == ("Tariff.\n\n*Source*",)  # ruff joins what fits


def test_the_description_is_cut_at_a_sentence_or_a_word_never_inside_one():
    assert target.summary("Short.\nSecond line.") == "Short."
    long_sentence = "A pipeline " + "that does things " * 20
    cut = target.summary(long_sentence)
    assert cut.endswith("…") and len(cut) <= 200 and long_sentence.startswith(cut[:-1])
    assert long_sentence[len(cut) - 1] == " "  # the cut falls between words
    assert target.summary("First sentence here. " + "More words " * 30) == "First sentence here."


def test_task_ids_have_one_separator_and_variables_fit():
    """`_` only (`rollout_m_step1`, `rollout_m_hold1`); a task id too long for a readable
    variable gets `task_<n>`, and every id is still checked for collisions."""
    g = graph(ROOT / "examples" / "churn" / "pipeline.yaml")
    tasks = target.task_table(g, {"operator": "python"})
    assert all(re.fullmatch(r"[A-Za-z0-9_]+", t.task_id) for t in tasks)
    long = tasks[0].__class__("source_" + "x" * 100, "source.x", "node", None, ())
    names = dagfile._variables([long, *tasks])
    assert names[long.task_id] == "task_1" and names["train_churn_gbm"] == "train_churn_gbm"


def rollout_steps(node: ir.Rollout) -> list[int | None]:
    """The hold (or None) of each step task SPEC.md §13/§18 promises, per strategy."""
    if node.strategy == "direct":
        return []
    if node.strategy == "blue_green":
        return [node.steps[0].hold_seconds if node.steps else None]
    if node.strategy == "shadow" and not node.steps:
        return [None]
    return [st.hold_seconds for st in node.steps]


def expected_tasks(g: ir.Graph) -> dict[str, set[str]]:
    """task id -> upstream task ids, derived from the IR and the documented rules."""
    want: dict[str, set[str]] = {}
    for node in g.nodes:
        tid = node.id.replace(".", "_")
        upstream = {p.node.replace(".", "_") for p in node.inputs}
        if node.kind == "Rollout":
            last = upstream
            for k, hold in enumerate(rollout_steps(node), start=1):
                want[f"{tid}_step{k}"], last = last, {f"{tid}_step{k}"}
                if hold:
                    want[f"{tid}_hold{k}"], last = last, {f"{tid}_hold{k}"}
            upstream = upstream | last
        want[tid] = upstream
    return want


def compile_all(tmp: Path, flavour: str) -> dict[str, ir.Graph]:
    graphs = {}
    specs = [ROOT / "examples" / e / "pipeline.yaml" for e in EXAMPLES] + VALID
    for spec in specs:
        dag_id = f"{spec.parent.name}-{spec.stem}"
        g = graph(spec)
        airflow_env.write(target.compile(g, dict(IMAGE, operator=flavour, dag_id=dag_id)).files, tmp / dag_id)
        graphs[dag_id] = g
    return graphs


@pytest.mark.parametrize("flavour", target.FLAVOURS)
def test_every_example_and_valid_spec_loads_in_a_dagbag_with_the_ir_tasks_and_edges(tmp_path, flavour):
    graphs = compile_all(tmp_path, flavour)
    for folder in tmp_path.iterdir():
        ast.parse((next(folder.glob("*.py"))).read_text())
    bag = airflow_env.dagbag(tmp_path)
    assert bag.import_errors == {}
    assert sorted(bag.dag_ids) == sorted(graphs)
    for dag_id, g in graphs.items():
        dag = bag.dags.get(dag_id)
        got = {t.task_id: set(t.upstream_task_ids) for t in dag.tasks}
        assert got == expected_tasks(g), dag_id


def test_spec_options_reach_the_dag(tmp_path):
    g = graph(ROOT / "examples" / "churn" / "pipeline.yaml")
    bag = airflow_env.dagbag(airflow_env.write(target.compile(g, {}).files, tmp_path))
    dag = bag.dags.get("telecom_churn_weekly")
    assert dag.schedule == "0 4 * * 1"
    assert dag.start_date.isoformat().startswith("2025-05-05") and dag.catchup is False
    assert set(dag.tags) == {"churn", "telecom", "ml"}
    train = dag.get_task("train_churn_gbm")
    assert (train.owner, train.retries, train.pool_slots) == ("customer-analytics", 1, 2)  # node retries: 1
    source = dag.get_task("source_customers")
    assert source.retries == 2 and source.retry_delay.total_seconds() == 600  # targets.airflow defaults
    from airflow.providers.standard.operators.python import ShortCircuitOperator

    assert isinstance(dag.get_task("gate_model_quality"), ShortCircuitOperator)
    hold = dag.get_task("rollout_churn_gbm_hold2")
    assert type(hold).__name__ == "Hold" and hold.time_to_wait.total_seconds() == 7200
    assert dag.get_task("rollout_churn_gbm").trigger_rule == "none_failed"


KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""


def test_kubernetes_flavour_builds_the_pod_offline(tmp_path):
    """The operator's own pod request, built without a cluster (a kubeconfig naming an
    address nothing listens on: building the request never connects)."""
    (tmp_path / "kubeconfig").write_text(KUBECONFIG)
    tmp_path = tmp_path / "dags"
    g = graph(ROOT / "examples" / "demand" / "pipeline.yaml")  # operator: kubernetes in the spec
    files = target.compile(g, {"store": "s3://bucket/store"}).files
    bag = airflow_env.dagbag(airflow_env.write(files, tmp_path))
    assert bag.import_errors == {}
    dag = bag.dags.get("retail_demand_daily")
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator

    pods = [t for t in dag.tasks if isinstance(t, KubernetesPodOperator)]
    assert len(pods) == len([t for t in dag.tasks if type(t).__name__ != "Hold"]) > 0
    for op in pods:
        assert op.template_fields == ()  # no Jinja over anything that came from the spec
        op.config_file = str(tmp_path.parent / "kubeconfig")
        pod = op.build_pod_request_obj()
        container = next(c for c in pod.spec.containers if c.name == "base")
        assert [c.name for c in pod.spec.containers] == ["base", "airflow-xcom-sidecar"]
        assert container.image == "ghcr.io/example/pipespec-runtime:0.1"
        assert pod.metadata.namespace == "ml-pipelines"
        assert container.command == ["pipespec"]
        args = container.args
        (ir_file,) = [n for n in files if n.endswith(".ir.json")]
        assert args[:2] == ["step", f"/pipespec/{ir_file}"]
        assert args[args.index("--ir-sha256") + 1] == hashlib.sha256(files[ir_file]).hexdigest()
        assert args[args.index("--store") + 1] == "s3://bucket/store" and "--no-retries" in args
        assert kube.DNS_LABEL.match(op.name) and len(op.name) <= 50
        assert set(op.skip_on_exit_code) == ({3, 4, 5} if re.search(r"_step\d+$", op.task_id) else {3})
    node = next(n for n in g.nodes if n.resources and n.resources.cpus)
    pod = dag.get_task(target.task_id(node.id)).build_pod_request_obj()  # (config_file set above)
    resources = pod.spec.containers[0].resources
    assert resources.requests["cpu"] == kube.cpu_quantity(node.resources.cpus)
    if node.resources.memory_bytes:
        assert resources.requests["memory"] == resources.limits["memory"] == kube.memory_quantity(
            node.resources.memory_bytes)


def test_resources_become_kubernetes_requests_and_limits():
    res = ir.Resources(cpus=0.5, memory_bytes=4 * 2**30, gpus=1)
    assert target._k8s_requests(res) == {"requests": {"cpu": "500m", "memory": "4Gi"},
                                         "limits": {"memory": "4Gi", "nvidia.com/gpu": "1"}}
    assert target._k8s_requests(ir.Resources()) is None


def test_task_ids_that_collide_after_sanitizing_are_one_error_naming_both():
    nodes = (ir.Source(id="source.a.b", name="a.b", format="csv", path="x.csv", output=ir.TableType(columns=())),
             ir.Source(id="source.a_b", name="a_b", format="csv", path="y.csv", output=ir.TableType(columns=())))
    g = ir.Graph(pipeline="p", nodes=nodes)
    with pytest.raises(UnsupportedError) as err:
        target.compile(g, {})
    assert "source.a_b" in str(err.value) and "source.a.b" in str(err.value)


def test_pod_names_are_dns_labels_with_a_hash_suffix_when_long():
    long = "feature." + "x" * 120
    name = target.pod_name(long)
    assert kube.DNS_LABEL.match(name) and len(name) <= 50
    assert name != target.pod_name(long + "y") and name == target.pod_name(long)


def test_bad_options_are_reported_together():
    g = graph(ROOT / "examples" / "churn" / "pipeline.yaml")
    with pytest.raises(UnsupportedError) as err:
        target.compile(g, {"operator": "docker", "colour": "red"})
    text = str(err.value)
    assert "docker" in text and "colour" in text
    bad = dataclasses.replace(g, targets=json.dumps({"airflow": {"tags": ["t" * 101]}}))
    with pytest.raises(UnsupportedError, match="100 characters"):
        target.compile(bad, {})
    with pytest.raises(UnsupportedError, match="needs an image"):
        target.compile(g, {"operator": "kubernetes", "image": ""})


def test_a_dag_whose_ir_was_replaced_fails_to_import_with_a_clear_message(tmp_path):
    g = graph(ROOT / "examples" / "churn" / "pipeline.yaml")
    folder = airflow_env.write(target.compile(g, {}).files, tmp_path)
    (ir_path,) = folder.glob("*.ir.json")
    ir_path.write_bytes(ir_path.read_bytes().replace(b'"pipeline"', b'"pipeline" ', 1))
    errors = airflow_env.dagbag(folder).import_errors
    assert len(errors) == 1 and "is not the IR this DAG was compiled with" in next(iter(errors.values()))


def test_a_dag_deployed_without_its_ir_says_so(tmp_path):
    g = graph(ROOT / "examples" / "churn" / "pipeline.yaml")
    folder = airflow_env.write({k: v for k, v in target.compile(g, {}).files.items() if k.endswith(".py")},
                               tmp_path)
    errors = airflow_env.dagbag(folder).import_errors
    assert len(errors) == 1 and ".ir.json is missing: deploy it beside this DAG" in next(iter(errors.values()))


def test_the_exit_codes_the_dag_maps_are_pipespec_steps():
    assert (target.EXIT_GATE, target.EXIT_ROLLED_BACK, target.EXIT_DECIDED) == (
        executor.EXIT_GATE, executor.EXIT_ROLLED_BACK, stepcli.EXIT_DECIDED)


def test_a_bad_namespace_is_rejected():
    g = graph(ROOT / "examples" / "churn" / "pipeline.yaml")
    with pytest.raises(UnsupportedError, match="not a Kubernetes namespace"):
        target.compile(g, {"operator": "kubernetes", "image": "i:1", "namespace": "Bad_NS"})


GOOD_CRON = ["0 4 * * 1", "*/15 0-6,22 1 JAN-MAR mon-fri", "0 0 * * 7", "5-10/2 * * * *", "@continuous", "@once",
             "0 0 L * *", "0 9 * * MON#1", "0 0 ? * *", "0 0 15W * *", "0 0 * * L5", "0 0 * * * *"]
BAD_CRON = ["a b c d e", "L L L L L", "99 99 * * *", "0 0 1 13 *", "0 0 */0 * *", "0 0 32W * *", "0 0 * * 1#6",
            "0 0 * * XYZ#1", "0 0 * * 5L"]


def test_the_compiler_accepts_the_schedules_airflow_accepts_and_rejects_the_others(tmp_path):
    from pipespec.compiler.spec import SCHEDULE_PRESETS, cron_problem

    g = graph(ROOT / "examples" / "churn" / "pipeline.yaml")
    for name, schedules in (("good", GOOD_CRON), ("bad", BAD_CRON)):
        for i, schedule in enumerate(schedules):
            accepted = schedule in SCHEDULE_PRESETS or cron_problem(schedule) is None
            assert accepted == (name == "good"), schedule
            airflow_opts = {"schedule": schedule, "start_date": "2025-01-01", "dag_id": f"{name}{i}"}
            bad = dataclasses.replace(g, targets=json.dumps({"airflow": airflow_opts}))
            airflow_env.write(target.compile(bad, {}).files, tmp_path / name / str(i))
    assert airflow_env.dagbag(tmp_path / "good").import_errors == {}
    assert len(airflow_env.dagbag(tmp_path / "bad").import_errors) == len(BAD_CRON)  # Airflow agrees


def test_compile_target_airflow_through_the_cli(tmp_path):
    from click.testing import CliRunner
    from pipespec.cli import main

    out = tmp_path / "dags"
    done = CliRunner().invoke(main, ["compile", str(ROOT / "examples" / "churn" / "pipeline.yaml"),
                                     "--target", "airflow", "-o", str(out), "--option", "operator=bash"])
    assert done.exit_code == 0, done.output
    assert sorted(p.suffix for p in out.iterdir()) == [".json", ".py"]
    assert "class PipespecStep(BashOperator)" in (out / "telecom_churn_weekly.py").read_text()
    bad = CliRunner().invoke(main, ["compile", str(ROOT / "examples" / "churn" / "pipeline.yaml"),
                                    "--target", "airflow", "-o", str(out), "--option", "operator=docker"])
    assert bad.exit_code == 1 and "'docker' is not one of python, bash, kubernetes" in bad.output


def test_a_rolled_back_decision_pod_fails_without_retries_other_failures_retry(tmp_path, monkeypatch):
    """PipespecPod.cleanup on pod objects as the API returns them.  The provider's own cleanup
    talks to the cluster (patch, read, delete) before it raises, so here it is replaced by what
    it raises for a failed pod (its message, the same exception); there is no cluster offline."""
    from airflow.providers.cncf.kubernetes.operators.pod import KubernetesPodOperator
    from airflow.sdk.exceptions import AirflowException, AirflowFailException
    from kubernetes.client import models as k8s

    def provider_cleanup(self, pod, remote_pod):
        raise AirflowException(f"Pod {pod.metadata.name} returned a failure.")

    monkeypatch.setattr(KubernetesPodOperator, "cleanup", provider_cleanup)
    g = graph(ROOT / "examples" / "demand" / "pipeline.yaml")
    bag = airflow_env.dagbag(airflow_env.write(target.compile(g, {}).files, tmp_path / "dags"))
    dag = bag.dags["retail_demand_daily"]

    def pod(code):
        terminated = k8s.V1ContainerStateTerminated(exit_code=code)
        status = k8s.V1ContainerStatus(name="base", image="i", image_id="", ready=False, restart_count=0,
                                       state=k8s.V1ContainerState(terminated=terminated))
        return k8s.V1Pod(metadata=k8s.V1ObjectMeta(name="p", namespace="n"),
                         status=k8s.V1PodStatus(phase="Failed", container_statuses=[status]))

    decision = dag.get_task("rollout_demand_gbm")
    with pytest.raises(AirflowFailException, match="rolled back"):
        decision.cleanup(pod(4), pod(4))
    with pytest.raises(AirflowException) as err:
        decision.cleanup(pod(1), pod(1))
    assert not isinstance(err.value, AirflowFailException)  # an ordinary failure: Airflow retries it


def test_spec_settings_can_be_overridden_with_options_checked_like_the_spec(tmp_path):
    g = graph(ROOT / "examples" / "churn" / "pipeline.yaml")
    files = target.compile(g, {"schedule": "@hourly", "catchup": "true", "retries": "5", "tags": "a,b",
                               "dag_id": "staging_churn"}).files
    dag = airflow_env.dagbag(airflow_env.write(files, tmp_path)).dags["staging_churn"]
    assert dag.catchup is True and set(dag.tags) == {"a", "b"}
    assert dag.get_task("source_customers").retries == 5 and dag.schedule == "@hourly"
    with pytest.raises(UnsupportedError) as err:
        target.compile(g, {"schedule": "99 * * * *", "retries": "x", "catchup": "maybe"})
    text = str(err.value)
    assert "--option schedule: '99 * * * *'" in text and "--option retries" in text and "--option catchup" in text
