"""Progress display and run summary, shared by every executor (local, Ray).

A `Reporter` is told when a node starts, logs a line and finishes.  On a terminal
it draws a live table (rich); otherwise it prints one plain line per event, which
is what CI logs and pipes want.
"""

from __future__ import annotations

import sys
import threading
import time
from typing import TextIO

from .step import BLOCKED, CACHED, DONE, FAILED, SKIPPED, NodeResult

_STYLE = {CACHED: "cyan", DONE: "green", FAILED: "bold red", SKIPPED: "yellow", BLOCKED: "yellow",
          "running": "bold", "pending": "dim"}


class Reporter:
    """Plain line output (not a TTY, or --no-progress)."""

    def __init__(self, stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.lock = threading.Lock()

    def begin(self, pipeline: str, node_ids: list[str], label: str) -> None:
        self._print(f"{label}: pipeline {pipeline}, {len(node_ids)} nodes")

    def start(self, node_id: str) -> None:
        pass

    def log(self, node_id: str, line: str) -> None:
        self._print(f"  {node_id}: {line}")

    def finish(self, result: NodeResult) -> None:
        self._print(f"{result.status:>7}  {result.id}{_detail(result)}")

    def end(self) -> None:
        pass

    def _print(self, text: str) -> None:
        with self.lock:
            print(text, file=self.stream, flush=True)


class LiveReporter(Reporter):
    """A rich live table: node, status, duration, rows; redrawn four times a second."""

    def __init__(self, stream: TextIO | None = None):
        super().__init__(stream)
        from rich.console import Console
        self.console = Console(file=self.stream)
        self.rows: dict[str, dict] = {}
        self.live = None

    def begin(self, pipeline: str, node_ids: list[str], label: str) -> None:
        from rich.live import Live
        self.title = f"{label}: {pipeline}"
        self.rows = {n: {"status": "pending", "started": None, "result": None} for n in node_ids}
        self.live = Live(self._table(), console=self.console, refresh_per_second=4, transient=False,
                         get_renderable=self._table)
        self.live.start()

    def start(self, node_id: str) -> None:
        with self.lock:
            self.rows[node_id].update(status="running", started=time.perf_counter())

    def log(self, node_id: str, line: str) -> None:
        self.console.print(f"[dim]{node_id}:[/dim] {line}", markup=True, highlight=False)

    def finish(self, result: NodeResult) -> None:
        with self.lock:
            self.rows.setdefault(result.id, {}).update(status=result.status, result=result)

    def end(self) -> None:
        if self.live:
            self.live.refresh()
            self.live.stop()

    def _table(self):
        from rich.table import Table
        table = Table(title=self.title, title_justify="left", expand=False)
        for column, justify in (("node", "left"), ("status", "left"), ("time", "right"),
                                ("rows", "right"), ("", "left")):
            table.add_column(column, justify=justify)
        with self.lock:
            for node_id, row in self.rows.items():
                table.add_row(*_cells(node_id, row))
        return table


def _cells(node_id: str, row: dict) -> tuple[str, ...]:
    from rich.markup import escape
    status, result = row["status"], row.get("result")
    if result is not None:
        seconds = f"{result.seconds:.2f}s"
    elif row.get("started"):
        seconds = f"{time.perf_counter() - row['started']:.1f}s"
    else:
        seconds = ""
    rows = f"{result.rows:,}" if result is not None and result.rows is not None else ""
    note = escape(_note(result)) if result is not None else ""
    return escape(node_id), f"[{_STYLE.get(status, '')}]{status}[/]", seconds, rows, note


def _note(result: NodeResult) -> str:
    if result.error is not None:
        return f"error[{result.error.code}]"
    if result.summary.get("passed") is False:
        return "gate failed: " + "; ".join(result.summary.get("failed", []))[:80]
    if result.summary.get("outcome"):
        return str(result.summary["outcome"])
    return (result.reason or "") if result.status in (SKIPPED, BLOCKED) else ""


def _detail(result: NodeResult) -> str:
    parts = []
    if result.status in (DONE, CACHED, FAILED):
        parts.append(f"{result.seconds:.2f}s")
    if result.rows is not None:
        parts.append(f"{result.rows:,} rows")
    note = _note(result)
    if note:
        parts.append(note)
    return f"  ({', '.join(parts)})" if parts else ""


def reporter_for(stream: TextIO | None = None, live: bool | None = None) -> Reporter:
    stream = stream or sys.stderr
    if live is None:
        live = stream.isatty()
    return LiveReporter(stream) if live else Reporter(stream)
