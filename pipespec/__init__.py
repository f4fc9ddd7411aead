"""pipespec: a declarative ML pipeline compiler.

Public API::

    from pipespec import compile_spec, load
    result = compile_spec("pipeline.yaml", params=["seed=7"])   # never raises for spec errors
    graph = load("pipeline.yaml")                               # raises CompileError
"""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from pipespec.compiler.diagnostics import CompileError, Diagnostic
from pipespec.compiler.ir import Graph
from pipespec.compiler.lower import Result, compile_file, compile_text

try:
    __version__ = version("pipespec")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"


def compile_spec(path: str, params: list[str] = ()) -> Result:
    """Parse, validate and type-check a spec file; the IR is `result.ir` when there are no errors."""
    return compile_file(path, list(params))


def load(path: str, params: list[str] = ()) -> Graph:
    """The IR of a spec file; raises CompileError with every diagnostic on failure."""
    result = compile_file(path, list(params))
    if result.ir is None:
        raise CompileError(result.errors)
    return result.ir


__all__ = ["CompileError", "Diagnostic", "Graph", "Result", "compile_spec", "compile_text", "load",
           "__version__"]
