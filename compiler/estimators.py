"""Compile-time checks of scikit-learn estimators and metrics.

Only classes under `sklearn.` are imported, by a validated dotted path, so a
spec cannot load foreign code; constructor arguments are checked against the
signature and scikit-learn's own parameter constraints.
"""

from __future__ import annotations

import importlib
import inspect
import re
from functools import lru_cache
from typing import Any

from .diagnostics import suggest

_PATH = re.compile(r"^sklearn(\.[a-z][a-z0-9_]*)+\.[A-Z][A-Za-z0-9]*$")



class EstimatorError(Exception):
    def __init__(self, code: str, message: str, hint: str | None = None, param: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint, self.param = code, message, hint, param


@lru_cache(maxsize=None)
def estimator_class(path: str) -> tuple[type, str]:
    """(class, task) for a dotted sklearn path; raises EstimatorError (E0501)."""
    if not isinstance(path, str) or not _PATH.fullmatch(path):
        raise EstimatorError("E0501", f"'{path}' is not a scikit-learn estimator path",
                             "write the public dotted path, e.g. sklearn.linear_model.LogisticRegression")
    module_name, _, cls_name = path.rpartition(".")
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise EstimatorError("E0501", f"no scikit-learn module '{module_name}'") from None
    cls = getattr(module, cls_name, None)
    from sklearn.base import BaseEstimator, is_classifier, is_regressor

    if not (isinstance(cls, type) and issubclass(cls, BaseEstimator)):
        public = [n for n, v in vars(module).items() if isinstance(v, type) and not n.startswith("_")
                  and issubclass(v, BaseEstimator) and not inspect.isabstract(v)
                  and not n.startswith("Base")]
        raise EstimatorError("E0501", f"'{cls_name}' is not an estimator in {module_name}",
                             suggest(cls_name, public, f"estimators in {module_name}"))
    try:
        probe = cls()
    except TypeError:
        raise EstimatorError("E0501", f"{path} cannot be built without arguments "
                             "(meta-estimators are not supported)") from None
    task = "classification" if is_classifier(probe) else "regression" if is_regressor(probe) else None
    if task is None:
        raise EstimatorError("E0501", f"{path} is neither a classifier nor a regressor")
    return cls, task


def check_params(cls: type, params: dict[str, Any]) -> None:
    """Raise EstimatorError (E0502) for an unknown or invalid constructor argument."""
    names = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    for key in params:
        if key not in names:
            raise EstimatorError("E0502", f"{cls.__name__} has no parameter '{key}'",
                                 suggest(key, names, "parameters"), param=key)
    try:
        inst = cls(**params)
        validate = getattr(inst, "_validate_params", None)
        if validate is not None:
            validate()
    except (ValueError, TypeError) as exc:
        message = " ".join(str(exc).split())
        bad = next((k for k in params if f"'{k}'" in message), None)
        raise EstimatorError("E0502", f"invalid parameter for {cls.__name__}: {message}", param=bad) from None
