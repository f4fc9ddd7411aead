"""What every target shares: the Artifact it returns and the error for what it cannot express."""

from __future__ import annotations

import ast
import hashlib
import keyword

from dataclasses import dataclass, field
from typing import Any, Protocol

from pipespec.compiler.ir import Graph


@dataclass(frozen=True)
class Artifact:
    """Generated files: relative path -> bytes, and warnings (what the target could not
    express exactly, each naming its spec line).  Targets never write; the CLI does."""

    files: dict[str, bytes] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


class UnsupportedError(Exception):
    """The IR uses something a target cannot express; lists every offending node."""

    def __init__(self, target: str, problems: list[tuple[str, str]]):
        self.target, self.problems = target, problems
        super().__init__(f"{target} cannot express: " + "; ".join(f"{n}: {why}" for n, why in problems))


def unknown_options(options: dict[str, Any], known: dict[str, str]) -> list[tuple[str, str]]:
    """One problem per `--option` key the target does not have, listing the ones it has."""
    return [(f"--option {k}", f"unknown option (known: {', '.join(known) or 'none'})")
            for k in sorted(set(options) - set(known))]


FILE_STEM_MAX = 200  # bytes of a file name's stem: file systems allow 255, with room for a suffix


def short_file_name(stem: str, suffix: str) -> str:
    """`stem + suffix`, the stem cut to its start and a hash of the whole when it is longer than
    file systems allow (a pipeline name and a DAG id have no length limit of their own)."""
    if len(stem.encode()) <= FILE_STEM_MAX:
        return stem + suffix
    cut = stem.encode()[:FILE_STEM_MAX - 9].decode(errors="ignore")
    return cut + "-" + hashlib.sha256(stem.encode()).hexdigest()[:8] + suffix


def ir_file(ir: Graph) -> tuple[str, bytes]:
    """The canonical IR a target ships beside what it generates, named by its content
    (`<pipeline>.<sha256[:12]>.ir.json`): what runs it names the exact IR it was compiled
    with, and two compilations of one spec (other params) never overwrite each other."""
    data = ir.to_json().encode()
    return short_file_name(f"{ir.pipeline}.{hashlib.sha256(data).hexdigest()[:12]}", ".ir.json"), data


class Target(Protocol):
    name: str
    description: str

    def compile(self, ir: Graph, options: dict[str, Any]) -> Artifact: ...


_SCALARS = (str, int, float, bool, type(None))


def literal(value) -> str:
    """The one way a spec value enters generated Python: a one-line literal that
    `ast.literal_eval` reads back equal (every target's templates go through it).
    Scalars, and tuples, lists and dicts (keys sorted) of them."""
    _check_literal(value)
    text = repr(_sorted(value))
    if "\n" in text or "\r" in text or ast.literal_eval(text) != value:
        raise ValueError(f"cannot write {value!r} as a one-line Python literal")
    return text


def _check_literal(value) -> None:
    if isinstance(value, (tuple, list)):
        for v in value:
            _check_literal(v)
    elif isinstance(value, dict):
        for k, v in value.items():
            if not isinstance(k, str):
                raise TypeError(f"not a literal key: {type(k).__name__}")
            _check_literal(v)
    elif not isinstance(value, _SCALARS):
        raise TypeError(f"not a literal: {type(value).__name__}")


def _sorted(value):
    if isinstance(value, dict):
        return {k: _sorted(value[k]) for k in sorted(value)}
    if isinstance(value, tuple):
        return tuple(_sorted(v) for v in value)
    if isinstance(value, list):
        return [_sorted(v) for v in value]
    return value


class Code(str):
    """Text allowed into generated Python: made only by `py` (a checked literal) or `ident`."""


def py(value) -> Code:
    return Code(literal(value))


def ident(name: str) -> Code:
    """A validated Python identifier (never a keyword)."""
    if not (isinstance(name, str) and name.isidentifier() and name.isascii() and not keyword.iskeyword(name)):
        raise ValueError(f"not a Python identifier: {name!r}")
    return Code(name)


def _only_code(value):
    if not isinstance(value, Code):
        raise TypeError(f"a template value reached generated Python without |py or |ident: {value!r}")
    return value


def python_template(source: str):
    """A Jinja template for generated Python whose every `{{ }}` must pass through the `py`
    or `ident` filter (anything else raises): the template has no other way in."""
    import jinja2
    env = jinja2.Environment(undefined=jinja2.StrictUndefined, finalize=_only_code, autoescape=False,
                             keep_trailing_newline=True, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(py=py, ident=ident)
    return env.from_string(source)
