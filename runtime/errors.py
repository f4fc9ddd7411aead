"""Run-time failures, each tied to the node (and so the YAML line) that raised it.

This is the one place that turns third-party exceptions (pyarrow, scikit-learn,
OS errors) into a `RunError` with a stable code; ops raise `RunError` directly
for the failures they detect themselves.
"""

from __future__ import annotations

import errno

from pipespec.compiler.diagnostics import Diagnostic, Span


class RunError(Exception):
    """A failure a user can act on: a stable code, a message, and optionally a hint."""

    def __init__(self, code: str, message: str, hint: str | None = None):
        super().__init__(message)
        self.code, self.message, self.hint = code, message, hint

    def diagnostic(self, span: Span | None) -> Diagnostic:
        return Diagnostic(self.code, self.message, span, self.hint)


class StoreError(RunError):
    """The store cannot be read or written (permissions, disk full, unreachable remote)."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__("E0804", message, hint)


class CorruptArtifact(RunError):
    def __init__(self, what: str, expected: str, actual: str):
        super().__init__(
            "E0805", f"{what} is corrupt: its content hashes to {actual[:12]}…, expected {expected[:12]}…",
            "run `pipespec cache verify --delete` to drop corrupt entries; the next run recomputes them")
        self.expected, self.actual = expected, actual


def map_exception(exc: BaseException, what: str) -> RunError:
    """A RunError for any exception raised while running a node (`what` names the node)."""
    if isinstance(exc, RunError):
        return exc
    if isinstance(exc, OSError) and exc.errno == errno.ENOSPC:
        return StoreError(f"{what}: no space left on device while writing", "free disk space and run again")
    if isinstance(exc, MemoryError):
        return RunError("E0806", f"{what}: out of memory", "raise `resources.memory` or use a smaller sample")
    module = type(exc).__module__.split(".")[0]
    if module == "pyarrow":
        return RunError("E0802", f"{what}: {_first_line(exc)}")
    if module in ("sklearn", "numpy", "scipy") or isinstance(exc, (ValueError, TypeError)):
        return RunError("E0803", f"{what}: {type(exc).__name__}: {_first_line(exc)}")
    if isinstance(exc, OSError):
        return StoreError(f"{what}: {exc.strerror or exc} ({exc.filename or ''})".rstrip(" ()"))
    return RunError("E0806", f"{what}: {type(exc).__name__}: {_first_line(exc)}",
                    "this is probably a bug in pipespec; please report it with the spec")


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:500]
