"""pipespec: a declarative ML pipeline compiler.

Public API::

    from pipespec import compile_spec, load
    result = compile_spec("pipeline.yaml", params=["seed=7"])   # never raises for spec errors
    graph = load("pipeline.yaml")                               # raises CompileError

The names are imported on first use (PEP 562), so `import pipespec` (and every CLI
command, a fully cached `pipespec run` above all) does not pay for the compiler's
imports (pydantic, lark, scikit-learn) unless it compiles.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pipespec.compiler.diagnostics import CompileError, Diagnostic
    from pipespec.compiler.ir import Graph
    from pipespec.compiler.lower import Result, compile_text

# public name -> module that defines it
_LAZY = {
    "CompileError": "pipespec.compiler.diagnostics",
    "Diagnostic": "pipespec.compiler.diagnostics",
    "Graph": "pipespec.compiler.ir",
    "Result": "pipespec.compiler.lower",
    "compile_text": "pipespec.compiler.lower",
}


def __getattr__(name: str):
    if name == "__version__":
        value = _version()
    elif name in _LAZY:
        import importlib
        value = getattr(importlib.import_module(_LAZY[name]), name)
    else:
        raise AttributeError(f"module 'pipespec' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version
    try:
        return version("pipespec")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree
        return "0.0.0"


def compile_spec(path: str, params: list[str] = ()) -> Result:
    """Parse, validate and type-check a spec file; the IR is `result.ir` when there are no errors."""
    from pipespec.compiler.lower import compile_file
    return compile_file(path, list(params))


def load(path: str, params: list[str] = ()) -> Graph:
    """The IR of a spec file; raises CompileError with every diagnostic on failure."""
    from pipespec.compiler.diagnostics import CompileError
    from pipespec.compiler.lower import compile_file
    result = compile_file(path, list(params))
    if result.ir is None:
        raise CompileError(result.errors)
    return result.ir


__all__ = ["CompileError", "Diagnostic", "Graph", "Result", "compile_spec", "compile_text", "load",
           "__version__"]
