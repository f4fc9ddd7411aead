"""What Train and Evaluate share: the feature matrix, the labels, the estimator, and
the one split function, so the rows Evaluate scores are exactly the rows Train held out."""

from __future__ import annotations

import importlib
import inspect
import json
import re
from collections.abc import Iterator
from typing import Any

import numpy as np
import pyarrow as pa
import sklearn.utils._openmp_helpers  # noqa: F401 - loads OpenMP now, so `threads` limits apply to it
import pyarrow.compute as pc
from pipespec.compiler import ir

from ..errors import RunError

# the compiler checks the same pattern (compiler/estimators.py); checked again before importing
ESTIMATOR_PATH = re.compile(r"^sklearn(\.[a-z][a-z0-9_]*)+\.[A-Z][A-Za-z0-9]*$")

NAN_HINT = ("fill or drop the nulls upstream (fill_null(x, 0), or `where: x is not null`), "
            "or use an estimator that accepts missing values, e.g. "
            "sklearn.ensemble.HistGradientBoostingClassifier")


def matrix(table: pa.Table, features: tuple[str, ...]) -> np.ndarray:
    """The float64 feature matrix (rows x features); bool -> 0/1, null -> NaN.

    A single float64 column without nulls is used in place; several are copied once."""
    columns = [_float_column(table.column(name)) for name in features]
    if len(columns) == 1:
        return columns[0].reshape(-1, 1)
    out = np.empty((table.num_rows, len(columns)), dtype=np.float64, order="F")
    for i, column in enumerate(columns):
        out[:, i] = column
    return out


def _float_column(column: pa.ChunkedArray) -> np.ndarray:
    if column.type != pa.float64():
        column = pc.cast(column, pa.float64())
    if column.num_chunks == 1 and column.null_count == 0:
        return column.chunk(0).to_numpy(zero_copy_only=True)
    return column.to_numpy()  # nulls of a float array become NaN


def labels(table: pa.Table, target: str, task: str) -> np.ndarray:
    """The target as numpy: bool, int64 or str labels for classifiers, float64 for regressors."""
    column = table.column(target)
    if column.null_count:
        raise RunError("E0803", f"the target column '{target}' has {column.null_count} null "
                       f"value{'s' if column.null_count != 1 else ''}",
                       f"drop them upstream, e.g. `where: {target} is not null`")
    if task == "regression":
        return _float_column(column)
    return column.to_numpy()


NULL_FEATURE_HINT = ("check the upstream join or filter that feeds it, or the source column; fill it "
                     "(fill_null(x, 0)) or remove it from the model's `features:`")
SINGLE_CLASS_HINT = ("a classifier needs rows of at least two classes: check the `where:` filters and "
                     "joins upstream of the training table")
SPLIT_HINT = "use `stratify: true`, more rows, or another `test_size` or `seed`"
NULL_SPLIT_HINT = "fill the nulls upstream (fill_null(x, 0)), or use more rows or another `seed`"


def check_learnable(X: np.ndarray, y: np.ndarray, train: ir.Train, rows: str,
                    whole: tuple[np.ndarray, np.ndarray] | None = None) -> None:
    """Refuse rows no estimator can learn from, naming the column, before scikit-learn fails
    obscurely or, worse, does not: a feature null in every row (HistGradientBoosting fails
    with a shape error), a classifier target with one class (trees fit it and score 1.0).

    `rows` says which rows these are; `whole` is (X, y) of the whole table when they are
    the training part of a split or a fold, so the message can say the table is not at fault."""
    for i, name in enumerate(train.features):
        if len(X) and np.isnan(X[:, i]).all():
            present = int((~np.isnan(whole[0][:, i])).sum()) if whole is not None else 0
            why = (f", though {present:,} row{'s' if present != 1 else ''} of the table "
                   f"{'have' if present != 1 else 'has'} a value: all held out") if present else ""
            raise RunError("E0803", f"model '{train.name}': feature column '{name}' is null in {rows}{why}",
                           NULL_SPLIT_HINT if present else NULL_FEATURE_HINT)
    if train.task != "classification" or not len(y):
        return
    classes = np.unique(y)
    if len(classes) == 1:
        every = np.unique(whole[1]) if whole is not None else classes
        why = f", though the table has {len(every)} classes ({_labels(every)})" if len(every) > 1 else ""
        raise RunError("E0803", f"model '{train.name}': target column '{train.target}' has a single "
                       f"class, {_labels(classes)}, in {rows}{why}",
                       SPLIT_HINT if len(every) > 1 else SINGLE_CLASS_HINT)


def all_rows(graph: ir.Graph, train: ir.Train, n: int) -> str:
    table = graph.node(next(p.node for p in train.inputs if p.role == "table")).name
    return f"all {n:,} rows of table '{table}'"


def split_rows(ev: ir.Evaluation, n: int) -> str:
    return f"the {n:,} training rows of the split (test_size {ev.test_size:g}, seed {ev.seed})"


def _labels(classes: np.ndarray, limit: int = 5) -> str:
    shown = ", ".join(repr(c.item() if hasattr(c, "item") else c) for c in classes[:limit])
    return shown + (", ..." if len(classes) > limit else "")


def estimator_class(train: ir.Train) -> type:
    if not ESTIMATOR_PATH.match(train.estimator):
        raise RunError("E0501", f"'{train.estimator}' is not a scikit-learn estimator path")
    module_name, _, class_name = train.estimator.rpartition(".")
    return getattr(importlib.import_module(module_name), class_name)


def constructor_params(train: ir.Train) -> dict[str, Any]:
    """The spec's params; plus `random_state` = the evaluation seed when the estimator has
    one and the spec leaves it unset, so every run fits the same model."""
    params = json.loads(train.estimator_params)
    if "random_state" not in params and "random_state" in inspect.signature(estimator_class(train)).parameters:
        params["random_state"] = train.evaluation.seed
    return params


def estimator(train: ir.Train) -> Any:
    """A new, unfitted estimator of the Train node."""
    return estimator_class(train)(**constructor_params(train))


def split(y: np.ndarray, evaluation: ir.Evaluation) -> tuple[np.ndarray, np.ndarray | None]:
    """(train rows, held-out rows) as sorted row indices; cv trains on all rows (None held out)."""
    rows = np.arange(len(y))
    if evaluation.method == "cv":
        return rows, None
    from sklearn.model_selection import train_test_split

    try:
        fit_rows, test_rows = train_test_split(
            rows, test_size=evaluation.test_size, random_state=evaluation.seed,
            stratify=y if evaluation.stratify else None)
    except ValueError as exc:
        raise RunError("E0803", f"cannot split {len(y)} rows with test_size "
                       f"{evaluation.test_size:g}: {one_line(exc)}",
                       "use more rows, a different test_size, or `stratify: false`") from None
    return np.sort(fit_rows), np.sort(test_rows)


def folds(y: np.ndarray, evaluation: ir.Evaluation, task: str) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """The k-fold splits of cv: stratified for classifiers, shuffled with the seed."""
    from sklearn.model_selection import KFold, StratifiedKFold

    kind = StratifiedKFold if task == "classification" else KFold
    splitter = kind(n_splits=evaluation.folds, shuffle=True, random_state=evaluation.seed)
    try:
        yield from splitter.split(np.zeros((len(y), 1)), y)
    except ValueError as exc:
        raise RunError("E0803", f"cannot make {evaluation.folds} folds of {len(y)} rows: "
                       f"{one_line(exc)}", "use more rows or fewer `cv.folds`") from None


def threads(node: ir.Node) -> int:
    """The native threads a model node fits and scores with: one.

    Some estimators (HistGradientBoosting*) give different models with different thread
    counts, and scikit-learn caps the count by the machine's physical cores, so any count
    above one makes the model depend on the machine (and the target).  One thread gives
    the same model, and the same digest, everywhere; `resources.cpus` still reserves CPUs."""
    return 1


def fit(model: Any, X: np.ndarray, y: np.ndarray, name: str) -> Any:
    try:
        return model.fit(X, y)
    except (ValueError, TypeError, ArithmeticError) as exc:
        raise estimator_error(exc, name, "fitting") from None


def estimator_error(exc: BaseException, name: str, doing: str) -> RunError:
    """E0803 for a scikit-learn failure, naming the model and what to do about it."""
    text = one_line(exc)
    hint = NAN_HINT if "NaN" in text or "missing values" in text else (
        "check the model's params and training table; run `pipespec run --sample` to iterate faster")
    return RunError("E0803", f"model '{name}': {type(exc).__name__} while {doing}: {text}", hint)


def one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:500]
