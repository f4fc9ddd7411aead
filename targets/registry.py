"""Every target, by name.  A new target is one module added here."""

from __future__ import annotations

from types import ModuleType

from . import airflow, ir, kubeflow
from .ray import jobs as ray_jobs

TARGETS: dict[str, ModuleType] = {m.name: m for m in (airflow, ir, kubeflow, ray_jobs)}
