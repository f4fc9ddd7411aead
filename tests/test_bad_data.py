"""Bad data at run time: each failure is a diagnostic at the YAML line of the node that
met it, naming the column and what is wrong with it (issue 11, section 4)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipespec.cli import main
from pipespec.compiler.lower import compile_file
from pipespec.runtime.errors import RunError
from pipespec.runtime.executor import RunOptions, execute
from pipespec.runtime.ops import _modeling as M, evaluate, train
from pipespec.runtime.ops.base import Context
from pipespec.runtime.progress import Reporter
from pipespec.runtime.store import Store

SPEC = """\
pipespec: 1
pipeline: bad-data
sources:
  d:
    format: parquet
    path: {path}
    schema: {{id: int64, a: float64, b: int64, label: bool}}
models:
  m:
    from: d
    target: label
    features: [a, b]
    estimator: {estimator}
    {evaluation}
    metrics: [accuracy, roc_auc]
"""
MODEL_LINE = 9  # `  m:` above


def table(n: int = 60, label=None, a=None) -> pa.Table:
    rs = np.random.RandomState(0)
    a_values = rs.normal(size=n)
    return pa.table({"id": pa.array(np.arange(n)),
                     "a": pa.array(a if a is not None else a_values, pa.float64()),
                     "b": pa.array(rs.randint(0, 10, size=n)),
                     "label": pa.array(label if label is not None else a_values > 0, pa.bool_())})


def write(tmp_path: Path, data: pa.Table | None = None, path: str = "d.parquet",
          estimator: str = "sklearn.tree.DecisionTreeClassifier",
          evaluation: str = "split: {test_size: 0.25, seed: 3}") -> Path:
    if data is not None:
        pq.write_table(data, tmp_path / path)
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(SPEC.format(path=path, estimator=estimator, evaluation=evaluation))
    return spec


def run(spec: Path):
    result = compile_file(str(spec))
    assert result.ir is not None, result.diagnostics
    report = execute(result.ir, Store(str(spec.parent / ".pipespec")), str(spec.parent), RunOptions(jobs=1),
                     Reporter(open(os.devnull, "w")))
    return {r.id: r for r in report.results}


def failure(spec: Path, node: str):
    by_id = run(spec)
    assert by_id[node].status == "failed", by_id[node]
    return by_id[node].error


# --- a classifier target with a single class --------------------------------------------


@pytest.mark.parametrize("estimator", ["sklearn.tree.DecisionTreeClassifier",
                                       "sklearn.ensemble.HistGradientBoostingClassifier",
                                       "sklearn.linear_model.LogisticRegression"])
def test_single_class_target_fails_at_the_model_line_naming_column_and_class(tmp_path, estimator):
    spec = write(tmp_path, table(label=[True] * 60), estimator=estimator)
    error = failure(spec, "train.m")
    assert (error.code, error.span.line) == ("E0803", MODEL_LINE)
    assert "target column 'label' has a single class, True, in all 60 rows of table 'd'" in error.message
    assert "two classes" in error.hint


def test_single_class_training_rows_of_the_split_say_the_table_has_two(tmp_path):
    label = [False] * 2 + [True] * 38
    for seed in range(50):  # a seed whose split holds out both False rows
        spec = write(tmp_path, table(n=40, label=label), evaluation=f"split: {{test_size: 0.25, seed: {seed}}}")
        by_id = run(spec)
        if not by_id["train.m"].ok:
            break
    else:
        pytest.fail("no seed holds out both minority rows")
    error = by_id["train.m"].error
    assert (error.code, error.span.line) == ("E0803", MODEL_LINE)
    assert "has a single class, True, in the 30 training rows of the split (test_size 0.25, seed" in error.message
    assert "though the table has 2 classes (False, True)" in error.message
    assert "stratify" in error.hint


@pytest.mark.filterwarnings("ignore:The least populated class")
def test_single_class_in_the_training_rows_of_a_cv_fold_is_named():
    graph = _graph(evaluation="cv: {folds: 3, seed: 0}")
    data = table(n=30, label=[False] + [True] * 29)
    with pytest.raises(RunError) as err:
        evaluate.run(_context(graph, "evaluate.m", {"model": _unfitted(graph), "table": data}))
    # the fold that holds out the one False row trains on True only
    assert "training rows of cv fold" in err.value.message and "of 3" in err.value.message
    assert "single class, True" in err.value.message and "2 classes (False, True)" in err.value.message


# --- a feature null in every row --------------------------------------------------------


@pytest.mark.parametrize("estimator", ["sklearn.ensemble.HistGradientBoostingClassifier",
                                       "sklearn.tree.DecisionTreeClassifier"])
def test_all_null_feature_fails_at_the_model_line_naming_the_column(tmp_path, estimator):
    spec = write(tmp_path, table(a=[None] * 60), estimator=estimator)
    error = failure(spec, "train.m")
    assert (error.code, error.span.line) == ("E0803", MODEL_LINE)
    assert "feature column 'a' is null in all 60 rows of table 'd'" in error.message
    assert "window shape" not in error.message


def test_all_null_feature_in_the_training_rows_of_the_split(tmp_path):
    a = [None] * 38 + [1.0, 2.0]
    for seed in range(60):
        spec = write(tmp_path, table(n=40, a=a), estimator="sklearn.ensemble.HistGradientBoostingClassifier",
                     evaluation=f"split: {{test_size: 0.25, seed: {seed}}}")
        by_id = run(spec)
        if not by_id["train.m"].ok:
            break
    else:
        pytest.fail("no seed holds out both non-null rows")
    error = by_id["train.m"].error
    assert "feature column 'a' is null in the 30 training rows of the split" in error.message
    assert "though 2 rows of the table have a value: all held out" in error.message


def test_all_null_feature_is_named_by_evaluate_too():
    """Evaluate reads the table again (`pipespec step evaluate.m` after the data changed)."""
    graph = _graph(estimator="sklearn.ensemble.HistGradientBoostingClassifier")
    model = train.run(_context(graph, "train.m", {"table": table()})).value
    with pytest.raises(RunError) as err:
        evaluate.run(_context(graph, "evaluate.m", {"model": model, "table": table(a=[None] * 60)}))
    assert err.value.code == "E0803"
    assert "feature column 'a' is null in all 60 rows of table 'd'" in err.value.message


def test_all_null_feature_in_the_training_rows_of_a_cv_fold():
    graph = _graph(estimator="sklearn.ensemble.HistGradientBoostingClassifier",
                   evaluation="cv: {folds: 3, seed: 0}")
    with pytest.raises(RunError) as err:
        evaluate.run(_context(graph, "evaluate.m", {"model": _unfitted(graph),
                                                   "table": table(n=30, a=[1.0] + [None] * 29)}))
    assert "feature column 'a' is null in the 20 training rows of cv fold" in err.value.message


# --- a data path that is a directory ------------------------------------------------------


def test_source_path_that_is_a_directory_says_so_at_run_time(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    spec = write(tmp_path)
    error = failure(spec, "source.d")
    assert error.code == "E0801" and error.span.line == 4
    assert "d.parquet is a directory, not a file" in error.message and "does not exist" not in error.message


def test_source_path_that_is_a_directory_through_the_cli(tmp_path):
    (tmp_path / "d.parquet").mkdir()
    spec = write(tmp_path)
    out = CliRunner().invoke(main, ["run", str(spec)], catch_exceptions=False)
    assert out.exit_code == 1
    assert "pipeline.yaml:4:3: error[E0801]: source path d.parquet is a directory" in out.output


def test_sqlite_database_that_is_a_directory_says_so(tmp_path):
    (tmp_path / "db").mkdir()
    spec = tmp_path / "pipeline.yaml"
    spec.write_text("pipespec: 1\npipeline: p\nsources:\n  q:\n    format: sql\n    uri: sqlite:///db\n"
                    "    query: select 1 as x\n    schema: {x: int64}\n")
    error = failure(spec, "source.q")
    assert error.code == "E0801" and "is a directory, not a file" in error.message


# --- helpers for op-level tests -----------------------------------------------------------


def _graph(estimator="sklearn.tree.DecisionTreeClassifier", evaluation="split: {test_size: 0.25, seed: 3}"):
    from pipespec.compiler.lower import compile_text
    result = compile_text(SPEC.format(path="d.parquet", estimator=estimator, evaluation=evaluation),
                          "pipeline.yaml", [], base_dir=".")
    assert result.ir is not None, result.diagnostics
    return result.ir


def _unfitted(graph):
    return M.estimator(graph.node("train.m"))


def _context(graph, node_id, inputs) -> Context:
    node = graph.node(node_id)
    digests = {p.role: f"{p.role}-{p.node}".ljust(64, "0") for p in node.inputs}
    return Context(graph=graph, node=node, store=None, registry=None, root=".", input_digests=digests,
                   loader=inputs.__getitem__, digest_of={}.get, sample=None)
