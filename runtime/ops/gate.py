"""Gate: evaluate every `require` check and decide pass/fail (SPEC §12).

A model gate reads the candidate's metrics and, for `production.<metric>`, the
metrics of the registry's production version (the one the candidate must beat);
with no model in production such a check passes and says so.  A table gate
computes each data check (row_count, null_fraction, ...) with pyarrow and then
evaluates the check with those values.  A check passes only when it is true.
"""

from __future__ import annotations

import datetime as _dt
import math
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
from pipespec.compiler import expr as E
from pipespec.compiler.functions import CHECKS

from ..expressions import evaluate_scalar
from ..keyextra import PRODUCTION, gate_production as production, gated_model as model_name
from ..keyextra import gate_key as key_extra  # noqa: F401  (the op's key inputs, kept light)
from ..keyextra import production_metrics as _production_metrics, reads_production
from .base import Context, Output


COMPARISONS = frozenset({"==", "!=", "<", "<=", ">", ">="})
NO_PRODUCTION = "no model in production"


def run(ctx: Context) -> Output:
    node = ctx.node
    if node.subject == "model":
        decision = _model_gate(ctx)
    else:
        decision = _table_gate(ctx)
    checks = decision["checks"]
    failed = [c["text"] for c in checks if not c["passed"]]
    decision.update(passed=not failed, failed=failed)
    ctx.log(f"{len(checks) - len(failed)} of {len(checks)} checks passed")
    return Output(decision, summary={k: decision[k] for k in ("passed", "failed", "checks")})


def _model_gate(ctx: Context) -> dict:
    values: dict[str, Any] = dict(ctx.load("metrics")["metrics"])
    reads = reads_production(ctx.node.checks)
    record = production(ctx) if reads else None
    for check in ctx.node.checks:
        for name in _production_metrics(check.expr):
            values[f"{PRODUCTION}.{name}"] = (record or {}).get("metrics", {}).get(name)
    types = {name: "float64" for name in values}
    checks = [decide(c.text, c.expr, values, types,
                     NO_PRODUCTION if record is None and _production_metrics(c.expr) else None)
              for c in ctx.node.checks]
    decision = {"subject": "model", "model": model_name(ctx), "checks": checks}
    if reads:
        decision["production"] = {"version": record["version"], "digest": record["digest"]} if record else None
    return decision


# --- table gates --------------------------------------------------------------------


def _table_gate(ctx: Context) -> dict:
    table = ctx.load("table")
    values: dict[str, Any] = {}
    types: dict[str, str] = {}
    checks = []
    for check in ctx.node.checks:
        expr = substitute_checks(check.expr, table, values, types)
        checks.append(decide(check.text, expr, values, types))
    return {"subject": "table", "table": ctx.graph.node(ctx.node.inputs[0].node).name, "checks": checks}


def substitute_checks(expr: E.Expr, table: pa.Table, values: dict, types: dict) -> E.Expr:
    """`expr` with every data check replaced by a column named after it, whose value
    (computed once per gate) is put in `values`."""
    def replace(node: E.Expr) -> E.Expr | None:
        if not (isinstance(node, E.Call) and node.func in CHECKS):
            return None
        column = node.args[0].name if node.args else None
        name = f"{node.func}({column or ''})"
        if name not in values:
            values[name], types[name] = data_check(table, node.func, column), node.type
        return E.Column(name=name, type=node.type, start=node.start, end=node.end)
    return _map(expr, replace)


_CHILDREN = {E.Unary: ("operand",), E.Binary: ("left", "right"), E.InList: ("operand", "items"),
             E.IsNull: ("operand",), E.Call: ("args",)}


def _map(expr: E.Expr, replace) -> E.Expr:
    """A copy of `expr` with `replace` applied top-down (None keeps the node and descends)."""
    new = replace(expr)
    if new is not None:
        return new
    changes = {}
    for field in _CHILDREN.get(type(expr), ()):
        value = getattr(expr, field)
        changes[field] = tuple(_map(v, replace) for v in value) if isinstance(value, tuple) else _map(value, replace)
    return E.evolve(expr, **changes) if changes else expr


def data_check(table: pa.Table, func: str, column: str | None) -> Any:
    """One data check of SPEC §10 over the whole table (None when undefined, e.g. no rows)."""
    if func == "row_count":
        return table.num_rows
    values = table.column(column)
    if func == "null_fraction":
        return values.null_count / len(values) if len(values) else None
    if func == "distinct_count":
        return pc.count_distinct(values, mode="only_valid").as_py()
    if func in ("min", "max"):
        return pc.min_max(values)[func].as_py()
    if func == "mean":
        return pc.mean(values).as_py()
    raise ValueError(f"unknown data check {func}()")


# --- one check ----------------------------------------------------------------------


def decide(text: str, expr: E.Expr, values: dict, types: dict, passes_because: str | None = None) -> dict:
    """The verdict of one check, with the values it compared.  `passes_because`: a reason
    the check passes whatever it evaluates to (no model in production)."""
    result = json_value(evaluate_scalar(expr, values, types))
    comparison = isinstance(expr, E.Binary) and expr.op in COMPARISONS
    if comparison:
        value, threshold = (evaluate_scalar(side, values, types) for side in (expr.left, expr.right))
    else:
        value, threshold = result, None
    note = passes_because or ("evaluated to null" if result is None else None)
    return {"text": text, "passed": passes_because is not None or result is True,
            "value": json_value(value), "threshold": json_value(threshold),
            "operator": expr.op if comparison else None, "note": note}


def json_value(value: Any) -> Any:
    """A value as canonical JSON allows: dates as ISO text, NaN and infinities as null."""
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()  # a numpy scalar
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, (_dt.date, _dt.datetime, _dt.time)):
        return value.isoformat()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)
