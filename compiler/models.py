"""Lowering of models (Train + Evaluate nodes), gates and rollouts."""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import ir
from . import types as T
from .diagnostics import suggest
from .estimators import EstimatorError, check_params, estimator_class
from .ir import METRICS
from .spec import Model, parse_duration
from .typecheck import CHECK, SERVING
from .typecheck import METRICS as METRICS_MODE

if TYPE_CHECKING:
    from .lower import Lowering

SERVING_METRICS = ("error_rate", "latency_p50_ms", "latency_p99_ms", "prediction_drift")
CLASSIFIER_TARGETS = T.INTEGERS | {T.BOOL, T.STRING}
FEATURE_TYPES = T.NUMERIC | {T.BOOL}


def lower_models(lw: "Lowering") -> None:
    for name, m in lw.spec.models.items():
        _lower_model(lw, name, m)


def _estimator(lw: "Lowering", name: str, m: Model):
    base = ("models", name)
    try:
        cls, task = estimator_class(m.estimator)
    except EstimatorError as err:
        lw.diags.add(err.code, err.message, lw.doc.span(base + ("estimator",)), err.hint)
        return None
    try:
        check_params(cls, m.params)
    except EstimatorError as err:
        path = base + ("params", err.param) if err.param else base + ("params",)
        span = lw.doc.key_span(path) if err.param and "no parameter" in err.message else lw.doc.span(path)
        lw.diags.add(err.code, err.message, span, err.hint)
    return task


def _lower_model(lw: "Lowering", name: str, m: Model) -> None:
    base = ("models", name)
    task = _estimator(lw, name, m)
    ok = _check_metrics(lw, base, m, task)
    if m.from_ not in lw.table_node:
        if m.from_ not in lw.spec.sources and m.from_ not in lw.spec.features:
            lw.unknown_table(m.from_, base + ("from",))
        return
    schema = lw.schemas[m.from_]
    types = dict(schema)
    ok = task is not None and _check_columns(lw, base, m, task, types) and ok
    if not ok:
        return
    features = m.features if m.features is not None else [
        c for c, _ in schema if c != m.target and c not in m.keys]
    if m.features is None and not features:
        lw.diags.add("E0505", f"{m.from_} has no feature columns besides the target and keys",
                     lw.doc.key_span(base))
        return
    evaluation = _evaluation(lw, base, m, task)
    if evaluation is None:
        return
    lw.begin(base)
    table = lw.table_node[m.from_]
    span = lw.ir_span(base)
    model_type = ir.ModelType(task=task, features=tuple((c, types[c]) for c in features),
                              target=(m.target, types[m.target]))
    table_in = ir.Input(role="table", node=table, type=lw.nodes[table].output)
    train = ir.Train(id=ir.node_id("Train", name), name=name, span=span, description=m.description,
                     inputs=(table_in,), output=model_type, params=lw.used(),
                     resources=lw.resources(m.resources), retries=m.retries, estimator=m.estimator,
                     estimator_params=_params_json(m.params), task=task, target=m.target,
                     features=tuple(features), keys=tuple(m.keys), evaluation=evaluation)
    evaluate = ir.Evaluate(id=ir.node_id("Evaluate", name), name=name, span=span, inputs=(
        ir.Input(role="model", node=train.id, type=model_type), table_in),
        output=ir.MetricsType(metrics=tuple(m.metrics)), params=lw.used(),
        resources=lw.resources(m.resources), retries=m.retries,
        metrics=tuple(m.metrics), evaluation=evaluation)
    lw.nodes[train.id] = train
    lw.nodes[evaluate.id] = evaluate


def _check_columns(lw: "Lowering", base: tuple, m: Model, task: str, types: dict) -> bool:
    ok = True
    what = f"columns of {m.from_}"
    if m.target not in types:
        lw.diags.add("E0203", f"unknown target column '{m.target}'", lw.doc.span(base + ("target",)),
                     suggest(m.target, types, what))
        ok = False
    else:
        allowed = CLASSIFIER_TARGETS if task == "classification" else T.NUMERIC
        if types[m.target] not in allowed:
            need = "bool, integer or string" if task == "classification" else "numeric"
            lw.diags.add("E0504", f"the target of a {task} model must be {need}; "
                         f"'{m.target}' is {types[m.target]}", lw.doc.span(base + ("target",)),
                         f'cast it in a feature, e.g. cast({m.target}, "int64")'
                         if task == "classification" else None)
            ok = False
    for key in ("features", "keys"):
        seen = set()
        for i, col in enumerate(getattr(m, key) or []):
            path = base + (key, i)
            if col in seen:
                lw.diags.add("E0405", f"column '{col}' is listed twice in {key}", lw.doc.span(path))
                ok = False
                continue
            seen.add(col)
            if col not in types:
                lw.diags.add("E0203", f"unknown column '{col}'", lw.doc.span(path), suggest(col, types, what))
                ok = False
            elif col == m.target:
                lw.diags.add("E0504", f"the target '{col}' cannot also be one of the {key}", lw.doc.span(path))
                ok = False
            elif key == "features" and types[col] not in FEATURE_TYPES:
                lw.diags.add("E0505", f"feature '{col}' is {types[col]}; estimators need numeric or "
                             "bool features", lw.doc.span(path),
                             "derive a numeric column in a feature (if_else, year, days_between, ...)")
                ok = False
    if m.features is None and ok:
        for col, t in types.items():
            if col != m.target and col not in m.keys and t not in FEATURE_TYPES:
                lw.diags.add("E0505", f"column '{col}' of {m.from_} is {t} and would be a feature",
                             lw.doc.key_span(base + ("from",)),
                             "list `features:` explicitly, add it to `keys:`, or drop it upstream")
                ok = False
    return ok


def _check_metrics(lw: "Lowering", base: tuple, m: Model, task: str | None) -> bool:
    ok = True
    for i, metric in enumerate(m.metrics):
        path = base + ("metrics", i)
        kind = METRICS.get(metric)
        if kind is None:
            lw.diags.add("E0503", f"unknown metric '{metric}'", lw.doc.span(path),
                         suggest(metric, METRICS, "metrics"))
            ok = False
        elif task is not None and kind != task:
            lw.diags.add("E0503", f"'{metric}' is a {kind} metric, but {m.estimator} is a "
                         f"{'classifier' if task == 'classification' else 'regressor'}", lw.doc.span(path))
            ok = False
    if len(set(m.metrics)) != len(m.metrics):
        lw.diags.add("E0503", "a metric is listed twice", lw.doc.span(base + ("metrics",)))
        ok = False
    return ok


def _evaluation(lw: "Lowering", base: tuple, m: Model, task: str) -> ir.Evaluation | None:
    if m.cv is not None:
        return ir.Evaluation(method="cv", seed=m.cv.seed, folds=m.cv.folds)
    split = m.split
    if split is not None and split.stratify and task != "classification":
        lw.diags.add("E0506", "`stratify` only applies to classifiers",
                     lw.doc.span(base + ("split", "stratify")))
        return None
    if split is None:
        return ir.Evaluation(method="split", seed=0, test_size=0.2)
    return ir.Evaluation(method="split", seed=split.seed, test_size=split.test_size,
                         stratify=split.stratify)


def _checks(lw: "Lowering", base: tuple, texts: list[str], scope) -> tuple[ir.Check, ...] | None:
    checks, ok = [], True
    for i, text in enumerate(texts):
        typed = lw.expr(base + (i,), text, scope, boolean=True)
        if typed is None:
            ok = False
        else:
            checks.append(ir.Check(text=text, expr=typed))
    return tuple(checks) if ok else None


def lower_gates(lw: "Lowering") -> None:
    for name, g in lw.spec.gates.items():
        base = ("gates", name)
        lw.begin(base)
        if g.model is not None:
            subject = lw.nodes.get(ir.node_id("Evaluate", g.model))
            if g.model not in lw.spec.models:
                if ("models", g.model) not in lw.invalid:
                    lw.diags.add("E0302", f"unknown model '{g.model}'", lw.doc.span(base + ("model",)),
                                 suggest(g.model, lw.spec.models, "models"))
                continue
            # the declared metrics are known even when the model itself has errors
            metrics = {m: T.FLOAT64 for m in lw.spec.models[g.model].metrics if m in METRICS}
            scope = lw.scope(METRICS_MODE, metrics, f"metrics of {g.model}", production=True)
            role = "metrics"
        else:
            if g.table not in lw.table_node:
                if g.table not in lw.spec.sources and g.table not in lw.spec.features:
                    lw.unknown_table(g.table, base + ("table",))
                continue
            subject = lw.nodes[lw.table_node[g.table]]
            scope = lw.scope(CHECK, lw.schemas[g.table], g.table)
            role = "table"
        checks = _checks(lw, base + ("require",), g.require, scope)
        if checks is None or subject is None:
            continue
        node = ir.Gate(id=ir.node_id("Gate", name), name=name, span=lw.ir_span(base), description=g.description,
                       inputs=(ir.Input(role=role, node=subject.id, type=subject.output),),
                       output=ir.DecisionType(), params=lw.used(), subject="model" if g.model is not None else "table",
                       checks=checks)
        lw.nodes[node.id] = node


def lower_rollouts(lw: "Lowering") -> None:
    raw = lw.spec.rollout
    if raw is None:
        return
    items = [(r, ("rollout", i)) for i, r in enumerate(raw)] if isinstance(raw, list) else [(raw, ("rollout",))]
    seen: dict[str, tuple] = {}
    for r, base in items:
        if r.model in seen:
            first = lw.doc.span(seen[r.model] + ("model",))
            lw.diags.add("E0602", f"model '{r.model}' already has a rollout", lw.doc.span(base + ("model",)),
                         f"first declared at line {first.line}" if first else None)
            continue
        seen[r.model] = base
        _lower_rollout(lw, r, base)


def _check_steps(lw: "Lowering", r, base: tuple) -> bool:
    """The step rules of each strategy, reported at the offending step."""
    traffic = [st.traffic for st in r.steps]
    at = lambda i: lw.doc.span(base + ("steps", i, "traffic"))  # noqa: E731
    problem = None
    if r.strategy == "direct" and traffic:
        problem = ("a direct rollout takes no steps", lw.doc.span(base + ("steps",)))
    elif r.strategy == "canary" and not traffic:
        problem = ("a canary rollout needs `steps:`", lw.doc.key_span(base + ("strategy",)))
    elif r.strategy == "canary":
        back = next((i for i in range(1, len(traffic)) if traffic[i] <= traffic[i - 1]), None)
        if back is not None:
            problem = ("canary traffic must increase step by step: "
                       + " -> ".join(f"{t:g}" for t in traffic), at(back))
        elif traffic[-1] != 100:
            problem = (f"a canary's last step must reach traffic 100, not {traffic[-1]:g}",
                       at(len(traffic) - 1))
    elif r.strategy == "blue_green" and len(traffic) > 1:
        problem = ("blue_green takes at most one step (the hold before the switch)",
                   lw.doc.span(base + ("steps", 1)))
    elif r.strategy == "blue_green" and traffic and traffic[0] != 100:
        problem = ("blue_green switches all traffic at once: its step's traffic must be 100", at(0))
    if problem:
        lw.diags.add("E0603", problem[0], problem[1])
    return problem is None


def _lower_rollout(lw: "Lowering", r, base: tuple) -> None:
    ok = _check_steps(lw, r, base)
    if r.model not in lw.spec.models:
        if ("models", r.model) not in lw.invalid:
            lw.diags.add("E0302", f"unknown model '{r.model}'", lw.doc.span(base + ("model",)),
                         suggest(r.model, lw.spec.models, "models"))
        ok = False
    gates = []
    for i, gate in enumerate(r.requires):
        g = lw.spec.gates.get(gate)
        if g is None:
            if ("gates", gate) not in lw.invalid:
                lw.diags.add("E0303", f"unknown gate '{gate}'", lw.doc.span(base + ("requires", i)),
                             suggest(gate, lw.spec.gates, "gates"))
            ok = False
        elif g.model is not None and g.model != r.model:
            lw.diags.add("E0605", f"gate '{gate}' checks model '{g.model}', not '{r.model}'",
                         lw.doc.span(base + ("requires", i)))
            ok = False
        else:
            gates.append(gate)
    lw.begin(base)
    rollback = None
    if r.rollback_if is not None:
        scope = lw.scope(SERVING, {m: T.FLOAT64 for m in SERVING_METRICS}, "serving metrics")
        typed = lw.expr(base + ("rollback_if",), r.rollback_if, scope, boolean=True)
        ok = ok and typed is not None
        rollback = ir.Check(text=r.rollback_if, expr=typed) if typed is not None else None
    train = lw.nodes.get(ir.node_id("Train", r.model))
    traffic = _traffic_input(lw, r, base, train)
    if not ok or train is None or traffic is None or any(ir.node_id("Gate", g) not in lw.nodes for g in gates):
        return
    inputs = (ir.Input(role="model", node=train.id, type=train.output), traffic,
              *(ir.Input(role=f"gate:{g}", node=ir.node_id("Gate", g), type=ir.DecisionType()) for g in gates))
    steps = tuple(ir.Step(traffic=float(s.traffic), hold_seconds=parse_duration(s.hold) if s.hold else None)
                  for s in r.steps)
    node = ir.Rollout(id=ir.node_id("Rollout", r.model), name=r.model, span=lw.ir_span(base),
                      description=r.description, inputs=inputs, output=ir.DecisionType(),
                      params=lw.used(), model=r.model, strategy=r.strategy, steps=steps,
                      rollback_if=rollback)
    lw.nodes[node.id] = node


def _traffic_input(lw: "Lowering", r, base: tuple, train: ir.Train | None) -> ir.Input | None:
    """The rows the rollout simulation replays: `replay:` (role "replay") or, by default, the
    model's training table (role "table"), whose held-out split is rebuilt at run time."""
    if r.replay is None:
        if train is None:
            return None
        table = train.inputs[0]
        return ir.Input(role="table", node=table.node, type=table.type)
    path = base + ("replay",)
    if r.replay not in lw.table_node:
        if r.replay not in lw.spec.sources and r.replay not in lw.spec.features:
            lw.unknown_table(r.replay, path)
        return None
    node = lw.nodes[lw.table_node[r.replay]]
    if train is not None and not _replay_columns(lw, path, r.replay, train, dict(lw.schemas[r.replay])):
        return None
    return ir.Input(role="replay", node=node.id, type=node.output)


def _replay_columns(lw: "Lowering", path: tuple, table: str, train: ir.Train, types: dict) -> bool:
    """Every model feature must be a column of the replay table, of a feature type."""
    missing = [c for c in train.features if c not in types]
    wrong = [f"{c} ({types[c]})" for c in train.features if c in types and types[c] not in FEATURE_TYPES]
    if missing:
        lw.diags.add("E0203", f"replay table '{table}' lacks model feature column(s) "
                     f"{', '.join(missing)}", lw.doc.span(path),
                     f"'{train.name}' reads {', '.join(train.features)}")
    if wrong:
        lw.diags.add("E0505", f"replay table '{table}' has model feature column(s) of a type an "
                     f"estimator cannot read: {', '.join(wrong)}", lw.doc.span(path),
                     "the replay columns must be numeric or bool, like the training features")
    return not missing and not wrong


def _params_json(params: dict) -> str:
    try:
        return ir.canonical(params)
    except ValueError:  # a non-finite number: the loader reported it (E0104)
        return "{}"
