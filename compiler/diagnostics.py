"""Diagnostics: stable codes, source spans, and rendering as text or JSON.

Every user mistake becomes a `Diagnostic`; nothing else in the compiler reports
errors to users.  Passes collect diagnostics in a `Diagnostics` list and keep
going where later checks are independent, so one run reports them all.
"""

from __future__ import annotations

import difflib
import json
from dataclasses import dataclass, field
from typing import Iterable

from .codes import CODES


@dataclass(frozen=True, slots=True)
class Span:
    """A 1-based, end-exclusive region of a file (columns count characters)."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def to_json(self) -> dict:
        return {"file": self.file, "line": self.line, "col": self.col,
                "end_line": self.end_line, "end_col": self.end_col}

    @classmethod
    def from_json(cls, data: dict) -> "Span":
        return cls(data["file"], data["line"], data["col"], data["end_line"], data["end_col"])


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    severity: str = "error"

    def __post_init__(self) -> None:
        if self.code not in CODES:
            raise ValueError(f"undocumented diagnostic code {self.code}")

    def sort_key(self) -> tuple:
        s = self.span
        return (s.file, s.line, s.col, self.code) if s else ("", 0, 0, self.code)

    def to_json(self) -> dict:
        data = {"code": self.code, "severity": self.severity, "message": self.message,
                "hint": self.hint, "title": CODES[self.code].title}
        data.update(self.span.to_json() if self.span else {"file": None, "line": None, "col": None,
                                                          "end_line": None, "end_col": None})
        return data


@dataclass
class Diagnostics:
    """An ordered, de-duplicated collection that passes append to."""

    items: list[Diagnostic] = field(default_factory=list)

    def add(self, code: str, message: str, span: Span | None = None, hint: str | None = None,
            severity: str = "error") -> None:
        diag = Diagnostic(code, message, span, hint, severity)
        if diag not in self.items:
            self.items.append(diag)

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        for d in diags:
            if d not in self.items:
                self.items.append(d)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=Diagnostic.sort_key)

    def __bool__(self) -> bool:
        return bool(self.items)

    def __len__(self) -> int:
        return len(self.items)


class CompileError(Exception):
    """Raised by the public API when a spec has errors; carries every diagnostic."""

    def __init__(self, diagnostics: list[Diagnostic]):
        self.diagnostics = sorted(diagnostics, key=Diagnostic.sort_key)
        first = self.diagnostics[0] if self.diagnostics else None
        super().__init__(f"{len(self.diagnostics)} error(s); first: {first.message}" if first else "error")


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """The closest candidate by edit similarity, or None when nothing is close."""
    matches = difflib.get_close_matches(name, sorted(set(candidates)), n=1, cutoff=0.6)
    if not matches and name.lower() != name:
        matches = difflib.get_close_matches(name.lower(), sorted(set(candidates)), n=1, cutoff=0.6)
    return matches[0] if matches else None


def suggest(name: str, candidates: Iterable[str], what: str = "", limit: int = 8) -> str | None:
    """A hint: 'did you mean X?' plus (optionally) a short list of what exists."""
    candidates = sorted(set(candidates))
    best = did_you_mean(name, candidates)
    listing = ""
    if what:
        shown = ", ".join(candidates[:limit]) + (", ..." if len(candidates) > limit else "")
        listing = f"{what}: {shown}" if candidates else f"there are no {what}"
    if best and listing:
        return f"did you mean '{best}'? ({listing})"
    if best:
        return f"did you mean '{best}'?"
    return listing or None


# --- rendering ---------------------------------------------------------------


def render_text(diags: list[Diagnostic], sources: dict[str, str], color: bool = False) -> str:
    return "\n".join(render_one(d, sources.get(d.span.file) if d.span else None, color) for d in diags)


def _style(text: str, code: str, color: bool) -> str:
    return f"\x1b[{code}m{text}\x1b[0m" if color else text


def render_one(d: Diagnostic, source: str | None, color: bool = False) -> str:
    sev = _style(f"{d.severity}[{d.code}]", "1;31" if d.severity == "error" else "1;33", color)
    where = f"{d.span.file}:{d.span.line}:{d.span.col}: " if d.span else ""
    out = [f"{where}{sev}: {d.message}"]
    excerpt = _excerpt(d.span, source) if d.span and source is not None else None
    if excerpt:
        gutter, carets = excerpt[2].split("|", 1)
        out += [excerpt[0], excerpt[1], f"{gutter}|{_style(carets, '1;31', color)}"]
    if d.hint:
        pad = " " * (len(str(d.span.line)) + 1) if excerpt else ""
        out.append(f"{pad}= hint: {d.hint}")
    return "\n".join(out)


def _excerpt(span: Span, source: str) -> list[str] | None:
    lines = source.splitlines()
    if not 1 <= span.line <= len(lines):
        return None
    text = lines[span.line - 1].expandtabs(1)
    if len(text) > 200:  # long lines: show a window around the caret
        start = max(0, span.col - 60)
        text, col_shift = text[start:start + 160], start
    else:
        col_shift = 0
    num = str(span.line)
    pad = " " * len(num)
    end = span.end_col if span.end_line == span.line else len(lines[span.line - 1]) + 1
    width = max(1, min(end, span.col + len(text)) - span.col)
    caret = " " * (span.col - 1 - col_shift) + "^" * width
    return [f"{pad} |", f"{num} | {text}", f"{pad} | {caret}"]


def render_json(diags: list[Diagnostic]) -> str:
    return json.dumps({"diagnostics": [d.to_json() for d in diags],
                       "errors": sum(d.severity == "error" for d in diags),
                       "warnings": sum(d.severity == "warning" for d in diags)},
                      indent=2, sort_keys=True)
