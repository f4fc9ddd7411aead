"""Every target, by name.  A new target is one module added here."""

from __future__ import annotations

from types import ModuleType

from . import ir
from .ray import jobs as ray_jobs

TARGETS: dict[str, ModuleType] = {m.name: m for m in (ir, ray_jobs)}
