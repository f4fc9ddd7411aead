"""Structural validation: data -> `SpecFile`, every pydantic error mapped to a diagnostic.

Each section entry is validated on its own, so one broken feature does not hide
the errors of the others; the names of entries that failed are kept so later
passes do not report them again as "unknown".
"""

from __future__ import annotations

import re
import types
import typing
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ValidationError

from .codes import CODES
from .diagnostics import Diagnostics, suggest
from .ir import NAME_RE
from .loader import Document, value_at
from .params import EXACT_REF
from .spec import SECTIONS, Rollout, SpecFile, Strict

_EXPECTED = {"string_type": "a string", "int_type": "an integer", "float_type": "a number",
             "bool_type": "true or false", "dict_type": "a mapping", "model_type": "a mapping",
             "model_attributes_type": "a mapping", "list_type": "a list", "tuple_type": "a list",
             "int_from_float": "an integer", "int_parsing": "an integer"}
_HEADER = ("pipespec", "pipeline", "description", "params", "targets")


@dataclass
class Validated:
    spec: SpecFile
    invalid: set[tuple[str, str]] = field(default_factory=set)  # (section, name) that failed
    header_ok: bool = True  # False: sections are still checked, but no IR is built


def yaml_type(value: Any) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "an integer", float: "a number", str: "a string", list: "a list",
            dict: "a mapping"}.get(type(value), type(value).__name__)


def validate(doc: Document, data: dict, exact: dict, diags: Diagnostics,
             params: dict | None = None) -> Validated:
    ctx = _Context(doc, data, exact, diags, params or {})
    for key in data:
        if key not in SpecFile.model_fields:
            diags.add("E0101", f"unknown top-level key '{key}'", doc.key_span((key,)),
                      suggest(key, SpecFile.model_fields, "top-level keys"))
    header = ctx.model(SpecFile, {k: data[k] for k in _HEADER if k in data}, ())
    invalid: set = set()
    parts: dict[str, Any] = {section: ctx.section(section, cls, invalid) for section, cls in SECTIONS.items()}
    parts["rollout"] = ctx.rollouts(invalid)
    if header is None:  # keep checking the sections; lowering builds no IR
        return Validated(SpecFile.model_construct(pipeline="", pipespec=1, **parts), invalid, False)
    return Validated(header.model_copy(update=parts), invalid)


class _Context:
    def __init__(self, doc: Document, data: dict, exact: dict, diags: Diagnostics, params: dict):
        self.doc, self.data, self.exact, self.diags, self.params = doc, data, exact, diags, params

    def model(self, cls: type[BaseModel], value: Any, path: tuple):
        try:
            return cls.model_validate(value)
        except ValidationError as exc:
            for err in exc.errors():
                self.report(err, cls, path)
            return None

    def section(self, name: str, cls: type[Strict], invalid: set) -> dict:
        raw = self.data.get(name)
        if raw is None:
            return {}
        if not isinstance(raw, dict):
            self.diags.add("E0103", f"`{name}:` must be a mapping of name -> definition, "
                           f"found {yaml_type(raw)}", self.doc.span((name,)))
            return {}
        out = {}
        for entry, value in raw.items():
            if not re.fullmatch(NAME_RE, entry):
                self.diags.add("E0104", f"invalid name {entry!r} in {name}",
                               self.doc.key_span((name, entry)),
                               "names start with a letter or _ and contain only letters, digits and _")
            model = self.model(cls, value, (name, entry))
            if model is None or not re.fullmatch(NAME_RE, entry):
                invalid.add((name, entry))
            else:
                out[entry] = model
        return out

    def rollouts(self, invalid: set):
        raw = self.data.get("rollout")
        if raw is None:
            return None
        if isinstance(raw, list):
            items = [(self.model(Rollout, v, ("rollout", i)), i) for i, v in enumerate(raw)]
            if any(m is None for m, _ in items):
                invalid.add(("rollout", "*"))
            return [m for m, _ in items if m is not None]
        model = self.model(Rollout, raw, ("rollout",))
        if model is None:
            invalid.add(("rollout", "*"))
        return model

    # --- mapping one pydantic error ---

    def report(self, err: dict, cls: type[BaseModel], base: tuple) -> None:
        loc = self.clean_loc(base, err["loc"])
        path = base + loc
        kind = err["type"]
        value = err.get("input")
        doc = self.doc
        if kind in CODES:  # our own PydanticCustomError
            span = doc.span(path) if loc else doc.key_span(path)
            self.diags.add(kind, err["msg"], span)
        elif kind == "extra_forbidden":
            key = loc[-1]
            fields = _fields_at(cls, loc[:-1])
            self.diags.add("E0101", f"unknown key '{key}'", doc.key_span(path),
                           suggest(str(key), fields, "valid keys here"))
        elif kind == "missing":
            self.diags.add("E0102", f"missing required key '{loc[-1]}'", doc.key_span(path[:-1]))
        elif kind in _EXPECTED:
            self.type_error(path, _EXPECTED[kind], value)
        elif kind == "literal_error":
            self.literal_error(path, err)
        else:
            self.diags.add("E0104", _value_message(kind, err, value), doc.span(path))

    def type_error(self, path: tuple, expected: str, value: Any) -> None:
        original = value_at(self.doc.data, path)
        m = EXACT_REF.fullmatch(original) if isinstance(original, str) else None
        param = m.group(1) if m else None
        if param is not None and param not in self.params:
            return  # the unknown parameter is already reported (E0209)
        if param is not None:
            self.diags.add("E0703", f"parameter '{param}' is {yaml_type(value)}, but {expected} is "
                           "expected here", self.doc.span(path))
        else:
            self.diags.add("E0103", f"expected {expected}, found {yaml_type(value)}", self.doc.span(path))

    def literal_error(self, path: tuple, err: dict) -> None:
        choices = re.findall(r"'([^']*)'", err.get("ctx", {}).get("expected", ""))
        value = err.get("input")
        if len(path) >= 2 and path[-2] == "schema":
            code, what = "E0401", "column type"
        else:
            code, what = "E0104", "value"
        self.diags.add(code, f"invalid {what} {value!r}; expected one of: {', '.join(choices)}",
                       self.doc.span(path), suggest(str(value), choices) if isinstance(value, str) else None)

    def clean_loc(self, base: tuple, loc: tuple) -> tuple:
        """Drop pydantic's union tags, keeping only parts that exist in the data."""
        node: Any = self.doc_value(base)
        out = []
        for part in loc:
            if isinstance(node, dict) and part in node:
                node = node[part]
                out.append(part)
            elif isinstance(node, list) and isinstance(part, int) and part < len(node):
                node = node[part]
                out.append(part)
            elif isinstance(node, dict) and part not in node and part == loc[-1]:
                out.append(part)  # a missing key
        return tuple(out)

    def doc_value(self, path: tuple) -> Any:
        node: Any = self.data
        for part in path:
            node = node[part]
        return node


def _fields_at(cls: type[BaseModel], loc: tuple) -> list[str]:
    """The keys allowed at `loc` inside model `cls` (for did-you-mean)."""
    tp: Any = cls
    for part in loc:
        tp = _unwrap(tp)
        if isinstance(tp, type) and issubclass(tp, BaseModel):
            f = next((f for n, f in tp.model_fields.items() if (f.alias or n) == part), None)
            if f is None:
                return []
            tp = f.annotation
        elif typing.get_origin(tp) in (dict, list):
            tp = typing.get_args(tp)[-1]
    tp = _unwrap(tp)
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return [f.alias or n for n, f in tp.model_fields.items()]
    return []


def _unwrap(tp: Any) -> Any:
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if typing.get_origin(tp) in (typing.Union, types.UnionType) and args:
        return args[0]
    return tp


def _value_message(kind: str, err: dict, value: Any) -> str:
    ctx = err.get("ctx", {})
    if kind == "string_pattern_mismatch":
        return f"invalid value {value!r}: must match {ctx.get('pattern')}"
    if kind == "too_short":
        n = ctx.get("min_length")
        return "needs at least one item" if n == 1 else f"needs at least {n} items"
    if kind == "too_long":
        return f"takes at most {ctx.get('max_length')} items"
    if kind in ("greater_than_equal", "greater_than"):
        return f"{value!r} is too small: must be {'>=' if kind.endswith('equal') else '>'} {ctx.get('ge', ctx.get('gt'))}"
    if kind in ("less_than_equal", "less_than"):
        return f"{value!r} is too large: must be {'<=' if kind.endswith('equal') else '<'} {ctx.get('le', ctx.get('lt'))}"
    msg = err["msg"]
    return msg[len("Value error, "):] if msg.startswith("Value error, ") else msg
