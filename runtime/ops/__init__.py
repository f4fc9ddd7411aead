"""One module per IR node kind; `module_for(kind)` imports it on first use."""

from __future__ import annotations

import importlib
from types import ModuleType

MODULES = {
    "Source": "source",
    "Transform": "transform",
    "Train": "train",
    "Evaluate": "evaluate",
    "Gate": "gate",
    "Rollout": "rollout",
}


def module_for(kind: str) -> ModuleType:
    return importlib.import_module(f"{__name__}.{MODULES[kind]}")
