"""JSON Schema of the spec format, generated from the pydantic surface models.

Wherever a number or boolean is expected, a `${params.name}` string is also
accepted, as the language allows, so editors do not flag parameter references.
"""

from __future__ import annotations

import json
from typing import Any

from .spec import SpecFile

PARAM_REF = {"type": "string", "pattern": r"^\$\{params\.[A-Za-z_][A-Za-z0-9_]*\}$"}
SCHEMA_ID = "https://pipespec.dev/schema/pipespec-1.json"


def _allow_params(node: Any) -> Any:
    if isinstance(node, dict):
        node = {k: _allow_params(v) for k, v in node.items()}
        if node.get("type") in ("integer", "number", "boolean"):
            typed = {k: v for k, v in node.items() if k not in ("title", "description", "default")}
            rest = {k: v for k, v in node.items() if k in ("title", "description", "default")}
            return {**rest, "anyOf": [typed, PARAM_REF]}
        return node
    if isinstance(node, list):
        return [_allow_params(v) for v in node]
    return node


def json_schema() -> dict:
    schema = SpecFile.model_json_schema(by_alias=True, mode="validation")
    schema = _allow_params(schema)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = SCHEMA_ID
    schema["title"] = "pipespec spec file"
    return schema


def json_schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=True) + "\n"
