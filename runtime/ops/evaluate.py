"""Evaluate: score the model on the rows Train held out (or by k-fold cv) and register it.

Labels are ordered as numpy sorts them (False < True, numbers, strings by code
point); with two classes the positive class is the greater one.  A metric that
is not a finite number (e.g. roc_auc on a held-out set with one class) is
recorded as null, with the reason under `notes`.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from functools import cached_property, lru_cache
from typing import Any

import numpy as np
from pipespec.compiler import ir

from ..errors import RunError
from threadpoolctl import threadpool_limits

from . import _modeling as M
from .base import Context, Output



class Scored:
    """A fitted model's outputs on some rows, computed once and only when a metric needs them."""

    def __init__(self, model: Any, X: np.ndarray, y: np.ndarray, classes: np.ndarray | None, name: str):
        self.model, self.X, self.y, self.classes, self.name = model, X, y, classes, name

    @property
    def binary(self) -> bool:
        return self.classes is not None and len(self.classes) == 2

    @property
    def averaging(self) -> dict:
        return {"average": "binary", "pos_label": self.classes[-1]} if self.binary else {"average": "macro"}

    @cached_property
    def predicted(self) -> np.ndarray:
        return self._call(self.model.predict)

    @cached_property
    def proba(self) -> np.ndarray:
        """Class probabilities with one column per class of the whole table, in label order."""
        if not hasattr(self.model, "predict_proba"):
            raise RunError("E0803", f"model '{self.name}': {type(self.model).__name__} does not predict "
                           "probabilities, which log_loss (and roc_auc / average_precision with more than "
                           "two classes) need", "choose another metric, or an estimator with "
                           "predict_proba (for SVC: `probability: true`)")
        raw = self._call(self.model.predict_proba)
        out = np.zeros((len(self.y), len(self.classes)))
        out[:, np.searchsorted(self.classes, self.model.classes_)] = raw
        return out

    @cached_property
    def ranking(self) -> np.ndarray:
        """Scores for roc_auc / average_precision: the positive class's when binary."""
        if not self.binary:
            return self.proba
        if hasattr(self.model, "predict_proba"):
            return self.proba[:, 1]
        return self._call(self.model.decision_function)

    def _call(self, method: Callable) -> np.ndarray:
        try:
            return method(self.X)
        except (ValueError, TypeError, ArithmeticError) as exc:
            raise M.estimator_error(exc, self.name, "predicting") from None


def _labelled(fn: Callable) -> Callable[[Scored], float]:
    return lambda s: fn(s.y, s.predicted)


def _averaged(fn: Callable) -> Callable[[Scored], float]:
    return lambda s: fn(s.y, s.predicted, **s.averaging)


def _roc_auc(s: Scored) -> float:
    from sklearn.metrics import roc_auc_score

    if s.binary:
        return roc_auc_score(s.y, s.ranking)
    return roc_auc_score(s.y, s.proba, multi_class="ovr", average="macro", labels=s.classes)


def _average_precision(s: Scored) -> float:
    from sklearn.metrics import average_precision_score
    from sklearn.preprocessing import label_binarize

    if s.binary:
        return average_precision_score(s.y, s.ranking, pos_label=s.classes[-1])
    return average_precision_score(label_binarize(s.y, classes=s.classes), s.proba, average="macro")


def _log_loss(s: Scored) -> float:
    from sklearn.metrics import log_loss

    return log_loss(s.y, s.proba, labels=s.classes)


@lru_cache(maxsize=1)
def metric_functions() -> dict[str, Callable[[Scored], float]]:
    """Every metric name of SPEC §11 -> its computation (scikit-learn imported on first use)."""
    from sklearn import metrics as m

    return {
        "accuracy": _labelled(m.accuracy_score), "balanced_accuracy": _labelled(m.balanced_accuracy_score),
        "f1": _averaged(m.f1_score), "precision": _averaged(m.precision_score),
        "recall": _averaged(m.recall_score), "roc_auc": _roc_auc, "log_loss": _log_loss,
        "average_precision": _average_precision,
        "r2": _labelled(m.r2_score), "mae": _labelled(m.mean_absolute_error),
        "mse": _labelled(m.mean_squared_error), "rmse": _labelled(m.root_mean_squared_error),
        "mape": _labelled(m.mean_absolute_percentage_error),
        "median_ae": _labelled(m.median_absolute_error),
        "explained_variance": _labelled(m.explained_variance_score), "max_error": _labelled(m.max_error),
    }


def score(scored: Scored, names: tuple[str, ...]) -> tuple[dict[str, float], dict[str, str]]:
    """Each metric as a float (NaN when undefined) and a note for any warning it raised."""
    functions = metric_functions()
    values, notes = {}, {}
    for name in names:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            try:
                values[name] = float(functions[name](scored))
            except ValueError as exc:
                values[name] = math.nan
                notes[name] = M.one_line(exc)
        if caught and name not in notes:
            notes[name] = M.one_line(caught[0].message)
    return values, notes


# --- the two evaluation methods -----------------------------------------------------


def held_out(model: Any, X: np.ndarray, y: np.ndarray, train: ir.Train, names: tuple[str, ...]):
    classes = np.unique(y) if train.task == "classification" else None
    fit_rows, test_rows = M.split(y, train.evaluation)
    values, notes = score(Scored(model, X[test_rows], y[test_rows], classes, train.name), names)
    facts = {"rows": len(y), "train_rows": len(fit_rows), "test_rows": len(test_rows)}
    return values, notes, facts


def cross_validated(model: Any, X: np.ndarray, y: np.ndarray, train: ir.Train, names: tuple[str, ...]):
    """Each metric averaged over the folds; a clone of the model is fitted on each fold's rest."""
    from sklearn.base import clone

    classes = np.unique(y) if train.task == "classification" else None
    per_fold: dict[str, list[float]] = {name: [] for name in names}
    notes: dict[str, str] = {}
    for k, (fit_rows, test_rows) in enumerate(M.folds(y, train.evaluation, train.task), start=1):
        M.check_learnable(X[fit_rows], y[fit_rows], train, f"the {len(fit_rows):,} training rows of cv "
                          f"fold {k} of {train.evaluation.folds}", whole=(X, y))
        fitted = M.fit(clone(model), X[fit_rows], y[fit_rows], train.name)
        values, fold_notes = score(Scored(fitted, X[test_rows], y[test_rows], classes, train.name), names)
        for name in names:
            per_fold[name].append(values[name])
            if name in fold_notes:
                notes.setdefault(name, f"fold {k}: {fold_notes[name]}")
    values = {name: float(np.mean(v)) for name, v in per_fold.items()}
    return values, notes, {"rows": len(y), "test_rows": len(y)}


# --- the op -------------------------------------------------------------------------


def run(ctx: Context) -> Output:
    train = ctx.graph.node(next(p.node for p in ctx.node.inputs if p.role == "model"))
    with threadpool_limits(M.threads(train)):
        return _evaluate(ctx, train)


def _evaluate(ctx: Context, train) -> Output:
    node = ctx.node
    table, model = ctx.load("table"), ctx.load("model")
    y = M.labels(table, train.target, train.task)
    X = M.matrix(table, train.features)
    M.check_learnable(X, y, train, M.all_rows(ctx.graph, train, len(y)))
    method = cross_validated if train.evaluation.method == "cv" else held_out
    values, notes, facts = method(model, X, y, train, node.metrics)
    metrics = json_metrics(values, notes)
    result = {"model": ctx.input_digests["model"], "metrics": metrics, "notes": notes,
              "evaluation": {**_evaluation(train.evaluation), **facts, **_classes(y, train.task)}}
    ctx.log(", ".join(f"{k}={v:.4g}" if v is not None else f"{k}=null" for k, v in metrics.items()))
    if ctx.sample is None and ctx.registry is not None:
        register(ctx, train, result)
    return Output(result, rows=facts["test_rows"], summary={"metrics": metrics})


def json_metrics(values: dict[str, float], notes: dict[str, str]) -> dict[str, float | None]:
    """Plain floats; NaN and infinities (not valid JSON) become null, with a note saying so."""
    out = {}
    for name, value in values.items():
        if math.isfinite(value):
            out[name] = value
        else:
            out[name] = None
            reason = notes.get(name)
            notes[name] = f"{value} recorded as null" + (f": {reason}" if reason else "")
    return out


def _evaluation(ev: ir.Evaluation) -> dict:
    if ev.method == "cv":
        return {"method": "cv", "seed": ev.seed, "folds": ev.folds}
    return {"method": "split", "seed": ev.seed, "test_size": ev.test_size, "stratify": ev.stratify}


def _classes(y: np.ndarray, task: str) -> dict:
    if task != "classification":
        return {}
    classes = np.unique(y).tolist()
    facts: dict[str, Any] = {"classes": classes}
    if len(classes) == 2:
        facts["positive_class"] = classes[-1]
    return facts


def register(ctx: Context, train: ir.Train, result: dict) -> dict:
    """Record the model version with what it was trained from and how it scored."""
    graph = ctx.graph
    sources = {a: ctx.digest_of(a) for a in sorted(graph.ancestors(ctx.node.id))
               if isinstance(graph.node(a), ir.Source)}
    return ctx.registry.register(
        ctx.pipeline, ctx.node.name, digest=ctx.input_digests["model"], metrics=result["metrics"],
        params=M.constructor_params(train), estimator=train.estimator, task=train.task,
        features=list(train.features), target=train.target, sources=sources,
        evaluation=result["evaluation"])
