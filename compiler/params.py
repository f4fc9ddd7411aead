"""Parameters: defaults, `--param` overrides, and `${params.x}` substitution.

A scalar that is exactly `${params.x}` takes the parameter's value and type;
one that embeds it gets text.  `$${` writes a literal `${`.  Expression fields
are left alone: the expression grammar reads `${params.x}` as a typed reference,
so a string parameter can never change an expression's structure.
"""

from __future__ import annotations

import math
import re
from typing import Any

from .diagnostics import Diagnostics, suggest
from .ir import NAME_RE
from .loader import INT_MAX, INT_MIN, Document, IntOutOfRange

_REF = re.compile(r"\$\$\{|\$\{params\.([A-Za-z_][A-Za-z0-9_]*)\}")
EXACT_REF = re.compile(r"^\$\{params\.([A-Za-z_][A-Za-z0-9_]*)\}$")

# (section, entry, key[, item]) patterns whose strings are expressions; "*" matches anything
EXPRESSION_FIELDS = (("features", "*", "where"), ("features", "*", "columns", "*"),
                     ("features", "*", "aggregate", "*"), ("gates", "*", "require", "*"),
                     ("gates", "*", "require"), ("rollout", "rollback_if"),
                     ("rollout", "*", "rollback_if"))


def is_expression_path(path: tuple) -> bool:
    return any(len(p) == len(path) and all(a == "*" or a == b for a, b in zip(p, path))
               for p in EXPRESSION_FIELDS)


def type_name(value: Any) -> str:
    return {bool: "bool", int: "int", float: "float", str: "string"}.get(type(value), type(value).__name__)


def defaults(doc: Document, diags: Diagnostics) -> dict[str, Any]:
    raw = doc.data.get("params")
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        diags.add("E0103", "`params:` must be a mapping of name -> default value", doc.span(("params",)))
        return {}
    result = {}
    for name, value in raw.items():
        if not re.fullmatch(NAME_RE, name):
            diags.add("E0104", f"invalid parameter name {name!r}", doc.key_span(("params", name)),
                      "names start with a letter or _ and contain letters, digits and _")
        elif isinstance(value, (bool, int, float, str)):
            result[name] = value
        else:
            found = "null" if value is None else type(value).__name__.replace("dict", "mapping")
            diags.add("E0701", f"parameter '{name}' needs a scalar default (int, float, bool or "
                      f"string), not {found}", doc.span(("params", name)))
    return result


def parse_override(text: str, params: dict[str, Any], diags: Diagnostics) -> tuple[str, Any] | None:
    name, sep, raw = text.partition("=")
    name = name.strip()
    if not sep or not name:
        diags.add("E0702", f"--param expects name=value, got {text!r}")
        return None
    if name not in params:
        diags.add("E0702", f"unknown parameter '{name}' in --param", hint=suggest(name, params, "params"))
        return None
    default = params[name]
    shown = repr(raw) if len(raw) <= 40 else f"{raw[:12]!r}… ({len(raw):,} characters)"
    try:
        return name, _convert(raw, default)
    except IntOutOfRange:
        diags.add("E0702", f"--param {name}={shown}: out of range (integers are 64-bit, "
                  f"{INT_MIN} to {INT_MAX})")
    except ValueError:
        diags.add("E0702", f"--param {name}={shown}: expected {type_name(default)} "
                  f"(the type of the default {default!r})")
    return None


def _convert(raw: str, default: Any) -> Any:
    if isinstance(default, bool):
        low = raw.strip().lower()
        if low in ("true", "1", "yes"):
            return True
        if low in ("false", "0", "no"):
            return False
        raise ValueError(raw)
    if isinstance(default, int):
        digits = raw.strip().lstrip("+-")
        if len(digits) > 40 and digits.isdigit():  # int() refuses over 4,300 digits
            raise IntOutOfRange(raw)
        value = int(raw)
        if not INT_MIN <= value <= INT_MAX:
            raise IntOutOfRange(raw)
        return value
    if isinstance(default, float):
        value = float(raw)
        if not math.isfinite(value):
            raise ValueError(raw)
        return value
    return raw


def resolve(doc: Document, overrides: list[str], diags: Diagnostics) -> dict[str, Any]:
    params = defaults(doc, diags)
    for text in overrides:
        parsed = parse_override(text, params, diags)
        if parsed:
            params[parsed[0]] = parsed[1]
    return params


def substitute(doc: Document, params: dict[str, Any], diags: Diagnostics) -> tuple[dict, dict]:
    """A copy of the data with `${params.x}` replaced, and {path: params used there}.

    For a scalar that is exactly one reference, the set holds that one name.
    """
    used: dict[tuple, set] = {}
    data = {}
    for key, value in doc.data.items():
        data[key] = value if key == "params" else _walk(value, (key,), doc, params, diags, used)
    return data, used


def _walk(value: Any, path: tuple, doc: Document, params: dict, diags: Diagnostics, exact: dict) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, path + (k,), doc, params, diags, exact) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, path + (i,), doc, params, diags, exact) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value or is_expression_path(path):
        return value
    m = EXACT_REF.fullmatch(value)
    if m:
        if m.group(1) in params:
            exact[path] = {m.group(1)}
            return params[m.group(1)]
        _unknown(m.group(1), m.start(0), m.end(0), path, doc, params, diags)
        return value
    return _REF.sub(lambda mm: _text(mm, path, doc, params, diags, exact), value)


def _text(m: re.Match, path, doc, params, diags, used) -> str:
    if m.group(0) == "$${":
        return "${"
    used.setdefault(path, set()).add(m.group(1))
    if m.group(1) not in params:
        _unknown(m.group(1), m.start(0), m.end(0), path, doc, params, diags)
        return m.group(0)
    v = params[m.group(1)]
    return ("true" if v else "false") if isinstance(v, bool) else str(v)


def _unknown(name, start, end, path, doc, params, diags) -> None:
    diags.add("E0209", f"unknown parameter '{name}'", doc.expr_span(path, start, end),
              suggest(name, params, "declared params"))
