"""YAML -> plain data plus a position for every key and value.

Built on libyaml's event stream (fast, and iterative: no recursion, so deep
nesting cannot exhaust the stack).  Scalars follow the YAML 1.2 core schema,
so `on`, `yes` and `no` stay strings and `2026-01-01` is not silently a date.
Safety limits stop alias bombs and pathological input before they cost much.
"""

from __future__ import annotations

import math
import os
import re
import stat
from dataclasses import dataclass, field
from typing import Any

import yaml

from .diagnostics import Diagnostics, Span

try:
    _YamlLoader = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _YamlLoader = yaml.SafeLoader

MAX_FILE_BYTES = 16 * 1024 * 1024
MAX_DEPTH = 64
MAX_NODES = 1_000_000
INT_MIN, INT_MAX = -2**63, 2**63 - 1  # integers in a spec: what int64 columns, seeds and counts hold

Path = tuple  # a path of mapping keys (str) and sequence indexes (int)


@dataclass(frozen=True, slots=True)
class ScalarLoc:
    """Where a string scalar's text sits in the file, to place carets inside it."""

    style: str | None
    line: int  # 1-based, of the first character of the scalar token
    col: int
    raw: str  # the source text of the token's first line


@dataclass
class Document:
    """A loaded spec: its data, its text, and where every part of it came from."""

    file: str
    text: str
    data: Any
    spans: dict[Path, Span] = field(default_factory=dict)
    key_spans: dict[Path, Span] = field(default_factory=dict)
    scalars: dict[Path, ScalarLoc] = field(default_factory=dict)

    def span(self, path: Path) -> Span | None:
        """The span of the value at `path`, or of its nearest located ancestor."""
        path = tuple(path)
        while path not in self.spans and path:
            path = path[:-1]
        return self.spans.get(path)

    def key_span(self, path: Path) -> Span | None:
        return self.key_spans.get(tuple(path)) or self.span(path)

    def expr_span(self, path: Path, start: int, end: int) -> Span | None:
        """The span of characters start..end of the string scalar at `path`."""
        loc = self.scalars.get(tuple(path))
        whole = self.span(path)
        if loc is None:
            return whole
        value = value_at(self.data, path)
        if not isinstance(value, str):
            return whole
        return _locate_in_scalar(loc, value, start, end, self.text, whole)


def value_at(data: Any, path: Path) -> Any:
    """The value at `path` in loaded data, or None where the path does not exist."""
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _locate_in_scalar(loc: ScalarLoc, value: str, start: int, end: int, text: str,
                      whole: Span | None) -> Span | None:
    if loc.style in (None, "'", '"'):
        lead = 0 if loc.style is None else 1
        first_line = value.split("\n", 1)[0]
        if loc.raw[lead:lead + len(first_line)] == first_line and end <= len(first_line):
            col = loc.col + lead
            return Span(whole.file if whole else "", loc.line, col + start, loc.line, col + max(end, start + 1))
        return whole
    # block scalars (| or >): find the value's line in the lines below the indicator
    lines = text.splitlines()
    value_lines = value.split("\n")
    before = value[:start].count("\n")
    target = value_lines[before] if before < len(value_lines) else ""
    offset = start - (len("\n".join(value_lines[:before])) + (1 if before else 0))
    for ln in range(loc.line, min(len(lines), loc.line + len(value_lines) + 50)):
        src = lines[ln]
        stripped = src.lstrip(" ")
        if target and stripped == target.lstrip(" ") and stripped:
            col = len(src) - len(stripped) + 1 + offset - (len(target) - len(target.lstrip(" ")))
            return Span(whole.file if whole else "", ln + 1, col, ln + 1, col + max(end - start, 1))
    return whole


# --- scalars (YAML 1.2 core schema) ----------------------------------------------

_INT = re.compile(r"^[-+]?[0-9]+$|^0o[0-7]+$|^0x[0-9a-fA-F]+$")
_FLOAT = re.compile(r"^[-+]?(\.[0-9]+|[0-9]+(\.[0-9]*)?)([eE][-+]?[0-9]+)?$")
_SPECIAL_FLOATS = {".inf": math.inf, "+.inf": math.inf, "-.inf": -math.inf, ".nan": math.nan}
_STD_TAG = "tag:yaml.org,2002:"


class IntOutOfRange(ValueError):
    """An integer literal outside 64 bits (Python would take any size, and fail later)."""


def resolve_plain(value: str) -> Any:
    if value in ("", "~", "null", "Null", "NULL"):
        return None
    if value in ("true", "True", "TRUE"):
        return True
    if value in ("false", "False", "FALSE"):
        return False
    if _INT.fullmatch(value):
        return _int(value)
    if _FLOAT.fullmatch(value):
        return float(value)
    if value.lower() in _SPECIAL_FLOATS:
        return _SPECIAL_FLOATS[value.lower()]
    return value


def _int(text: str) -> int:
    """The value of an integer literal; IntOutOfRange beyond 64 bits.  Long literals are
    refused before converting: Python refuses decimal ones over 4,300 digits itself."""
    digits = text.lstrip("+-")[2 if text.startswith(("0o", "0x")) else 0:].lstrip("0")
    if len(digits) <= 24:
        base = 8 if text.startswith("0o") else 16 if text.startswith("0x") else 10
        value = int(text[2:] if base != 10 else text, base)
        if INT_MIN <= value <= INT_MAX:
            return value
    shown = text if len(text) <= 30 else f"{text[:12]}… ({len(text):,} characters)"
    raise IntOutOfRange(f"integer {shown} is out of range: integers in a spec must fit in 64 bits "
                        f"({INT_MIN} to {INT_MAX})")


def _scalar(event: yaml.ScalarEvent) -> tuple[Any, str | None]:
    """The value of a scalar event, or an error message for tags we do not take."""
    tag, style = event.tag, event.style or None  # libyaml says '' for plain
    if tag in (None, "!"):
        return (resolve_plain(event.value) if event.implicit[0] and style is None
                else event.value), None
    if tag == _STD_TAG + "str":
        return event.value, None
    if tag in (_STD_TAG + "int", _STD_TAG + "float", _STD_TAG + "bool", _STD_TAG + "null"):
        v = resolve_plain(event.value)
        kind = tag[len(_STD_TAG):]
        ok = {"int": isinstance(v, int) and not isinstance(v, bool),
              "float": isinstance(v, (int, float)) and not isinstance(v, bool),
              "bool": isinstance(v, bool), "null": v is None}[kind]
        if ok:
            return (float(v) if kind == "float" else v), None
        return None, f"'{event.value}' is not a valid !!{kind}"
    return None, f"YAML tag '{tag}' is not supported in spec files"


# --- the event walker ------------------------------------------------------------


class _Abort(Exception):
    pass


@dataclass
class _Frame:
    value: Any
    path: Path
    start: Any
    anchor: str | None
    size: int = 1
    key: str | None = None
    key_ready: bool = False
    keys_seen: dict = field(default_factory=dict)


class _Builder:
    def __init__(self, file: str, text: str, diags: Diagnostics):
        self.doc = Document(file=file, text=text, data=None)
        self.lines = text.splitlines()
        self.diags = diags
        self.anchors: dict[str, tuple[Any, int]] = {}
        self.total = 0
        self.stack: list[_Frame] = []
        self.docs = 0
        self.out_of_range = False

    def span(self, start, end) -> Span:
        return Span(self.doc.file, start.line + 1, start.column + 1, end.line + 1, end.column + 1)

    def fail(self, code: str, msg: str, mark_start, mark_end=None, hint: str | None = None):
        self.diags.add(code, msg, self.span(mark_start, mark_end or mark_start), hint)
        raise _Abort

    # where the next value goes
    def next_path(self, event) -> Path | None:
        if not self.stack:
            return ()
        top = self.stack[-1]
        if isinstance(top.value, list):
            return top.path + (len(top.value),)
        if top.key_ready:
            return top.path + (top.key,)
        return None  # this value is a key

    def add(self, value: Any, size: int, event, anchor: str | None, is_scalar_event: bool,
            new_nodes: int = 1) -> None:
        """Place a finished value; `size` is its expanded node count, `new_nodes` what it adds."""
        self.total += new_nodes
        if self.total > MAX_NODES:
            self.fail("E0005", f"the spec expands to more than {MAX_NODES:,} YAML nodes "
                      "(an alias bomb?)", event.start_mark)
        if anchor:
            self.anchors[anchor] = (value, size)
        if not self.stack:
            self.doc.data = value
            return
        top = self.stack[-1]
        top.size += size
        if isinstance(top.value, list):
            top.value.append(value)
            return
        if not top.key_ready:
            self.take_key(top, value, event, is_scalar_event)
            return
        top.value[top.key] = value
        top.key_ready = False

    def take_key(self, top: _Frame, value: Any, event, is_scalar_event: bool) -> None:
        if not is_scalar_event:
            self.fail("E0006", "mapping keys must be plain strings, not lists, mappings or aliases",
                      event.start_mark, event.end_mark)
        key = event.value  # the key's source text: `on:` stays "on", `1:` stays "1"
        if key == "<<" and not event.style:
            self.fail("E0006", "YAML merge keys (<<) are not supported in spec files",
                      event.start_mark, event.end_mark, "write the keys out, or use an alias as a whole value")
        path = top.path + (key,)
        kspan = self.span(event.start_mark, event.end_mark)
        if key in top.keys_seen:
            first = top.keys_seen[key]
            self.diags.add("E0004", f"duplicate key '{key}'", kspan,
                           f"first defined at line {first.line}; remove one of them")
        else:
            top.keys_seen[key] = kspan
        self.doc.key_spans[path] = kspan
        top.key, top.key_ready = key, True

    def on_scalar(self, event) -> None:
        path = self.next_path(event)
        value = self.scalar_value(event, path is None)
        if path is not None:
            self.doc.spans[path] = self.span(event.start_mark, event.end_mark)
            if isinstance(value, str):
                sm = event.start_mark
                raw = self.lines[sm.line][sm.column:] if sm.line < len(self.lines) else ""
                self.doc.scalars[path] = ScalarLoc(event.style or None, sm.line + 1, sm.column + 1, raw)
        self.add(value, 1, event, event.anchor, True)

    def scalar_value(self, event, is_key: bool) -> Any:
        """A scalar's value.  A tag we do not take stops the load; a number out of range is
        reported (an integer also stops the load, once the file is read).  A key's value does
        not matter: a key is its source text."""
        try:
            value, error = _scalar(event)
        except IntOutOfRange as exc:
            if not is_key:
                self.diags.add("E0104", str(exc), self.span(event.start_mark, event.end_mark),
                               "quote it if it is text")
                self.out_of_range = True
            return None
        if error:
            self.fail("E0006", error, event.start_mark, event.end_mark)
        if not is_key and isinstance(value, float) and not math.isfinite(value):
            self.diags.add("E0104", f"non-finite number '{event.value}' is not allowed in a spec",
                           self.span(event.start_mark, event.end_mark))
        return value

    def on_start(self, event, container) -> None:
        if event.tag not in (None, "!", _STD_TAG + "map", _STD_TAG + "seq"):
            self.fail("E0006", f"YAML tag '{event.tag}' is not supported in spec files", event.start_mark)
        if len(self.stack) >= MAX_DEPTH:
            self.fail("E0005", f"the spec nests deeper than {MAX_DEPTH} levels", event.start_mark)
        path = self.next_path(event)
        if path is None:
            self.fail("E0006", "mapping keys must be plain strings, not lists or mappings",
                      event.start_mark)
        self.stack.append(_Frame(container, path, event.start_mark, event.anchor))

    def on_end(self, event) -> None:
        frame = self.stack.pop()
        self.doc.spans[frame.path] = self.span(frame.start, event.end_mark)
        self.add(frame.value, frame.size, event, frame.anchor, False)

    def on_alias(self, event) -> None:
        if event.anchor not in self.anchors:
            self.fail("E0002", f"unknown or recursive alias '*{event.anchor}'", event.start_mark)
        value, size = self.anchors[event.anchor]
        path = self.next_path(event)
        if path is None:
            self.fail("E0006", "aliases cannot be used as mapping keys", event.start_mark)
        self.doc.spans[path] = self.span(event.start_mark, event.end_mark)
        self.add(value, size, event, None, False, new_nodes=size)

    def run(self, events) -> None:
        for event in events:
            if isinstance(event, yaml.ScalarEvent):
                self.on_scalar(event)
            elif isinstance(event, yaml.MappingStartEvent):
                self.on_start(event, {})
            elif isinstance(event, yaml.SequenceStartEvent):
                self.on_start(event, [])
            elif isinstance(event, (yaml.MappingEndEvent, yaml.SequenceEndEvent)):
                self.on_end(event)
            elif isinstance(event, yaml.AliasEvent):
                self.on_alias(event)
            elif isinstance(event, yaml.DocumentStartEvent):
                self.docs += 1
                if self.docs > 1:
                    self.fail("E0003", "a spec file holds exactly one YAML document; found a second",
                              event.start_mark, hint="remove the '---' separator and what follows, "
                              "or split the file")


def read_source(path: str, diags: Diagnostics) -> str | None:
    """The text of a spec file, or None with an E0001/E0005 diagnostic.

    Only a regular file is read: the file is opened without blocking and checked before any
    read, so a FIFO (which would wait forever for a writer) or a device is refused at once."""
    display = os.path.relpath(path) if os.path.isabs(path) else path
    try:
        raw = _read_regular(path)
    except FileNotFoundError:
        diags.add("E0001", f"spec file not found: {display}")
        return None
    except IsADirectoryError:
        diags.add("E0001", f"{display} is a directory, not a spec file",
                  hint="pass the YAML file inside it, e.g. " + os.path.join(display, "pipeline.yaml"))
        return None
    except _NotRegular as exc:
        diags.add("E0001", f"{display} is {exc}, not a regular file",
                  hint="pass the path of a YAML file (to check text from a pipe, save it to a file first)")
        return None
    except _TooLarge:
        diags.add("E0005", f"{display} is larger than {MAX_FILE_BYTES // 2**20} MiB")
        return None
    except OSError as exc:
        diags.add("E0001", f"cannot read {display}: {exc.strerror or exc}")
        return None
    return decode_source(raw, display, diags)


class _NotRegular(Exception):
    pass


class _TooLarge(Exception):
    pass


_KINDS = ((stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISSOCK, "a socket"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))


def _read_regular(path: str) -> bytes:
    """The bytes of a regular file; raises IsADirectoryError, _NotRegular, _TooLarge or OSError."""
    if os.path.isdir(path):
        raise IsADirectoryError(path)
    fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0))
    with os.fdopen(fd, "rb") as fh:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(path)
        if not stat.S_ISREG(mode):
            raise _NotRegular(next((what for test, what in _KINDS if test(mode)), "a special file"))
        if os.fstat(fd).st_size > MAX_FILE_BYTES:
            raise _TooLarge
        raw = fh.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise _TooLarge
    return raw


def decode_source(raw: bytes, display: str, diags: Diagnostics) -> str | None:
    if b"\x00" in raw:
        diags.add("E0001", f"{display} is a binary file, not YAML text")
        return None
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        diags.add("E0001", f"{display} is not UTF-8 text (invalid byte at offset {exc.start})")
        return None


def load_text(text: str, file: str, diags: Diagnostics) -> Document | None:
    """Parse YAML text into a Document, or None with diagnostics."""
    builder = _Builder(file, text, diags)
    try:
        builder.run(yaml.parse(text, Loader=_YamlLoader))
    except _Abort:
        return None
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        span = Span(file, mark.line + 1, mark.column + 1, mark.line + 1, mark.column + 2) if mark else None
        problem = exc.problem or "invalid YAML"
        if "nesting depth" in problem:  # libyaml's own limit, below ours in some versions
            diags.add("E0005", f"the spec nests too deeply ({problem})", span)
            return None
        if exc.context:
            problem = f"{problem} ({exc.context})"
        at = _char_at(text, mark) if mark else ""
        diags.add("E0002", problem, span, _yaml_hint(problem, at))
        return None
    except yaml.YAMLError as exc:  # reader errors: control characters and the like
        diags.add("E0002", str(exc).splitlines()[0], Span(file, 1, 1, 1, 2))
        return None
    if builder.out_of_range:
        return None
    if not isinstance(builder.doc.data, dict):
        data = builder.doc.data
        kind = {type(None): "an empty document", list: "a list", str: "a string", int: "an integer",
                float: "a number", bool: "a boolean"}.get(type(data), type(data).__name__)
        span = builder.doc.spans.get(()) if data is not None else None
        diags.add("E0003", f"the spec's top level must be a mapping, not {kind}",
                  span or Span(file, 1, 1, 1, 2),
                  "start with `pipespec: 1` and `pipeline: <name>`")
        return None
    return builder.doc


def _char_at(text: str, mark) -> str:
    lines = text.splitlines()
    if mark.line < len(lines) and mark.column < len(lines[mark.line]):
        return lines[mark.line][mark.column]
    return ""


def _yaml_hint(problem: str, char: str = "") -> str | None:
    if char == "\t" or "'\\t'" in problem:
        return "YAML indentation must use spaces, not tabs"
    if "mapping values are not allowed" in problem:
        return "a value containing ': ' must be quoted"
    if "expected ',' or '}'" in problem or "expected ',' or ']'" in problem:
        return "inside `{...}` or `[...]`, quote values that contain ':' , '{' or start with '$'"
    return None


def load_file(path: str, diags: Diagnostics, display: str | None = None) -> Document | None:
    text = read_source(path, diags)
    if text is None:
        return None
    return load_text(text, display or (os.path.relpath(path) if os.path.isabs(path) else path), diags)
