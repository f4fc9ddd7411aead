"""What every operation module gets and returns.

An op module (one per IR node kind) defines::

    def run(ctx: Context) -> Output

An op's version and the libraries whose versions shape its output are listed in
`runtime/keys.py` (OPS), and the other inputs of its cache key (source data digest,
registry baseline, sample) are computed in `runtime/keyextra.py`, so a fully cached
run imports no op.  Ops never touch the cache: the step function (runtime/step.py) computes the key,
loads inputs, calls `run`, stores the output and writes the entry.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from pipespec.compiler import ir


@dataclass(frozen=True)
class Sample:
    """A sample run: at most `rows` rows per source, drawn with `seed`."""

    rows: int
    seed: int = 0


STEP_REPORTS = "rollout_step_reports"  # Context.memo: rollout step -> report an earlier task made


@dataclass
class Output:
    value: Any
    rows: int | None = None
    summary: dict = field(default_factory=dict)  # small JSON facts kept in the entry and run record


@dataclass
class Context:
    graph: ir.Graph
    node: ir.Node
    store: Any                      # runtime.store.Store
    registry: Any                   # runtime.registry.Registry
    root: str                       # directory or URL that relative source paths resolve against
    input_digests: dict[str, str]   # role -> digest of the upstream output
    loader: Callable[[str], Any]    # role -> decoded input (verified on read)
    digest_of: Callable[[str], str | None]  # node id -> output digest of any ancestor
    sample: Sample | None = None
    hold: bool = False              # honour rollout `hold` with real waiting
    log: Callable[[str], None] = lambda line: None
    memo: dict = field(default_factory=dict)  # per-step scratch (e.g. a SQL result read for the key)

    @property
    def pipeline(self) -> str:
        return self.graph.pipeline

    def load(self, role: str) -> Any:
        return self.loader(role)
