"""What every target shares: the Artifact it returns and the error for what it cannot express."""

from __future__ import annotations

import ast

from dataclasses import dataclass, field
from typing import Any, Protocol

from pipespec.compiler.ir import Graph


@dataclass(frozen=True)
class Artifact:
    """Generated files: relative path -> bytes.  Targets never write; the CLI does."""

    files: dict[str, bytes] = field(default_factory=dict)


class UnsupportedError(Exception):
    """The IR uses something a target cannot express; lists every offending node."""

    def __init__(self, target: str, problems: list[tuple[str, str]]):
        self.target, self.problems = target, problems
        super().__init__(f"{target} cannot express: " + "; ".join(f"{n}: {why}" for n, why in problems))


class Target(Protocol):
    name: str
    description: str

    def compile(self, ir: Graph, options: dict[str, Any]) -> Artifact: ...


def literal(value: str | int | float | bool | None) -> str:
    """The one way a spec value enters generated Python: a one-line literal that
    `ast.literal_eval` reads back equal (every target's templates go through it)."""
    if not isinstance(value, (str, int, float, bool, type(None))):
        raise TypeError(f"not a literal: {type(value).__name__}")
    text = repr(value)
    if "\n" in text or ast.literal_eval(text) != value:
        raise ValueError(f"cannot write {value!r} as a one-line Python literal")
    return text
