"""The Airflow target refuses ids Airflow would refuse, at compile time, naming the node and
its spec line; the limit is Airflow's own, checked against a real DagBag both ways."""

from __future__ import annotations

from pathlib import Path

import pytest

import airflow_env  # noqa: F401  (sets AIRFLOW_HOME before airflow is imported)
from click.testing import CliRunner
from pipespec.cli import main
from pipespec.compiler.lower import compile_text
from pipespec.targets import airflow as target
from pipespec.targets.base import UnsupportedError

pytestmark = pytest.mark.airflow
pytest.importorskip("airflow")

SPEC = """\
pipespec: 1
pipeline: {pipeline}
sources:
  users:
    format: csv
    path: users.csv
    schema: {{user_id: int64, age: int32, score: float64, active: bool}}
features:
  {feature}:
    from: users
    where: age >= 18
models:
  {model}:
    from: {feature}
    target: active
    features: [age, score]
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [accuracy]
rollout:
  model: {model}
  steps: [{{traffic: 10, hold: 15m}}, {{traffic: 100}}]
"""
FEATURE_LINE = 9


def graph(feature: str = "adults", model: str = "m", pipeline: str = "limits"):
    result = compile_text(SPEC.format(feature=feature, model=model, pipeline=pipeline), "pipeline.yaml")
    assert result.ir is not None, result.diagnostics
    return result.ir


def feature_of_task_id_length(n: int) -> str:
    return "f" * (n - len("feature_"))  # node feature.<name> -> task feature_<name>


def import_errors(files: dict[str, bytes], folder: Path) -> dict:
    return airflow_env.dagbag(airflow_env.write(files, folder)).import_errors


def test_airflow_refuses_ids_over_250_characters_and_that_is_the_limit_we_enforce(tmp_path, monkeypatch):
    """A task id (and a DAG id) of 250 characters imports; at 251 Airflow's DagBag refuses the
    DAG file, and so does the target at compile time."""
    at_limit = graph(feature_of_task_id_length(target.ID_MAX))
    files = target.compile(at_limit, {"dag_id": "d" * target.ID_MAX}).files
    assert import_errors(files, tmp_path / "ok") == {}
    over = graph(feature_of_task_id_length(target.ID_MAX + 1))
    with pytest.raises(UnsupportedError, match="251 characters; Airflow allows at most 250"):
        target.compile(over, {})
    with pytest.raises(UnsupportedError, match="251 characters; Airflow allows at most 250"):
        target.compile(at_limit, {"dag_id": "d" * (target.ID_MAX + 1)})
    monkeypatch.setattr(target, "ID_MAX", 10**6)  # compile what the check refuses: Airflow refuses it too
    errors = import_errors(target.compile(over, {}).files, tmp_path / "task")
    assert len(errors) == 1 and "less than 250 characters, not 251" in next(iter(errors.values()))
    errors = import_errors(target.compile(at_limit, {"dag_id": "d" * 251}).files, tmp_path / "dag")
    assert len(errors) == 1 and "less than 250 characters, not 251" in next(iter(errors.values()))


def test_a_1000_character_feature_name_is_refused_naming_the_node_and_its_line():
    with pytest.raises(UnsupportedError) as err:
        target.compile(graph("x" * 1000), {})
    text = str(err.value)
    assert f"feature.{'x' * 52}… (pipeline.yaml:{FEATURE_LINE}:3)" in text
    assert "1,008 characters; Airflow allows at most 250: shorten the feature's name" in text
    assert len(text) < 400  # the id is shown cut, not in full


def test_rollout_step_task_ids_count_their_suffix():
    """The rollout of a model named to make `rollout_<model>` 249 characters has step tasks
    `…_step1` over the limit: refused, naming the rollout node once."""
    model = "m" * (249 - len("rollout_"))
    with pytest.raises(UnsupportedError) as err:
        target.compile(graph(model=model), {})
    assert [p for p, _ in err.value.problems] == [f"rollout.{'m' * 52}… (pipeline.yaml:19:1)"]
    assert "_hold1' is 255 characters" not in str(err.value)  # the longest id is named


def test_every_long_node_is_one_problem_of_one_error():
    with pytest.raises(UnsupportedError) as err:
        target.compile(graph(feature="f" * 300, model="m" * 300), {})
    kinds = sorted(p.split(".")[0] for p, _ in err.value.problems)
    assert kinds == ["evaluate", "feature", "rollout", "train"]


def test_a_long_dag_id_or_pipeline_name_still_gets_files_the_file_system_takes(tmp_path):
    """A 250-character DAG id is valid, but `<id>.py` plus the writer's temporary suffix is
    over the 255 bytes a file name may have: the file name is cut and hashed, the id is not."""
    files = target.compile(graph(pipeline="p" * 300), {"dag_id": "d" * 250}).files
    assert all(len(name.encode()) <= 220 for name in files)
    assert import_errors(files, tmp_path / "bag") == {}
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(SPEC.format(feature="adults", model="m", pipeline="p" * 300)
                    + "targets:\n  airflow:\n    dag_id: " + "d" * 250 + "\n")
    out = CliRunner().invoke(main, ["compile", str(spec), "--target", "airflow", "-o", str(tmp_path / "out")],
                             catch_exceptions=False)
    assert out.exit_code == 0, out.output
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_short_file_names_are_kept_and_long_ones_differ_by_their_whole_text():
    from pipespec.targets.base import FILE_STEM_MAX, short_file_name
    assert short_file_name("telecom_churn", ".py") == "telecom_churn.py"
    a, b = (short_file_name("x" * 300 + tail, ".py") for tail in "ab")
    assert a != b and len(a) == len(b) == FILE_STEM_MAX + 3


@pytest.mark.parametrize("target_name", ["ir", "kubeflow", "ray", "airflow"])
def test_every_target_writes_a_1000_character_pipeline_name(tmp_path, target_name):
    """File names stay under the 255 bytes file systems allow (was an OSError traceback)."""
    from click.testing import CliRunner

    from pipespec.cli import main
    spec = tmp_path / "p.yaml"
    (tmp_path / "d.csv").write_text("a\n1\n")
    spec.write_text(f"pipespec: 1\npipeline: p{'x' * 999}\nsources:\n"
                    "  d: {format: csv, path: d.csv, schema: {a: int64}}\n")
    extra = ["--option", "dag_id=short"] if target_name == "airflow" else []  # else a clear error
    result = CliRunner().invoke(main, ["compile", str(spec), "--target", target_name,
                                       "-o", str(tmp_path / "out"), *extra])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    names = [p.name for p in (tmp_path / "out").rglob("*") if p.is_file()]
    assert names and all(len(n.encode()) <= 255 for n in names)
