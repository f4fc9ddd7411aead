"""What the `python` flavour's tasks call in the Airflow worker: `pipespec step`, in-process.

The same function as `pipespec step` (runtime.stepcli.run_step) with one attempt (Airflow
retries with its own policy); its exit codes become Airflow's outcomes: 1 fails the task,
3 (blocked by a failed gate) skips it, 4 (rolled back) fails the decision without retries and
skips a rollout step (so the later steps do not run), as 5 (already decided) does.
Only keys, digests and small summaries are returned, so XCom never carries data.
"""

from __future__ import annotations

import logging

from pipespec.compiler.ir import Graph, IRError
from pipespec.runtime.executor import EXIT_FAILED, EXIT_GATE, EXIT_OK, EXIT_ROLLED_BACK
from pipespec.runtime.stepcli import line, run_step

log = logging.getLogger("pipespec")
XCOM_KEYS = ("id", "kind", "status", "key", "digest", "format", "rows")
_GRAPHS: dict[str, tuple[bytes, Graph]] = {}


def node(ir_file: str, node_id: str, store: str, root: str, _arg=None) -> dict:
    """Run one node; its key, digest and summary go to XCom."""
    code, data = _step(ir_file, node_id, store, root)
    if code == EXIT_ROLLED_BACK:
        from airflow.sdk.exceptions import AirflowFailException
        raise AirflowFailException(f"{node_id}: {data['summary'].get('reason')}")
    return {k: data.get(k) for k in (*XCOM_KEYS, "summary")}


def gate(ir_file: str, node_id: str, store: str, root: str, _arg=None) -> bool:
    """A gate's verdict: False short-circuits (skips) what it guards."""
    _, data = _step(ir_file, node_id, store, root)
    summary = data.get("summary") or {}
    for check in summary.get("checks", []):
        log.info("%s %s (value %r, threshold %r)", "pass" if check.get("passed") else "FAIL",
                 check.get("text"), check.get("value"), check.get("threshold"))
    if not summary.get("passed"):
        log.warning("%s failed: %s; what it guards is skipped", node_id, "; ".join(summary.get("failed", [])))
    return bool(summary.get("passed"))


def step(ir_file: str, node_id: str, store: str, root: str, k: int) -> dict:
    """Step `k` of a rollout; skipped (and with it the later steps and holds) when it rolls
    back or when the rollout was already decided by an earlier run."""
    code, data = _step(ir_file, node_id, store, root, rollout_step=k)
    if code != EXIT_OK:
        from airflow.sdk.exceptions import AirflowSkipException
        if data.get("decided"):
            raise AirflowSkipException(f"{node_id} was already decided (cached): "
                                       f"{(data.get('summary') or {}).get('reason')}")
        raise AirflowSkipException(f"{node_id} rolled back at step {k}: the later steps do not run")
    return {"id": node_id, "rollout_step": k, "report": data.get("report")}


def _step(ir_file: str, node_id: str, store: str, root: str, rollout_step: int | None = None):
    code, data = run_step(_graph(ir_file), node_id, store, root, retries=False, rollout_step=rollout_step)
    log.info("%s", line(data))
    if code == EXIT_FAILED:
        from airflow.sdk.exceptions import AirflowException
        error = data.get("error")
        code = data.get("code") or (error.get("code") if isinstance(error, dict) else None)
        raise AirflowException(f"{node_id} failed: [{code}] {data.get('reason') or error}")
    if code == EXIT_GATE:
        from airflow.sdk.exceptions import AirflowSkipException
        raise AirflowSkipException(f"{node_id}: {data.get('reason')}")
    return code, data


def _graph(ir_file: str) -> Graph:
    """The IR, decoded once per worker process for as long as the file is unchanged."""
    with open(ir_file, "rb") as fh:
        raw = fh.read()
    cached = _GRAPHS.get(ir_file)
    if cached is None or cached[0] != raw:
        try:
            _GRAPHS[ir_file] = cached = (raw, Graph.from_json(raw))
        except IRError as exc:  # a tampered or damaged IR: one line in the task log, no retry
            from airflow.sdk.exceptions import AirflowFailException
            raise AirflowFailException(f"{ir_file} is not a pipespec IR file: {exc}") from None
    return cached[1]
