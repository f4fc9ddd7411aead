"""The local rollout simulation (runtime/ops/rollout.py) and model cards (runtime/cards.py)."""

import math
import re
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.tree import DecisionTreeClassifier

from pipespec.compiler.lower import compile_file, compile_text
from pipespec.runtime import artifacts
from pipespec.runtime.cards import model_card
from pipespec.runtime.ops import rollout
from pipespec.runtime.ops.base import Context, Sample
from pipespec.runtime.registry import Registry, version_of
from pipespec.runtime.store import Store

ROOT = Path(__file__).resolve().parent.parent
PIPELINE = "sim"


def spec(strategy="canary", steps="[{traffic: 10, hold: 30m}, {traffic: 50}, {traffic: 100}]",
         rollback_if=None, replay=False, features="[x1, x2]"):
    lines = [
        "pipespec: 1", f"pipeline: {PIPELINE}", "sources:",
        "  d: {format: csv, path: d.csv, schema: {x1: float64, x2: float64, x3: float64, y: bool}}",
        "  live: {format: csv, path: live.csv, schema: {x1: float64, x2: int64, x3: float64}}",
        "models:",
        f"  m: {{from: d, target: y, features: {features}, estimator: sklearn.linear_model.LogisticRegression,",
        "      metrics: [accuracy], split: {test_size: 0.5, seed: 3}}",
        "rollout:", "  model: m", f"  strategy: {strategy}",
    ]
    lines += [f"  steps: {steps}"] if steps else []
    lines += [f'  rollback_if: "{rollback_if}"'] if rollback_if else []
    lines += ["  replay: live"] if replay else []
    result = compile_text("\n".join(lines))
    assert result.ok, result.diagnostics
    return result.ir


def data(n=400, seed=0):
    rng = np.random.default_rng(seed)
    x1, x2, x3 = rng.normal(size=n), rng.normal(size=n), rng.normal(size=n)
    return pa.table({"x1": x1, "x2": x2, "x3": x3, "y": (x1 + 0.5 * x2 + rng.normal(0, 0.3, n)) > 0})


def fit(model, table, features=("x1", "x2")):
    X = np.column_stack([table.column(c).to_numpy() for c in features])
    return model.fit(X, table.column("y").to_numpy())


class Sim:
    """A store and registry, a candidate model, optionally one in production, and contexts."""

    def __init__(self, tmp_path, production=True):
        self.store = Store(str(tmp_path / "store"))
        self.registry = Registry(self.store)
        self.table = data()
        self.candidate = self.put(fit(LogisticRegression(), self.table))
        self.production = self.put(fit(DecisionTreeClassifier(max_depth=2, random_state=0), self.table))
        if production:
            self.registry.register(PIPELINE, "m", digest=self.production)
            self.registry.promote(PIPELINE, "m", version_of(self.production), "earlier release")

    def put(self, model) -> str:
        return self.store.put(artifacts.encode(artifacts.MODEL, model)).digest

    def context(self, graph, sample=None, hold=False, replay=None, registry=True):
        inputs = {"model": self.candidate}
        tables = {"table": self.table}
        if replay is not None:
            inputs["replay"], tables["replay"] = "r" * 64, replay
        else:
            inputs["table"] = "t" * 64

        def loader(role):
            if role == "model":
                return artifacts.decode(artifacts.MODEL, self.store.get(self.candidate))
            return tables[role]

        return Context(graph=graph, node=graph.node("rollout.m"), store=self.store,
                       registry=self.registry if registry else None, root=".", input_digests=inputs,
                       loader=loader, digest_of=lambda node_id: None, sample=sample, hold=hold)

    def stage(self, digest) -> str | None:
        record = self.registry.get(PIPELINE, "m", version_of(digest))
        return record["stage"] if record else None

    def in_production(self) -> str | None:
        record = self.registry.production(PIPELINE, "m")
        return record["digest"] if record else None


def simulate(sim, graph, **kw):
    ctx = sim.context(graph, **kw)
    extra = rollout.key_extra(ctx)
    return rollout.run(ctx), extra


def full(out):
    """The decision as the run record and card show it: with this run's measurements."""
    return dict(out.value, steps=out.summary["steps"], reason=out.summary["reason"])


def test_the_decision_artifact_holds_no_measured_values(tmp_path):
    sim = Sim(tmp_path)
    out, _ = simulate(sim, spec(rollback_if="latency_p99_ms >= 0"))
    assert out.value["reason"] == "rolled back at step 1: latency_p99_ms >= 0"
    for step in out.value["steps"]:
        assert not set(step) & {"latency_p50_ms", "latency_p99_ms", "hold"}
    assert out.summary["steps"][0]["latency_p99_ms"] >= 0


@pytest.mark.parametrize("strategy, steps, rollback_if, first, stages", [
    ("canary", "[{traffic: 10}, {traffic: 100}]", "error_rate > 0.5", "promoted to production.",
     ["canary", "production"]),
    ("canary", "[{traffic: 10}, {traffic: 100}]", "error_rate >= 0", "archived; production unchanged.",
     ["canary", "archived"]),
    ("shadow", "[{traffic: 20}]", "error_rate > 0.5",
     "stays at stage candidate (shadow rollouts never promote).", ["candidate"]),
])
def test_a_recomputed_decision_is_the_same_artifact_and_leaves_the_registry_alone(
        tmp_path, strategy, steps, rollback_if, first, stages):
    """Its cache entry lost, a rollout runs again on the same inputs: the same key and bytes;
    what the registry did (which depends on the earlier run) is only in the summary."""
    sim, graph = Sim(tmp_path), spec(strategy=strategy, steps=steps, rollback_if=rollback_if)
    (out, key), (again, key_again) = simulate(sim, graph), simulate(sim, graph)
    assert key == key_again and out.value == again.value
    assert artifacts.encode(artifacts.JSON, out.value) == artifacts.encode(artifacts.JSON, again.value)
    version = version_of(sim.candidate)
    assert out.summary["registry"] == f"Registry: {version} {first}"
    history = [h["stage"] for h in sim.registry.get(PIPELINE, "m", version)["history"]]
    assert history == stages
    if stages[-1] != "candidate":
        assert again.summary["registry"] == (f"Registry: {version} was already {stages[-1]} "
                                             "(an earlier run); left unchanged.")
    assert "Registry" not in out.value["note"] and "registry" not in out.value


# --- strategies ------------------------------------------------------------------------


def test_canary_promotes_when_rollback_never_triggers(tmp_path):
    sim = Sim(tmp_path)
    out, extra = simulate(sim, spec(rollback_if="error_rate > 0.5"))
    d = full(out)
    assert extra == {"production": sim.production}
    assert d["simulated"] is True and "Simulated locally" in d["note"]
    assert (d["strategy"], d["outcome"]) == ("canary", "promoted") and out.summary["outcome"] == "promoted"
    assert d["candidate"] == version_of(sim.candidate)
    assert d["production_before"] == version_of(sim.production)
    assert [s["traffic"] for s in d["steps"]] == [10.0, 50.0, 100.0]
    held_out = 200  # test_size 0.5 of 400 rows
    assert all(s["replayed"] == held_out for s in d["steps"])
    requests = [s["requests"] for s in d["steps"]]
    assert requests[0] < requests[1] < requests[2] == held_out
    assert abs(requests[0] - 20) <= 12 and abs(requests[1] - 100) <= 25  # a seeded ~p% share
    for s in d["steps"]:
        assert s["error_rate"] == 0.0 and not s["rollback"]
        assert 0 < s["latency_p50_ms"] <= s["latency_p99_ms"]
        assert s["prediction_drift"] > 0  # a logistic regression is not a depth-2 tree
    assert [s["hold"] for s in d["steps"]] == ["hold 30m replaced by replay", None, None]
    assert sim.stage(sim.candidate) == "production" and sim.in_production() == sim.candidate
    assert sim.stage(sim.production) == "archived"
    history = sim.registry.get(PIPELINE, "m", version_of(sim.candidate))["history"]
    assert [h["stage"] for h in history] == ["canary", "production"]


def test_rollback_archives_the_candidate_and_keeps_production(tmp_path):
    sim = Sim(tmp_path)
    out, _ = simulate(sim, spec(rollback_if="latency_p99_ms >= 0"))
    d = full(out)
    assert d["outcome"] == "rolled_back" and out.summary["outcome"] == "rolled_back"
    assert len(d["steps"]) == 1 and d["steps"][0]["rollback"] is True
    assert re.match(r"rolled back at step 1: latency_p99_ms >= 0 \(error_rate=0, latency_p50_ms=[\d.e+-]+, "
                    r"latency_p99_ms=[\d.e+-]+, prediction_drift=[\d.e+-]+\)$", d["reason"]), d["reason"]
    assert sim.stage(sim.candidate) == "archived"
    record = sim.registry.get(PIPELINE, "m", version_of(sim.candidate))
    assert record["history"][-1]["note"] == d["reason"]
    assert sim.in_production() == sim.production and sim.stage(sim.production) == "production"


def test_rollback_on_errors_of_real_predictions(tmp_path):
    """LogisticRegression refuses NaN: rows with a null feature are failed requests."""
    sim = Sim(tmp_path)
    x1 = [None if i % 4 == 0 else float(i) for i in range(40)]
    replay = pa.table({"x1": pa.array(x1, pa.float64()), "x2": pa.array(range(40), pa.int64()),
                       "x3": pa.array([0.0] * 40)})
    out, _ = simulate(sim, spec(strategy="blue_green", steps=None, rollback_if="error_rate > 0.2",
                                replay=True), replay=replay)
    (step,) = full(out)["steps"]
    assert step["error_rate"] == 0.25 and step["requests"] == 40
    assert full(out)["outcome"] == "rolled_back" and "error_rate=0.25" in full(out)["reason"]


def test_shadow_never_promotes(tmp_path):
    sim = Sim(tmp_path)
    out, _ = simulate(sim, spec(strategy="shadow", steps="[{traffic: 20}, {traffic: 50}]",
                                rollback_if="error_rate > 0.5"))
    d = full(out)
    assert d["outcome"] == "shadowed" and "never promoted" in d["reason"]
    assert [s["traffic"] for s in d["steps"]] == [20.0, 50.0]
    assert d["steps"][0]["requests"] < d["steps"][1]["requests"] < 200
    assert sim.stage(sim.candidate) == "candidate"
    assert sim.in_production() == sim.production


def test_shadow_rollback_archives(tmp_path):
    sim = Sim(tmp_path)
    out, _ = simulate(sim, spec(strategy="shadow", steps="[{traffic: 20}]", rollback_if="error_rate >= 0"))
    assert full(out)["outcome"] == "rolled_back" and sim.stage(sim.candidate) == "archived"
    assert sim.in_production() == sim.production


def test_shadow_mirrors_a_share_even_without_production(tmp_path):
    sim = Sim(tmp_path, production=False)
    out, _ = simulate(sim, spec(strategy="shadow", steps="[{traffic: 20}]"))
    assert full(out)["steps"][0]["requests"] < 100


def test_blue_green_checks_everything_once_then_switches(tmp_path):
    sim = Sim(tmp_path)
    out, _ = simulate(sim, spec(strategy="blue_green", steps="[{traffic: 100, hold: 1h}]",
                                rollback_if="error_rate > 0.5"))
    d = full(out)
    assert d["outcome"] == "promoted"
    assert [(s["traffic"], s["requests"], s["hold"]) for s in d["steps"]] == [
        (100.0, 200, "hold 1h replaced by replay")]
    assert sim.in_production() == sim.candidate
    history = sim.registry.get(PIPELINE, "m", version_of(sim.candidate))["history"]
    assert [h["stage"] for h in history] == ["production"]


def test_direct_promotes_without_replay(tmp_path):
    sim = Sim(tmp_path)
    ctx = sim.context(spec(strategy="direct", steps=None))
    ctx.loader = lambda role: pytest.fail(f"direct rollouts load nothing ({role})")
    d = rollout.run(ctx).value
    assert (d["outcome"], d["steps"], d["simulated"]) == ("promoted", [], True)
    assert sim.in_production() == sim.candidate and sim.stage(sim.production) == "archived"


def test_first_deployment_sends_all_canary_traffic_to_the_candidate(tmp_path):
    sim = Sim(tmp_path, production=False)
    out, extra = simulate(sim, spec(rollback_if="prediction_drift > 0.1"))
    d = full(out)
    assert extra == {"production": None} and d["production_before"] is None
    assert [s["requests"] for s in d["steps"]] == [200, 200, 200]
    assert all(s["prediction_drift"] == 0.0 for s in d["steps"])
    assert d["outcome"] == "promoted" and sim.in_production() == sim.candidate


def test_sample_run_leaves_the_registry_untouched(tmp_path):
    sim = Sim(tmp_path)
    before = sim.registry.versions(PIPELINE, "m")
    out, _ = simulate(sim, spec(), sample=Sample(rows=100, seed=1))
    assert full(out)["outcome"] == "promoted"
    assert full(out)["note"].endswith("Sample run: the registry is left untouched.")
    assert out.summary["registry"] == "Sample run: the registry was left untouched."
    assert sim.registry.versions(PIPELINE, "m") == before


def test_without_a_registry_nothing_is_written(tmp_path):
    sim = Sim(tmp_path, production=False)
    out, extra = simulate(sim, spec(), registry=False)
    assert extra == {"production": None} and full(out)["outcome"] == "promoted"
    assert sim.registry.versions(PIPELINE, "m") == []


@pytest.mark.parametrize("hold", [False, True])
def test_hold_waits_only_when_asked(tmp_path, monkeypatch, hold):
    slept = []
    monkeypatch.setattr(time, "sleep", slept.append)
    sim = Sim(tmp_path)
    out, _ = simulate(sim, spec(steps="[{traffic: 10, hold: 30m}, {traffic: 100, hold: 1h30m}]"), hold=hold)
    holds = [s["hold"] for s in full(out)["steps"]]
    if hold:
        assert slept == [1800, 5400] and holds == ["held 30m", "held 1h30m"]
    else:
        assert slept == [] and holds == ["hold 30m replaced by replay", "hold 1h30m replaced by replay"]


def test_replay_table_is_the_traffic(tmp_path):
    sim = Sim(tmp_path)
    rng = np.random.default_rng(5)
    replay = pa.table({"x1": rng.normal(size=37), "x2": pa.array(rng.integers(-2, 2, 37), pa.int64()),
                       "x3": rng.normal(size=37)})
    out, _ = simulate(sim, spec(strategy="blue_green", steps=None, replay=True), replay=replay)
    assert full(out)["steps"][0]["replayed"] == 37
    assert "replayed from the replay table live" in full(out)["note"]


def test_traffic_is_capped_at_the_head_of_the_table(tmp_path):
    sim = Sim(tmp_path)
    replay = pa.table({"x1": np.arange(2500.0), "x2": pa.array(np.zeros(2500, dtype=np.int64)),
                       "x3": np.zeros(2500)})
    X, _ = rollout.traffic(sim.context(spec(replay=True), replay=replay),
                           spec().node("train.m"))
    assert X.shape == (rollout.MAX_REQUESTS, 2) and X[-1, 0] == rollout.MAX_REQUESTS - 1


def test_drift_is_not_measured_against_a_model_of_other_features(tmp_path):
    sim = Sim(tmp_path)
    sim.production = sim.put(fit(LogisticRegression(), sim.table, ("x1", "x2", "x3")))
    sim.registry.register(PIPELINE, "m", digest=sim.production)
    sim.registry.promote(PIPELINE, "m", version_of(sim.production))
    out, _ = simulate(sim, spec(rollback_if="prediction_drift > 0.1"))
    step = full(out)["steps"][0]
    assert step["prediction_drift"] is None
    assert step["drift_note"] == "prediction_drift not measured: the production model reads other features"
    assert full(out)["outcome"] == "promoted"  # a null comparison is not true (SPEC §9)


# --- drift math --------------------------------------------------------------------------


def test_psi_on_a_known_example():
    expected = np.arange(100.0)  # deciles: 10 values per bin
    assert rollout.psi(expected, expected) == 0.0
    actual = np.arange(50.0)  # twice the share in the lower five bins, none in the upper five
    floor = rollout.PSI_FLOOR
    by_hand = 5 * (0.2 - 0.1) * math.log(0.2 / 0.1) + 5 * (floor - 0.1) * math.log(floor / 0.1)
    assert rollout.psi(expected, actual) == pytest.approx(by_hand)
    assert rollout.psi(expected, actual) == pytest.approx(3.7970, abs=1e-4)


def test_psi_of_constant_predictions_and_of_classes():
    assert rollout.psi(np.zeros(50), np.zeros(20)) == 0.0
    by_hand = (0.75 - 0.5) * math.log(0.75 / 0.5) + (0.25 - 0.5) * math.log(0.25 / 0.5)
    got = rollout.psi_categorical(["a"] * 50 + ["b"] * 50, ["a"] * 75 + ["b"] * 25)
    assert got == pytest.approx(by_hand)


def test_regressor_drift_compares_predicted_values(tmp_path):
    table = data()
    X = np.column_stack([table.column("x1").to_numpy(), table.column("x2").to_numpy()])
    model = LinearRegression().fit(X, X[:, 0])
    served = rollout.serve(model, X[:50])
    assert rollout.output_kind(model) == "regression" and not served.failed.any()
    assert rollout.drift(served, model, "regression", X[:50]) == (0.0, None)


def test_duration_text():
    assert [rollout.duration(s) for s in (45, 1800, 5400, 129600)] == ["45s", "30m", "1h30m", "1d12h"]


# --- model cards ---------------------------------------------------------------------------

HOSTILE = "a | b\\n# Injected heading <script>alert(1)</script> **bold** [x](http://e.vil) `tick`"


def hostile_churn():
    text = (ROOT / "examples" / "churn" / "pipeline.yaml").read_text()
    text = text.replace("    description: Gradient-boosted trees on the customer features.",
                        f'    description: "{HOSTILE}"')
    text = text.replace("      - roc_auc >= params.min_auc", '      - "roc_auc >= params.min_auc or \\"|\\" == \\"|\\""')
    result = compile_text(text, base_dir=str(ROOT / "examples" / "churn"))
    assert result.ok, result.diagnostics
    return result.ir


def card(graph, **kw):
    args = dict(train_entry={"rows": 1234}, metrics={"roc_auc": 0.8123, "log_loss": 0.4},
                gate_decisions={"model_quality": {"passed": True, "checks": [
                    {"text": graph.node("gate.model_quality").checks[0].text, "value": 0.8123,
                     "threshold": 0.75, "passed": True},
                    {"text": "log_loss <= production.log_loss * 1.05", "value": 0.4, "threshold": None,
                     "passed": True, "note": "no model in production"}]}},
                rollout_decision={"simulated": True, "strategy": "canary", "outcome": "rolled_back",
                                  "candidate": "abc123def456", "production_before": None,
                                  "reason": "rolled back at step 1: error_rate > 0.02 (error_rate=0.5)",
                                  "note": "Simulated locally.", "steps": [
                                      {"step": 1, "traffic": 10.0, "requests": 20, "error_rate": 0.5,
                                       "latency_p50_ms": 1.5, "latency_p99_ms": 3.25,
                                       "prediction_drift": 0.0, "rollback": True,
                                       "hold": "hold 30m replaced by replay"}]},
                registry_record={"version": "abc123def456", "stage": "archived",
                                 "history": [{"stage": "archived", "at": "2025-01-01", "note": "rolled | back"}]})
    args.update(kw)
    return model_card(graph, "churn_gbm", **args)


def test_card_sections_and_determinism():
    graph = compile_file(str(ROOT / "examples" / "churn" / "pipeline.yaml")).ir
    text = card(graph)
    assert text == card(graph)
    for heading in ("# Model card: `churn_gbm`", "## Estimator", "## Training data", "## Data lineage",
                    "## Metrics", "## Gates", "### `model_quality`: passed", "## Rollout (simulated)",
                    "## Registry"):
        assert heading in text.splitlines(), heading
    assert "| `learning_rate` | `0.05` |" in text
    assert "- rows: 1,234" in text and "held-out split of 25%, stratified, seed 42" in text
    assert "| `discount` | feature | `customers.monthly_charge`, `plans.monthly_fee` |" in text
    assert "| `churned` | target | `customers.churned` | `customers.is_test`, `customers.signup_date` |" in text
    assert "| `roc_auc >= params.min_auc` | 0.8123 | 0.75 | pass |" in text
    assert "- table: `churn_features` (feature)" in text
    assert "pass (no model in production)" in text
    assert "**Simulated locally** (canary): outcome **rolled\\_back**" in text
    assert "- stage: archived" in text and "- last change: rolled \\| back" in text
    assert "2025-01-01" not in text  # no timestamps


def test_card_escapes_hostile_spec_text():
    graph = hostile_churn()
    gates = {"model_quality": {"passed": False, "checks": [
        {"text": graph.node("gate.model_quality").checks[0].text, "value": 0.8123, "passed": True},
        {"text": "`odd|col` > 0\n# x", "value": "a|b", "passed": False, "note": "x | y"}]}}
    text = card(graph, sample=Sample(rows=500, seed=2), gate_decisions=gates)
    assert "| `` `odd\\|col` > 0 # x `` | a\\|b | — | FAIL (x \\| y) |" in text
    lines = text.splitlines()
    assert not any(ln.startswith("# Injected") for ln in lines)
    assert "<script>" not in text and "\\<script\\>" in text
    assert "[x](http" not in text and "\\*\\*bold\\*\\*" in text
    assert "**Sample run** (500 rows per source, seed 2)" in text
    for block in re.findall(r"(?:^\|.*\n?)+", text, re.M):  # every table keeps its columns
        rows = block.strip("\n").splitlines()
        widths = {len(re.findall(r"(?<!\\)\|", row)) for row in rows}
        assert len(widths) == 1, rows
    assert '| `roc_auc >= params.min_auc or "\\|" == "\\|"` | 0.8123 |' in text


def test_shadow_without_steps_mirrors_all_traffic_once(tmp_path):
    sim = Sim(tmp_path)
    out, _ = simulate(sim, spec(strategy="shadow", steps="[]"))
    (step,) = full(out)["steps"]
    assert step["traffic"] == 100.0 and step["requests"] == 200
    assert full(out)["outcome"] == "shadowed" and sim.in_production() == sim.production
