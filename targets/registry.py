"""Every target, by name.  A new target is one module added here."""

from __future__ import annotations

from types import ModuleType

from . import ir

TARGETS: dict[str, ModuleType] = {m.name: m for m in (ir,)}
