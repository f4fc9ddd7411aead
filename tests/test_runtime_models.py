"""Train, Evaluate and Gate ops, and deterministic, safe model files (runtime/modelio)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import io
import os
import subprocess
import sys
import zipfile

import numpy as np
import pyarrow as pa
import pytest
import skops.io as sio
from pipespec.compiler.lower import compile_text
from pipespec.runtime import modelio
from pipespec.runtime.errors import RunError
from pipespec.runtime.hashing import canonical_json
from pipespec.runtime.ops import _modeling as M
from pipespec.runtime.ops import evaluate, gate, train
from pipespec.runtime.ops.base import Context, Sample
from pipespec.runtime.registry import Registry
from pipespec.runtime.store import Store
from sklearn import metrics as skm
from sklearn.base import clone
from sklearn.model_selection import KFold, StratifiedKFold, train_test_split
from sklearn.preprocessing import label_binarize

CLASSIFICATION = ("accuracy", "balanced_accuracy", "f1", "precision", "recall", "roc_auc", "log_loss",
                  "average_precision")
REGRESSION = ("r2", "mae", "mse", "rmse", "mape", "median_ae", "explained_variance", "max_error")


# --- helpers ------------------------------------------------------------------------


def spec(*, target_type="bool", estimator="sklearn.linear_model.LogisticRegression", params="{}",
         metrics=CLASSIFICATION, evaluation="split: {test_size: 0.25, seed: 3}", gates="") -> str:
    return f"""
pipespec: 1
pipeline: models-test
sources:
  d:
    format: parquet
    path: d.parquet
    schema: {{id: int64, a: float64, b: int64, flag: bool, label: {target_type}, day: date, s: string}}
models:
  m:
    from: d
    target: label
    keys: [id]
    features: [a, b, flag]
    estimator: {estimator}
    params: {params}
    {evaluation}
    metrics: [{", ".join(metrics)}]
{gates}
"""


def compile_ok(text: str):
    result = compile_text(text, "models.yaml", [], base_dir=".")
    assert result.errors == [], result.errors
    return result.ir


def table(n=120, labels="bool", seed=0, nulls_in_a=0) -> pa.Table:
    rs = np.random.RandomState(seed)
    a = rs.normal(size=n)
    b = rs.randint(0, 10, size=n)
    flag = rs.rand(n) > 0.5
    signal = a + 0.3 * b - 1.5 + 0.5 * flag + rs.normal(scale=0.8, size=n)
    label = {"bool": pa.array(signal > 0),
             "string": pa.array(np.array(["low", "mid", "high"])[np.digitize(signal, [-0.5, 0.8])]),
             "int64": pa.array(np.digitize(signal, [-0.5, 0.8]).astype(np.int64)),
             "float64": pa.array(signal)}[labels]
    a_col = pa.array([None if i < nulls_in_a else float(v) for i, v in enumerate(a)], pa.float64())
    return pa.table({"id": pa.array(np.arange(n)), "a": a_col, "b": pa.array(b), "flag": pa.array(flag),
                     "label": label, "day": pa.array([dt.date(2024, 1, 1) + dt.timedelta(days=int(i))
                                                      for i in range(n)]),
                     "s": pa.array([f"v{i % 7}" for i in range(n)])})


def context(graph, node_id, inputs, *, registry=None, digests=None, sample=None, sources=None) -> Context:
    node = graph.node(node_id)
    digests = digests or {p.role: f"{p.role}-{p.node}".ljust(64, "0") for p in node.inputs}
    return Context(graph=graph, node=node, store=None, registry=registry, root=".", input_digests=digests,
                   loader=inputs.__getitem__, digest_of=(sources or {}).get, sample=sample)


def fit_and_evaluate(graph, data, **kw):
    model = train.run(context(graph, "train.m", {"table": data})).value
    out = evaluate.run(context(graph, "evaluate.m", {"model": model, "table": data}, **kw))
    return model, out


def features(data: pa.Table) -> np.ndarray:
    return np.column_stack([data[c].to_numpy(zero_copy_only=False).astype(float) for c in ("a", "b", "flag")])


# --- modelio ------------------------------------------------------------------------


def _forest(seed=1):
    from sklearn.ensemble import RandomForestClassifier

    data = table()
    return RandomForestClassifier(n_estimators=5, random_state=seed).fit(features(data), data["label"].to_numpy())


def test_two_fits_with_the_same_seed_give_identical_bytes():
    assert modelio.dumps(_forest()) == modelio.dumps(_forest())
    assert modelio.dumps(_forest(1)) != modelio.dumps(_forest(2))


FOREST = """
import hashlib, numpy as np
from sklearn.ensemble import RandomForestClassifier
from pipespec.runtime import modelio
rs = np.random.RandomState(0)
X = rs.rand(100, 3)
model = RandomForestClassifier(n_estimators=5, random_state=1).fit(X, X[:, 0] + rs.rand(100) > 1)
digest = hashlib.sha256(modelio.dumps(model)).hexdigest()
"""


def test_model_bytes_are_identical_across_processes():
    here: dict = {}
    exec(FOREST, here)  # noqa: S102 - our own constant code
    digests = [subprocess.run([sys.executable, "-c", FOREST + "print(digest)"], capture_output=True, text=True,
                              check=True, env={**os.environ, "PYTHONHASHSEED": seed}).stdout.strip()
               for seed in ("1", "2")]
    assert digests == [here["digest"]] * 2


def test_round_trip_predicts_identically_and_dumps_the_same_bytes():
    model = _forest()
    data = modelio.dumps(model)
    loaded = modelio.loads(data)
    assert modelio.dumps(loaded) == data
    X = features(table(seed=5))
    assert (loaded.predict_proba(X) == model.predict_proba(X)).all()


def test_zip_members_have_fixed_names_dates_and_no_compression():
    with zipfile.ZipFile(io.BytesIO(modelio.dumps(_forest()))) as z:
        infos = z.infolist()
    assert [i.filename for i in infos][-1] == "schema.json"
    assert [i.filename for i in infos][:3] == ["1.npy", "2.npy", "3.npy"]
    assert {i.date_time for i in infos} == {(1980, 1, 1, 0, 0, 0)}
    assert {i.compress_type for i in infos} == {zipfile.ZIP_STORED}


def test_structured_array_padding_is_zeroed():
    dtype = np.dtype({"names": ["x", "flag"], "formats": ["<i8", "u1"], "offsets": [0, 8], "itemsize": 16})
    array = np.zeros(2, dtype)
    buffer = io.BytesIO()
    np.save(buffer, array)
    raw = bytearray(buffer.getvalue())
    raw[-1] = raw[-7] = 0xAB  # garbage in the padding of both items
    cleaned = modelio._zero_padding(bytes(raw))
    assert cleaned == buffer.getvalue()


class Custom:
    pass


def test_untrusted_custom_class_is_rejected():
    model = _forest()
    model.extra_ = Custom()
    with pytest.raises(RunError) as err:
        modelio.loads(sio.dumps(model))
    assert err.value.code == "E0805"
    assert "untrusted" in err.value.message and "Custom" in err.value.message


def test_functions_under_numpy_are_not_trusted():
    from sklearn.linear_model import LogisticRegression

    model = LogisticRegression()
    model.loader_ = np.load
    with pytest.raises(RunError, match="untrusted types: numpy") as err:
        modelio.loads(sio.dumps(model))
    assert err.value.code == "E0805"


def test_untrusted_types_reported_by_skops_are_checked(monkeypatch):
    monkeypatch.setattr(sio, "get_untrusted_types", lambda data: ["builtins.eval"])
    with pytest.raises(RunError, match="builtins.eval"):
        modelio.loads(modelio.dumps(_forest()))


def test_not_a_skops_file_is_e0805():
    with pytest.raises(RunError) as err:
        modelio.loads(b"not a zip")
    assert err.value.code == "E0805"


# --- train ----------------------------------------------------------------------------


def test_feature_matrix_casts_bools_and_maps_nulls_to_nan():
    data = pa.table({"a": pa.array([1.5, None, 2.0]), "b": pa.array([1, None, 3]),
                     "f": pa.array([True, False, None])})
    X = M.matrix(data, ("a", "b", "f"))
    assert X.dtype == np.float64 and X.shape == (3, 3)
    np.testing.assert_array_equal(X, [[1.5, 1, 1], [np.nan, np.nan, 0], [2.0, 3, np.nan]])


def test_single_float_feature_is_not_copied():
    column = pa.array(np.arange(5, dtype=np.float64))
    X = M.matrix(pa.table({"a": column}), ("a",))
    assert X.shape == (5, 1) and np.shares_memory(X, column.to_numpy())


def test_train_fits_on_the_training_part_of_the_split():
    graph = compile_ok(spec())
    data = table()
    out = train.run(context(graph, "train.m", {"table": data}))
    y = data["label"].to_numpy()
    fit_rows, _ = train_test_split(np.arange(len(y)), test_size=0.25, random_state=3)
    assert out.rows == len(fit_rows) == 90
    expected = clone(out.value).fit(features(data)[np.sort(fit_rows)], y[np.sort(fit_rows)])
    np.testing.assert_array_equal(out.value.coef_, expected.coef_)


def test_train_is_deterministic_and_defaults_random_state_to_the_seed():
    graph = compile_ok(spec(estimator="sklearn.ensemble.RandomForestClassifier", params="{n_estimators: 4}"))
    data = table()
    first, second = (train.run(context(graph, "train.m", {"table": data})).value for _ in range(2))
    assert first.random_state == 3
    assert modelio.dumps(first) == modelio.dumps(second)


def test_explicit_random_state_is_kept():
    graph = compile_ok(spec(estimator="sklearn.ensemble.RandomForestClassifier",
                            params="{n_estimators: 4, random_state: 11}"))
    assert M.constructor_params(graph.node("train.m")) == {"n_estimators": 4, "random_state": 11}


def test_string_labels_are_kept_as_labels():
    graph = compile_ok(spec(target_type="string"))
    model = train.run(context(graph, "train.m", {"table": table(labels="string")})).value
    assert list(model.classes_) == ["high", "low", "mid"]


def test_null_target_is_e0803_naming_column_and_count():
    graph = compile_ok(spec())
    data = table()
    data = data.set_column(data.schema.get_field_index("label"), "label",
                           pa.array([None, None] + [True] * (data.num_rows - 2), pa.bool_()))
    with pytest.raises(RunError) as err:
        train.run(context(graph, "train.m", {"table": data}))
    assert err.value.code == "E0803"
    assert "'label'" in err.value.message and "2 null values" in err.value.message


def test_nan_features_for_an_estimator_without_nan_support_is_e0803():
    graph = compile_ok(spec())
    with pytest.raises(RunError) as err:
        train.run(context(graph, "train.m", {"table": table(nulls_in_a=5)}))
    assert err.value.code == "E0803"
    assert "model 'm'" in err.value.message and "NaN" in err.value.message
    assert "fill_null" in err.value.hint and "HistGradientBoosting" in err.value.hint


def test_estimator_that_accepts_nan_trains_on_nulls():
    graph = compile_ok(spec(estimator="sklearn.ensemble.HistGradientBoostingClassifier",
                            params="{max_iter: 5}", metrics=("accuracy",)))
    _, out = fit_and_evaluate(graph, table(nulls_in_a=10))
    assert 0 <= out.value["metrics"]["accuracy"] <= 1


def test_estimator_path_is_rechecked_before_import():
    graph = compile_ok(spec())
    bad = dataclasses.replace(graph.node("train.m"), estimator="os.system")
    with pytest.raises(RunError) as err:
        M.estimator(bad)
    assert err.value.code == "E0501"


def test_impossible_stratified_split_is_e0803():
    graph = compile_ok(spec(evaluation="split: {test_size: 0.25, seed: 3, stratify: true}"))
    data = table(n=8)
    data = data.set_column(data.schema.get_field_index("label"), "label",
                           pa.array([True] + [False] * 7))
    with pytest.raises(RunError, match="cannot split 8 rows") as err:
        train.run(context(graph, "train.m", {"table": data}))
    assert err.value.code == "E0803"


# --- evaluate -------------------------------------------------------------------------


def test_evaluate_scores_exactly_the_held_out_rows(monkeypatch):
    graph = compile_ok(spec(evaluation="split: {test_size: 0.3, seed: 9, stratify: true}"))
    data = table(n=100)
    data = data.set_column(data.schema.get_field_index("a"), "a", pa.array(np.arange(100, dtype=float)))
    fitted, scored = [], []
    real_fit = M.fit
    monkeypatch.setattr(M, "fit", lambda model, X, y, name: fitted.append(X[:, 0]) or real_fit(model, X, y, name))
    real_score = evaluate.score
    monkeypatch.setattr(evaluate, "score", lambda s, names: scored.append(s.X[:, 0]) or real_score(s, names))
    _, out = fit_and_evaluate(graph, data)
    train_ids, test_ids = set(fitted[0]), set(scored[0])
    assert not train_ids & test_ids and train_ids | test_ids == set(range(100))
    assert len(test_ids) == out.rows == out.value["evaluation"]["test_rows"] == 30


def _expected_classification(data, model, test_size=0.25, seed=3):
    X, y = features(data), data["label"].to_numpy(zero_copy_only=False)
    _, test_rows = train_test_split(np.arange(len(y)), test_size=test_size, random_state=seed)
    test_rows = np.sort(test_rows)
    return X[test_rows], y[test_rows], model


def test_binary_metrics_match_sklearn():
    graph = compile_ok(spec())
    data = table()
    model, out = fit_and_evaluate(graph, data)
    X, y, _ = _expected_classification(data, model)
    pred, proba = model.predict(X), model.predict_proba(X)[:, 1]
    expected = {
        "accuracy": skm.accuracy_score(y, pred), "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "f1": skm.f1_score(y, pred), "precision": skm.precision_score(y, pred),
        "recall": skm.recall_score(y, pred), "roc_auc": skm.roc_auc_score(y, proba),
        "log_loss": skm.log_loss(y, model.predict_proba(X)),
        "average_precision": skm.average_precision_score(y, proba)}
    assert out.value["metrics"] == pytest.approx(expected, abs=1e-12)
    assert all(type(v) is float for v in out.value["metrics"].values())
    assert out.value["evaluation"]["positive_class"] is True
    assert out.summary == {"metrics": out.value["metrics"]}


def test_string_labels_positive_class_is_the_greater_label():
    graph = compile_ok(spec(target_type="string"))
    data = table(labels="string")
    data = data.set_column(data.schema.get_field_index("label"), "label",
                           pa.array(np.where(data["label"].to_numpy(zero_copy_only=False) == "low", "no", "yes")))
    model, out = fit_and_evaluate(graph, data)
    X, y, _ = _expected_classification(data, model)
    assert out.value["evaluation"]["classes"] == ["no", "yes"]
    assert out.value["evaluation"]["positive_class"] == "yes"
    assert out.value["metrics"]["f1"] == pytest.approx(skm.f1_score(y, model.predict(X), pos_label="yes"))
    assert out.value["metrics"]["roc_auc"] == pytest.approx(
        skm.roc_auc_score(y == "yes", model.predict_proba(X)[:, 1]))


def test_multiclass_metrics_match_sklearn():
    graph = compile_ok(spec(target_type="string"))
    data = table(n=300, labels="string")
    model, out = fit_and_evaluate(graph, data)
    X, y, _ = _expected_classification(data, model)
    pred, proba = model.predict(X), model.predict_proba(X)
    classes = np.array(["high", "low", "mid"])
    expected = {
        "accuracy": skm.accuracy_score(y, pred), "balanced_accuracy": skm.balanced_accuracy_score(y, pred),
        "f1": skm.f1_score(y, pred, average="macro"),
        "precision": skm.precision_score(y, pred, average="macro"),
        "recall": skm.recall_score(y, pred, average="macro"),
        "roc_auc": skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"),
        "log_loss": skm.log_loss(y, proba),
        "average_precision": skm.average_precision_score(label_binarize(y, classes=classes), proba,
                                                         average="macro")}
    assert out.value["metrics"] == pytest.approx(expected, abs=1e-12)
    assert "positive_class" not in out.value["evaluation"]


def test_regression_metrics_match_sklearn():
    graph = compile_ok(spec(target_type="float64", estimator="sklearn.linear_model.Ridge", metrics=REGRESSION))
    data = table(labels="float64")
    model, out = fit_and_evaluate(graph, data)
    X, y, _ = _expected_classification(data, model)
    pred = model.predict(X)
    expected = {"r2": skm.r2_score(y, pred), "mae": skm.mean_absolute_error(y, pred),
                "mse": skm.mean_squared_error(y, pred), "rmse": skm.root_mean_squared_error(y, pred),
                "mape": skm.mean_absolute_percentage_error(y, pred),
                "median_ae": skm.median_absolute_error(y, pred),
                "explained_variance": skm.explained_variance_score(y, pred), "max_error": skm.max_error(y, pred)}
    assert out.value["metrics"] == pytest.approx(expected, abs=1e-12)
    assert "classes" not in out.value["evaluation"]


def test_binary_ranking_metrics_use_decision_function_without_predict_proba():
    graph = compile_ok(spec(estimator="sklearn.linear_model.RidgeClassifier", metrics=("roc_auc",)))
    data = table()
    model, out = fit_and_evaluate(graph, data)
    X, y, _ = _expected_classification(data, model)
    assert out.value["metrics"]["roc_auc"] == pytest.approx(skm.roc_auc_score(y, model.decision_function(X)))


def test_log_loss_without_probabilities_is_e0803():
    graph = compile_ok(spec(estimator="sklearn.linear_model.RidgeClassifier", metrics=("log_loss",)))
    with pytest.raises(RunError, match="does not predict probabilities") as err:
        fit_and_evaluate(graph, table())
    assert err.value.code == "E0803"


def test_cv_trains_on_all_rows_and_averages_fold_metrics():
    graph = compile_ok(spec(evaluation="cv: {folds: 4, seed: 5}", metrics=("accuracy", "roc_auc")))
    data = table()
    model, out = fit_and_evaluate(graph, data)
    X, y = features(data), data["label"].to_numpy()
    folds = StratifiedKFold(n_splits=4, shuffle=True, random_state=5).split(X, y)
    accuracy, auc = [], []
    for fit_rows, test_rows in folds:
        fold = clone(model).fit(X[fit_rows], y[fit_rows])
        accuracy.append(skm.accuracy_score(y[test_rows], fold.predict(X[test_rows])))
        auc.append(skm.roc_auc_score(y[test_rows], fold.predict_proba(X[test_rows])[:, 1]))
    assert out.value["metrics"] == pytest.approx({"accuracy": np.mean(accuracy), "roc_auc": np.mean(auc)})
    assert out.value["evaluation"] == {"method": "cv", "seed": 5, "folds": 4, "rows": 120, "test_rows": 120,
                                       "classes": [False, True], "positive_class": True}


def test_cv_for_regressors_uses_kfold():
    graph = compile_ok(spec(target_type="float64", estimator="sklearn.linear_model.LinearRegression",
                            evaluation="cv: {folds: 3, seed: 2}", metrics=("mae",)))
    data = table(labels="float64")
    model, out = fit_and_evaluate(graph, data)
    X, y = features(data), data["label"].to_numpy()
    maes = [skm.mean_absolute_error(y[t], clone(model).fit(X[f], y[f]).predict(X[t]))
            for f, t in KFold(n_splits=3, shuffle=True, random_state=2).split(X)]
    assert out.value["metrics"]["mae"] == pytest.approx(np.mean(maes))


def test_undefined_metric_is_recorded_as_null_with_a_note():
    graph = compile_ok(spec(target_type="float64", estimator="sklearn.linear_model.LinearRegression",
                            evaluation="split: {test_size: 0.2, seed: 0}", metrics=("r2", "mae")))
    _, out = fit_and_evaluate(graph, table(n=5, labels="float64"))
    assert out.value["metrics"]["r2"] is None and isinstance(out.value["metrics"]["mae"], float)
    assert "nan recorded as null" in out.value["notes"]["r2"]
    assert "two samples" in out.value["notes"]["r2"]
    canonical_json(out.value)  # valid canonical JSON (no NaN)


def test_warning_of_a_finite_metric_becomes_a_note():
    values, notes = evaluate.score(
        evaluate.Scored(_Constant(False), np.zeros((4, 1)), np.array([True, False, True, False]),
                        np.array([False, True]), "m"), ("precision",))
    assert values == {"precision": 0.0} and "ill-defined" in notes["precision"]


class _Constant:
    def __init__(self, label):
        self.label = label

    def predict(self, X):
        return np.full(len(X), self.label)


def test_output_names_the_model_digest_and_is_canonical_json():
    graph = compile_ok(spec(metrics=("accuracy",)))
    _, out = fit_and_evaluate(graph, table(), digests={"model": "f" * 64, "table": "e" * 64})
    assert out.value["model"] == "f" * 64
    assert out.value["evaluation"] == {"method": "split", "seed": 3, "test_size": 0.25, "stratify": False,
                                       "rows": 120, "train_rows": 90, "test_rows": 30,
                                       "classes": [False, True], "positive_class": True}
    assert canonical_json(out.value)


# --- registry -------------------------------------------------------------------------


@pytest.fixture
def registry(tmp_path):
    return Registry(Store(str(tmp_path)))


def test_evaluate_registers_the_model(registry):
    graph = compile_ok(spec(metrics=("accuracy", "roc_auc")))
    data = table()
    digest = "ab" * 32
    _, out = fit_and_evaluate(graph, data, registry=registry, digests={"model": digest, "table": "c" * 64},
                              sources={"source.d": "d" * 64, "train.m": digest})
    record = registry.get("models-test", "m", digest[:12])
    assert record["digest"] == digest and record["stage"] == "none"
    assert record["metrics"] == out.value["metrics"]
    assert record["params"] == {"random_state": 3}
    assert record["estimator"] == "sklearn.linear_model.LogisticRegression"
    assert record["features"] == ["a", "b", "flag"] and record["target"] == "label"
    assert record["sources"] == {"source.d": "d" * 64}
    assert record["evaluation"] == out.value["evaluation"]


def test_sample_runs_do_not_register(registry):
    graph = compile_ok(spec(metrics=("accuracy",)))
    fit_and_evaluate(graph, table(), registry=registry, sample=Sample(rows=50))
    assert registry.versions("models-test", "m") == []


# --- model gates ----------------------------------------------------------------------

GATES = """
gates:
  g:
    model: m
    require:
      - accuracy >= 0.7
      - roc_auc >= production.roc_auc - 0.01
      - accuracy > 0.5 and roc_auc > 0.5
"""


def metrics_output(accuracy, roc_auc, model="c" * 64):
    return {"model": model, "metrics": {"accuracy": accuracy, "roc_auc": roc_auc}, "notes": {},
            "evaluation": {}}


def gate_ctx(graph, metrics, registry=None):
    return context(graph, "gate.g", {"metrics": metrics}, registry=registry)


def _register(registry, digest, roc_auc, promote=True):
    registry.register("models-test", "m", digest=digest, metrics={"accuracy": 0.8, "roc_auc": roc_auc})
    if promote:
        registry.promote("models-test", "m", digest[:12])


def test_model_gate_passes_with_values_and_thresholds(registry):
    graph = compile_ok(spec(metrics=("accuracy", "roc_auc"), gates=GATES))
    _register(registry, "a" * 64, 0.80)
    out = gate.run(gate_ctx(graph, metrics_output(0.75, 0.805), registry))
    decision = out.value
    assert decision["passed"] is True and decision["failed"] == [] and decision["subject"] == "model"
    first, second, third = decision["checks"]
    assert first == {"text": "accuracy >= 0.7", "passed": True, "value": 0.75, "threshold": 0.7,
                     "operator": ">=", "note": None}
    assert second["value"] == 0.805 and second["threshold"] == pytest.approx(0.79)
    assert third == {"text": "accuracy > 0.5 and roc_auc > 0.5", "passed": True, "value": True,
                     "threshold": None, "operator": None, "note": None}
    assert decision["production"] == {"version": "a" * 12, "digest": "a" * 64}
    assert out.summary["passed"] is True and out.summary["failed"] == []
    canonical_json(decision)


def test_model_gate_fails_and_lists_failed_checks(registry):
    graph = compile_ok(spec(metrics=("accuracy", "roc_auc"), gates=GATES))
    _register(registry, "a" * 64, 0.90)
    decision = gate.run(gate_ctx(graph, metrics_output(0.65, 0.85), registry)).value
    assert decision["passed"] is False
    assert decision["failed"] == ["accuracy >= 0.7", "roc_auc >= production.roc_auc - 0.01"]
    assert [c["passed"] for c in decision["checks"]] == [False, False, True]


def test_no_production_model_passes_production_checks_with_a_note(registry):
    graph = compile_ok(spec(metrics=("accuracy", "roc_auc"), gates=GATES))
    ctx = gate_ctx(graph, metrics_output(0.75, 0.6), registry)
    assert gate.key_extra(ctx) == {"production": None}
    decision = gate.run(ctx).value
    check = decision["checks"][1]
    assert check["passed"] is True and check["note"] == "no model in production"
    assert check["value"] == 0.6 and check["threshold"] is None
    assert decision["production"] is None and decision["passed"] is True


def test_registered_but_unpromoted_model_is_not_production(registry):
    graph = compile_ok(spec(metrics=("accuracy", "roc_auc"), gates=GATES))
    _register(registry, "a" * 64, 0.99, promote=False)
    check = gate.run(gate_ctx(graph, metrics_output(0.75, 0.5), registry)).value["checks"][1]
    assert check["passed"] is True and check["note"] == "no model in production"


def test_candidate_already_in_production_is_compared_with_the_version_it_replaced(registry):
    graph = compile_ok(spec(metrics=("accuracy", "roc_auc"), gates=GATES))
    _register(registry, "a" * 64, 0.70)
    _register(registry, "c" * 64, 0.75)  # the candidate itself, promoted by an earlier run
    ctx = gate_ctx(graph, metrics_output(0.8, 0.75, model="c" * 64), registry)
    assert gate.key_extra(ctx) == {"production": "a" * 64}
    decision = gate.run(ctx).value
    assert decision["checks"][1]["threshold"] == pytest.approx(0.69)
    assert decision["production"]["digest"] == "a" * 64


def test_key_extra_changes_with_production_and_is_empty_without_production_checks(registry):
    graph = compile_ok(spec(metrics=("accuracy", "roc_auc"), gates=GATES))
    _register(registry, "a" * 64, 0.7)
    assert gate.key_extra(gate_ctx(graph, metrics_output(0.8, 0.8), registry)) == {"production": "a" * 64}
    _register(registry, "b" * 64, 0.7)
    assert gate.key_extra(gate_ctx(graph, metrics_output(0.8, 0.8), registry)) == {"production": "b" * 64}
    plain = compile_ok(spec(metrics=("accuracy",), gates="gates:\n  g:\n    model: m\n    require: accuracy > 0.5\n"))
    assert gate.key_extra(gate_ctx(plain, metrics_output(0.8, 0.8), registry)) == {}


def test_null_metric_fails_the_check():
    graph = compile_ok(spec(metrics=("accuracy", "roc_auc"), gates=GATES))
    check = gate.run(gate_ctx(graph, metrics_output(None, 0.8))).value["checks"][0]
    assert check == {"text": "accuracy >= 0.7", "passed": False, "value": None, "threshold": 0.7,
                     "operator": ">=", "note": "evaluated to null"}


def test_gate_over_real_evaluate_output(registry):
    graph = compile_ok(spec(metrics=("accuracy", "roc_auc"), gates=GATES))
    _, out = fit_and_evaluate(graph, table(), registry=registry)
    decision = gate.run(gate_ctx(graph, out.value, registry)).value
    assert decision["checks"][0]["value"] == out.value["metrics"]["accuracy"]


# --- table gates ----------------------------------------------------------------------

TABLE_GATES = """
gates:
  g:
    table: d
    require:
      - row_count() >= 5
      - null_fraction(a) < 0.1
      - distinct_count(s) == 3
      - min(b) >= 0 and max(b) <= 9
      - max(day) >= date("2024-01-03")
      - abs(mean(a) - 2) < 0.5
      - mean(flag) >= 0.5
"""


def table_gate_data():
    return pa.table({
        "id": pa.array(range(6)), "a": pa.array([1.0, 2.0, None, 3.0, 2.0, None]),
        "b": pa.array([0, 3, 9, 4, 4, 1]), "flag": pa.array([True, True, False, None, True, False]),
        "label": pa.array([True] * 6), "day": pa.array([dt.date(2024, 1, d) for d in range(1, 7)]),
        "s": pa.array(["x", "y", None, "x", "z", "y"])})


def test_table_gate_computes_every_data_check():
    graph = compile_ok(spec(gates=TABLE_GATES))
    decision = gate.run(context(graph, "gate.g", {"table": table_gate_data()})).value
    by_text = {c["text"]: c for c in decision["checks"]}
    assert by_text["row_count() >= 5"]["value"] == 6
    assert by_text["null_fraction(a) < 0.1"] == {
        "text": "null_fraction(a) < 0.1", "passed": False, "value": pytest.approx(1 / 3), "threshold": 0.1,
        "operator": "<", "note": None}
    assert by_text["distinct_count(s) == 3"]["value"] == 3 and by_text["distinct_count(s) == 3"]["passed"]
    assert by_text["min(b) >= 0 and max(b) <= 9"]["value"] is True
    day = by_text['max(day) >= date("2024-01-03")']
    assert day["value"] == "2024-01-06" and day["threshold"] == "2024-01-03" and day["passed"]
    assert by_text["abs(mean(a) - 2) < 0.5"]["value"] == pytest.approx(0.0)
    assert by_text["mean(flag) >= 0.5"]["value"] == pytest.approx(0.6)
    assert decision["failed"] == ["null_fraction(a) < 0.1"] and decision["passed"] is False
    assert decision["subject"] == "table"
    canonical_json(decision)


def test_table_gate_check_of_an_all_null_column_is_null_and_fails():
    graph = compile_ok(spec(gates="gates:\n  g:\n    table: d\n    require: [mean(a) > 0, row_count() > 0]\n"))
    data = table_gate_data().set_column(1, "a", pa.array([None] * 6, pa.float64()))
    decision = gate.run(context(graph, "gate.g", {"table": data})).value
    assert decision["checks"][0] == {"text": "mean(a) > 0", "passed": False, "value": None, "threshold": 0,
                                     "operator": ">", "note": "evaluated to null"}
    assert decision["checks"][1]["passed"] is True
    assert gate.key_extra(context(graph, "gate.g", {"table": data})) == {}


def test_data_checks_on_an_empty_table():
    empty = table_gate_data().slice(0, 0)
    assert gate.data_check(empty, "row_count", None) == 0
    assert gate.data_check(empty, "null_fraction", "a") is None
    assert gate.data_check(empty, "distinct_count", "s") == 0
    assert gate.data_check(empty, "min", "b") is None
    assert gate.data_check(empty, "mean", "a") is None


def test_json_value():
    assert gate.json_value(float("nan")) is None and gate.json_value(float("-inf")) is None
    assert gate.json_value(np.float64(1.5)) == 1.5 and type(gate.json_value(np.int64(2))) is int
    assert gate.json_value(dt.datetime(2024, 1, 2, 3, 4)) == "2024-01-02T03:04:00"
    assert gate.json_value(np.bool_(True)) is True


def test_table_gate_on_timestamps_and_int32():
    text = spec(gates="")
    text = text.replace("day: date", "day: timestamp").replace("b: int64", "b: int32") + """
gates:
  g:
    table: d
    require:
      - max(day) >= timestamp("2024-01-02T00:00:00")
      - min(b) in [1, 2] or min(b) > 0
"""
    graph = compile_ok(text)
    data = pa.table({"day": pa.array([dt.datetime(2024, 1, 1), dt.datetime(2024, 1, 3, 5)], pa.timestamp("us")),
                     "b": pa.array([1, None], pa.int32())})
    first, second = gate.run(context(graph, "gate.g", {"table": data})).value["checks"]
    assert (first["value"], first["threshold"], first["passed"]) == ("2024-01-03T05:00:00", "2024-01-02T00:00:00",
                                                                      True)
    assert second["value"] is True and second["passed"] is True
