"""The `ir` target: the canonical IR JSON itself."""

from __future__ import annotations

from typing import Any

from pipespec.compiler.ir import Graph

from .base import Artifact, UnsupportedError, short_file_name, unknown_options

name = "ir"
description = "canonical IR JSON (what every runtime step reads)"


def compile(ir: Graph, options: dict[str, Any]) -> Artifact:  # noqa: A001 - the Target protocol
    problems = unknown_options(options, {})
    if problems:
        raise UnsupportedError(name, problems)
    return Artifact({short_file_name(ir.pipeline, ".ir.json"): ir.to_json().encode()})
