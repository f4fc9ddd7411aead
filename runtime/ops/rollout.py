"""Rollout: a local SIMULATION of the rollout policy, never a deployment.

The traffic is a replayed sample (the `replay:` table, or the model's held-out
rows), at most MAX_REQUESTS, scored one row at a time as a serving replica
would, each request's latency the CPU time of its scoring call (see `serve`).
Each step routes a seeded share of the requests to the candidate; the serving
metrics over the candidate's requests are checked against `rollback_if`; the
registry then records the outcome (never in a sample run).  The decision says it
was simulated, and how; it is a function of the inputs alone, so what the
registry did (which depends on earlier runs) goes to the node's summary.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from threadpoolctl import threadpool_limits

from pipespec.compiler import ir
from pipespec.compiler.ir import format_duration as duration

from .. import artifacts
from ..errors import RunError
from ..expressions import evaluate_scalar
from ..keyextra import rollout_baseline as _baseline
from ..keyextra import rollout_key as key_extra  # noqa: F401  (the op's key inputs, kept light)
from ..registry import version_of
from . import _modeling as M
from .base import STEP_REPORTS, Context, Output


MAX_REQUESTS = 2_000
PSI_BINS = 10
PSI_FLOOR = 1e-4  # share given to an empty bin, so the PSI stays finite
METRICS = ("error_rate", "latency_p50_ms", "latency_p99_ms", "prediction_drift")
METRIC_TYPES = {m: "float64" for m in METRICS}


def run(ctx: Context) -> Output:
    node, baseline = ctx.node, _baseline(ctx)
    decision = {"simulated": True, "strategy": node.strategy,
                "candidate": version_of(ctx.input_digests["model"]),
                "production_before": baseline["version"] if baseline else None}
    if node.strategy == "direct":
        decision.update(outcome="promoted", steps=[], requests=0,
                        reason="direct rollout: promoted at once, nothing replayed")
    else:
        decision.update(_simulate(ctx, baseline))
    decision["note"] = _note(decision, ctx.sample)
    registry = _record(ctx, decision)
    ctx.log(f"{decision['outcome']} (simulated): {decision['reason']}")
    ctx.log(registry)
    summary = {"outcome": decision["outcome"], "reason": decision["reason"], "steps": decision["steps"],
               "registry": registry}
    return Output(_reproducible(decision), summary=summary)


# measured on this machine, so they vary a little from run to run: kept in the run record
# and the card (the node's summary), not in the decision artifact, whose digest must be the
# same on every target for the same inputs.  The outcome still depends on the latencies
# (`rollback_if` reads them), which is why they are CPU times, not wall-clock (see `serve`).
MEASURED = ("latency_p50_ms", "latency_p99_ms", "hold")


def _reproducible(decision: dict) -> dict:
    steps = [{k: v for k, v in step.items() if k not in MEASURED} for step in decision["steps"]]
    reason = decision["reason"]
    if decision["outcome"] == "rolled_back":
        reason = reason.split(" (", 1)[0]  # the check, without the measured values
    return dict(decision, steps=steps, reason=reason)


# --- the traffic -----------------------------------------------------------------------


def _train_node(ctx: Context) -> ir.Train:
    return ctx.graph.node(next(p.node for p in ctx.node.inputs if p.role == "model"))


def traffic(ctx: Context, train: ir.Train) -> tuple[np.ndarray, str]:
    """(feature matrix of the replayed requests, where they come from)."""
    if "replay" in ctx.input_digests:
        table, origin = ctx.load("replay"), f"the replay table {_input_name(ctx, 'replay')}"
    else:
        table = ctx.load("table")
        _, held_out = M.split(M.labels(table, train.target, train.task), train.evaluation)
        if held_out is not None:
            table = table.take(held_out)
        origin = ("the held-out rows of " if held_out is not None else "the rows of ") + \
            _input_name(ctx, "table")
    table = table.slice(0, MAX_REQUESTS)
    return M.matrix(table, train.features), origin


def _input_name(ctx: Context, role: str) -> str:
    return ctx.graph.node(next(p.node for p in ctx.node.inputs if p.role == role)).name


# --- serving --------------------------------------------------------------------------


@dataclass
class Served:
    """What one model returned for a set of requests, and how long each took."""

    values: list            # the served value per request (None where it failed)
    latencies_ns: np.ndarray
    failed: np.ndarray      # bool per request


def output_kind(model: Any) -> str:
    """What a prediction is compared by: "binary", "multiclass" or "regression"."""
    classes = getattr(model, "classes_", None)
    if classes is None:
        return "regression"
    return "binary" if len(classes) == 2 else "multiclass"


def _predict(model: Any, kind: str, X: np.ndarray) -> np.ndarray:
    if kind == "binary":
        return model.predict_proba(X)[:, 1]
    return model.predict(X)


def serve(model: Any, X: np.ndarray) -> Served:
    """Score each request alone (a one-row predict, as a replica does), timing its CPU cost.

    Like a replica, one request runs on one thread: OpenMP (used by e.g. histogram
    gradient boosting) would otherwise spin up its pool for every row, which costs
    ~10x the median latency and far more in the tail.  The limit is per thread in
    OpenMP, so nodes running in parallel are not affected."""
    with threadpool_limits(limits=1, user_api="openmp"):
        return _serve(model, X)


# A request's latency is the model's compute cost, not this machine's load: the CPU time of
# its scoring call on this thread (time waiting for a core, or for the GIL held by a node
# running beside the rollout, is not counted), after WARMUP untimed requests (first-call
# allocations and caches), the fastest of PASSES passes over the requests (a pass a
# context switch or a busy neighbour slowed is not the one kept).  The rollout decision
# depends on these numbers, so they must not flip with the build machine's load.
WARMUP = 10
PASSES = 3


def _serve(model: Any, X: np.ndarray) -> Served:
    kind = output_kind(model)
    for i in range(min(WARMUP, len(X))):
        _timed(model, kind, X[i:i + 1])
    passes = [[_timed(model, kind, X[i:i + 1]) for i in range(len(X))] for _ in range(PASSES)]
    values = [value for value, _ in passes[0]]
    latencies = np.array([[ns for _, ns in p] for p in passes], dtype=np.int64)
    failed = np.array([value is None for value in values], dtype=bool)
    return Served(values, latencies.min(axis=0), failed)


def _timed(model: Any, kind: str, row: np.ndarray) -> tuple[Any, int]:
    """(the served value, None when the request failed; CPU nanoseconds of the call)."""
    started = time.thread_time_ns()
    try:
        value = _predict(model, kind, row)[0]
    except Exception:  # noqa: BLE001 - a failed request is what error_rate counts
        value = None
    elapsed = time.thread_time_ns() - started
    return (value if value is not None and _finite(value) else None), elapsed


def _finite(value: Any) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return True  # a class label that is not a number


# --- prediction drift ------------------------------------------------------------------


def psi(expected: np.ndarray, actual: np.ndarray, bins: int = PSI_BINS) -> float:
    """Population Stability Index of `actual` against `expected`, over quantile bins of
    `expected`: sum((a - e) * ln(a / e)) over the bins' shares."""
    expected, actual = np.asarray(expected, dtype=float), np.asarray(actual, dtype=float)
    edges = np.unique(np.quantile(expected, np.linspace(0, 1, bins + 1)[1:-1]))
    e = np.bincount(np.searchsorted(edges, expected, side="right"), minlength=len(edges) + 1)
    a = np.bincount(np.searchsorted(edges, actual, side="right"), minlength=len(edges) + 1)
    return _psi_shares(e, a)


def psi_categorical(expected, actual) -> float:
    """PSI over the frequencies of each predicted class."""
    labels = sorted({*map(str, expected), *map(str, actual)})
    e = np.array([sum(str(v) == c for v in expected) for c in labels])
    a = np.array([sum(str(v) == c for v in actual) for c in labels])
    return _psi_shares(e, a)


def _psi_shares(e_counts: np.ndarray, a_counts: np.ndarray) -> float:
    e = np.maximum(e_counts / max(e_counts.sum(), 1), PSI_FLOOR)
    a = np.maximum(a_counts / max(a_counts.sum(), 1), PSI_FLOOR)
    return float(np.sum((a - e) * np.log(a / e)))


def drift(candidate: Served, production: Any, kind: str, X: np.ndarray) -> tuple[float | None, str | None]:
    """(PSI of the candidate's vs production's predictions on the same requests, why not)."""
    if production is None:
        return 0.0, None
    why = _incomparable(production, kind, X)
    if why:
        return None, why
    ok = ~candidate.failed
    if not ok.any():
        return None, "the candidate served no request successfully"
    try:
        base = _predict(production, kind, X[ok])
    except Exception as exc:  # noqa: BLE001 - an old model that cannot score these rows
        return None, f"the production model cannot score these requests ({type(exc).__name__})"
    served = [v for v, bad in zip(candidate.values, candidate.failed) if not bad]
    return (psi_categorical(base, served) if kind == "multiclass" else psi(base, served)), None


def _incomparable(production: Any, kind: str, X: np.ndarray) -> str | None:
    if getattr(production, "n_features_in_", X.shape[1]) != X.shape[1]:
        return "the production model reads other features"
    if output_kind(production) != kind:
        return "the production model predicts another kind of output"
    return None


# --- steps ---------------------------------------------------------------------------


@dataclass
class Replay:
    X: np.ndarray
    candidate: Any
    production: Any | None
    routing: np.ndarray  # one uniform draw per request: the request goes to the candidate below p
    scored: dict = field(default_factory=dict)  # request index -> (value, latency ns) of the candidate


def routed(replay: Replay, share: float, mirror: bool) -> np.ndarray:
    """The requests the candidate sees at `share` percent (all of them when nothing is in
    production, unless it only mirrors); at least one when there are any."""
    if replay.production is None and not mirror:
        return np.ones(len(replay.X), dtype=bool)
    mask = replay.routing < share / 100.0
    if len(mask) and not mask.any():
        mask[np.argmin(replay.routing)] = True
    return mask


def serve_routed(replay: Replay, mask: np.ndarray) -> Served:
    """The candidate's answers to the routed requests.  A request an earlier step of this
    replay already served keeps its value and latency: the steps' shares overlap (10% of
    the requests are inside 50%), and each request is measured once per simulation."""
    wanted = [int(i) for i in np.flatnonzero(mask)]
    new = [i for i in wanted if i not in replay.scored]
    if new:
        fresh = serve(replay.candidate, replay.X[new])
        replay.scored.update(zip(new, zip(fresh.values, fresh.latencies_ns.tolist())))
    values = [replay.scored[i][0] for i in wanted]
    return Served(values, np.array([replay.scored[i][1] for i in wanted], dtype=np.int64),
                  np.array([v is None for v in values], dtype=bool))


def step_report(k: int, share: float, replay: Replay, mask: np.ndarray) -> dict:
    X = replay.X[mask]
    served = serve_routed(replay, mask)
    value, why = drift(served, replay.production, output_kind(replay.candidate), X)
    ms = served.latencies_ns / 1e6
    report = {"step": k, "traffic": share, "requests": int(mask.sum()), "replayed": len(mask),
              "error_rate": float(served.failed.mean()) if len(X) else None,
              "latency_p50_ms": float(np.percentile(ms, 50)) if len(X) else None,
              "latency_p99_ms": float(np.percentile(ms, 99)) if len(X) else None,
              "prediction_drift": value}
    if why:
        report["drift_note"] = f"prediction_drift not measured: {why}"
    return report


def _rolls_back(node: ir.Rollout, report: dict) -> bool:
    if node.rollback_if is None:
        return False
    values = {m: report[m] for m in METRICS}
    return evaluate_scalar(node.rollback_if.expr, values, METRIC_TYPES) is True


def _replay(ctx: Context, baseline: dict | None) -> tuple[Replay, str]:
    """The replayed requests and how they are routed (seeded: the same on every target)."""
    node, train = ctx.node, _train_node(ctx)
    X, origin = traffic(ctx, train)
    if len(X) == 0:
        raise RunError("E0803", f"rollout {node.name}: {origin} has no rows, so there is no traffic "
                       "to replay", "give `replay:` a table with rows, or train on more rows")
    seed = train.evaluation.seed if train.evaluation else 0
    return Replay(X, ctx.load("model"), _load_production(ctx, baseline),
                  np.random.default_rng(seed).random(len(X))), origin


def simulate_step(ctx: Context, k: int, replay: Replay | None = None, alone: bool = False) -> dict:
    """Step `k` (1-based): its report, its hold and its rollback verdict.  Steps are
    independent (each routes its own seeded share), so an orchestrator can run each as its
    own task (`alone`: the hold, unless honoured here, is the orchestrator's next task) and
    the decision reuses the reports (`STEP_REPORTS` in ctx.memo)."""
    node, st = ctx.node, ctx.node.run_steps()[k - 1]
    if replay is None:
        replay = _replay(ctx, _baseline(ctx))[0]
    report = step_report(k, st.traffic, replay, routed(replay, st.traffic, node.strategy == "shadow"))
    report["hold"] = _hold(ctx, st.hold_seconds, alone)
    report["rollback"] = _rolls_back(node, report)
    ctx.log(f"step {k}: {st.traffic:g}% -> {report['requests']} requests, "
            + ", ".join(f"{m}={_fmt(report[m])}" for m in METRICS)
            + (f"; rollback_if holds: {node.rollback_if.text}" if report["rollback"] else ""))
    return report


def _simulate(ctx: Context, baseline: dict | None) -> dict:
    node = ctx.node
    replay, origin = _replay(ctx, baseline)
    done = ctx.memo.get(STEP_REPORTS) or {}  # steps an orchestrator already ran as tasks
    reports = []
    for k in range(1, len(node.run_steps()) + 1):
        report = done.get(k) or simulate_step(ctx, k, replay)
        reports.append(report)
        if report["rollback"]:
            return {"outcome": "rolled_back", "steps": reports, "requests": len(replay.X), "origin": origin,
                    "reason": _rollback_reason(node, report)}
    outcome = "shadowed" if node.strategy == "shadow" else "promoted"
    return {"outcome": outcome, "steps": reports, "requests": len(replay.X), "origin": origin,
            "reason": _pass_reason(node, reports)}


def _load_production(ctx: Context, baseline: dict | None) -> Any | None:
    """The production model's estimator, read from the main store (which holds the registry:
    a sample run caches into a namespace of it)."""
    if baseline is None:
        return None
    store = getattr(ctx.registry, "store", None) or ctx.store
    return artifacts.decode(artifacts.MODEL, store.get(baseline["digest"], "production model"))


def _hold(ctx: Context, seconds: int | None, alone: bool = False) -> str | None:
    if not seconds:
        return None
    if ctx.hold:
        ctx.log(f"holding {duration(seconds)}")
        time.sleep(seconds)
        return f"held {duration(seconds)}"
    if alone:
        return f"hold {duration(seconds)} left to the orchestrator (its next task)"
    return f"hold {duration(seconds)} replaced by replay"


def _fmt(value: Any) -> str:
    return "null" if value is None else f"{value:.4g}"


def _rollback_reason(node: ir.Rollout, report: dict) -> str:
    values = ", ".join(f"{m}={_fmt(report[m])}" for m in METRICS)
    return f"rolled back at step {report['step']}: {node.rollback_if.text} ({values})"


def _pass_reason(node: ir.Rollout, reports: list[dict]) -> str:
    checked = f"`{node.rollback_if.text}` stayed false" if node.rollback_if else "no rollback_if to check"
    if node.strategy == "shadow":
        return f"shadow: {len(reports)} step(s) mirrored, {checked}; shadow rollouts are never promoted"
    return f"{node.strategy}: {len(reports)} step(s) passed, {checked}"


def _note(decision: dict, sample) -> str:
    """How the decision was made: from the inputs alone (never what the registry did)."""
    if decision["strategy"] == "direct":
        note = "Simulated locally: a direct rollout replays no traffic."
    else:
        note = (f"Simulated locally: {decision['requests']:,} requests replayed from "
                f"{decision['origin']}, each scored one row at a time on one thread, its latency the "
                f"CPU time of the scoring call (the fastest of {PASSES}); no live traffic was served.")
    return note + (" Sample run: the registry is left untouched." if sample is not None else "")


# --- the registry --------------------------------------------------------------------


def _record(ctx: Context, decision: dict) -> str:
    """Write the outcome to the registry (never in a sample run) and say what was done: this
    depends on earlier runs, so it goes to the summary, never into the decision artifact.  A
    decision recomputed for the same inputs (its cache entry lost) leaves the registry as the
    first one did."""
    registry = ctx.registry
    if ctx.sample is not None:
        return "Sample run: the registry was left untouched."
    if registry is None or getattr(registry, "read_only", False):
        return "No writable registry: nothing was recorded."
    pipeline, model, version = ctx.pipeline, ctx.node.model, decision["candidate"]
    record = registry.get(pipeline, model, version) or registry.register(
        pipeline, model, digest=ctx.input_digests["model"])
    stage, outcome = record["stage"], decision["outcome"]
    note = f"simulated {decision['strategy']}: {decision['reason']}"
    if stage == "production" or (stage == "archived" and outcome == "rolled_back"):
        return f"Registry: {version} was already {stage} (an earlier run); left unchanged."
    if decision["strategy"] == "canary":
        registry.set_stage(pipeline, model, version, "canary", "simulated canary steps")
    if outcome == "promoted":
        registry.promote(pipeline, model, version, note)
        return f"Registry: {version} promoted to production."
    if outcome == "rolled_back":
        registry.set_stage(pipeline, model, version, "archived", decision["reason"])
        return f"Registry: {version} archived; production unchanged."
    if stage == "none":
        registry.set_stage(pipeline, model, version, "candidate", note)
        stage = "candidate"
    return f"Registry: {version} stays at stage {stage} (shadow rollouts never promote)."
