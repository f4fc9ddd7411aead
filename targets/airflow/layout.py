"""Where the DAG file's lines break: as `ruff format` lays them out at line length 100, so a
generated DAG passes `ruff format --check` and has no line over 100 columns.

Nothing here writes Python.  Values still enter the template only through its `|py` filter
(a literal that `ast.literal_eval` must read back equal); `Str` only picks the quotes that
literal is written with, and `Arg` tells the template whether a value fits on its line or is
written as implicitly concatenated parts, one per line.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from typing import Any

WIDTH = 100  # ruff's line-length in pyproject.toml
_WORDS = re.compile(r"[^ ]+ *| +")


class Str(str):
    """A string whose `repr` is the literal ruff writes: double quotes unless the text holds
    more `"` than `'` (ruff's rule), with `repr`'s escapes."""

    __slots__ = ()

    def __repr__(self) -> str:
        return quoted(self)


def quoted(text: str) -> str:
    r = str.__repr__(text)  # single quotes unless the text has ' and no "
    if r[0] == '"' or text.count('"') > text.count("'"):
        return r  # what ruff keeps
    inner = r[1:-1].replace("\\'", "'")  # every ' in r is escaped, so no \\' is split here
    return '"' + inner.replace('"', '\\"') + '"'


def width(text: str) -> int:
    """Columns as ruff counts them: East Asian wide characters take two, combining marks none."""
    if text.isascii():
        return len(text)
    return sum(0 if unicodedata.combining(c) else 2 if unicodedata.east_asian_width(c) in "WF" else 1
               for c in text)


def spelled(value: Any) -> Any:
    """`value` with every string (in lists, tuples and dict keys and values too) a `Str`."""
    if isinstance(value, str):
        return Str(value)
    if isinstance(value, (list, tuple)):
        return type(value)(spelled(v) for v in value)
    if isinstance(value, dict):
        return {Str(k): spelled(v) for k, v in value.items()}
    return value


@dataclass(frozen=True)
class Arg:
    """One `key=value` (or dict entry) of the DAG file.  `value` is written inline through
    `|py`; a string too long for its line comes as `parts` instead (joined, it is `value`)."""

    key: str
    value: Any = None
    parts: tuple[Str, ...] = ()
    kind: str = "literal"  # literal | parts | timedelta | resources


def arg(key: str, value: Any, indent: int, style: str = "kwarg") -> Arg:
    """`value` inline when its line fits, else a string as parts at one more indent (other
    values always fit: ids, numbers, flags).  The line is `key=value,` (style `kwarg`),
    `"key": value,` (`entry`, a dict's), `key = value` (`assign`) or `value,` (`item`)."""
    value = spelled(value)
    if style == "entry":
        key = Str(key)
    head, tail = {"kwarg": (len(key) + 1, 1), "entry": (width(quoted(key)) + 2, 1),
                  "assign": (len(key) + 3, 0), "item": (0, 1)}[style]
    if not isinstance(value, str) or indent + head + width(repr(value)) + tail <= WIDTH:
        return Arg(key, value)
    return Arg(key, value, parts(value, indent + 4), "parts")


def parts(text: str, indent: int) -> tuple[Str, ...]:
    """`text` cut into parts that each fit on a line at `indent`: one part when it fits, else
    after each newline, then at spaces, then (a word longer than a line) between characters."""
    room = WIDTH - indent
    if _fits(text, room):
        return (Str(text),)  # ruff joins parts that fit on one line
    out: list[str] = []
    for line in text.splitlines(keepends=True) or [text]:
        out += _wrap(line, room)
    return tuple(Str(p) for p in out)


def _wrap(line: str, room: int) -> list[str]:
    out, current = [], ""
    for word in _WORDS.findall(line) or [line]:
        if _fits(current + word, room):
            current += word
            continue
        if current:
            out.append(current)
        current = word
        while not _fits(current, room):
            cut = _longest_fitting_prefix(current, room)
            out.append(current[:cut])
            current = current[cut:]
    return out + ([current] if current else [])


def _fits(text: str, room: int) -> bool:
    return width(quoted(text)) <= room


def _longest_fitting_prefix(text: str, room: int) -> int:
    lo, hi = 1, len(text)  # a single character always fits (at most 12 columns escaped)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _fits(text[:mid], room):
            lo = mid
        else:
            hi = mid - 1
    return lo


def fits(indent: int, *texts: str) -> bool:
    """Whether a line of `texts` (already spelled as written) fits at `indent`."""
    return indent + sum(width(t) for t in texts) <= WIDTH
