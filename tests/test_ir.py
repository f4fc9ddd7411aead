"""The IR graph built from specs/valid/churn_full.yaml: structure, types, fingerprints, JSON."""

from __future__ import annotations

import json
from pathlib import Path

import networkx as nx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pipespec.compiler import expr as E
from pipespec.compiler import ir
from pipespec.compiler.ir import Graph
from pipespec.compiler.lower import compile_file, compile_text

ROOT = Path(__file__).resolve().parent.parent
CHURN = ROOT / "specs" / "valid" / "churn_full.yaml"
VALID = sorted((ROOT / "specs" / "valid").glob("*.yaml"))


def compile_ok(text: str, file: str = "churn_full.yaml", params=()) -> Graph:
    r = compile_text(text, file, list(params), base_dir=str(CHURN.parent))
    assert r.errors == [], r.errors
    return r.ir


@pytest.fixture(scope="module")
def churn() -> Graph:
    r = compile_file(str(CHURN))
    assert r.errors == [], r.errors
    return r.ir


def strip_spans(data):
    if isinstance(data, dict):
        return {k: strip_spans(v) for k, v in data.items() if k != "span"}
    if isinstance(data, list):
        return [strip_spans(v) for v in data]
    return data


def fingerprints(g: Graph) -> dict[str, str]:
    return {n.id: n.fingerprint() for n in g.nodes}


# --- structure --------------------------------------------------------------------------

EXPECTED_NODES = {
    "source.calls": "Source", "source.customers": "Source", "feature.call_stats": "Transform",
    "feature.customer_features": "Transform", "train.churn": "Train", "evaluate.churn": "Evaluate",
    "gate.quality": "Gate", "rollout.churn": "Rollout",
}


def test_node_ids_and_kinds(churn):
    assert {n.id: n.kind for n in churn.nodes} == EXPECTED_NODES
    assert len(churn) == 8
    assert churn.pipeline == "churn"
    assert churn.node("gate.quality").name == "quality"


def test_nodes_are_in_topological_order(churn):
    ids = [n.id for n in churn.nodes]
    position = {i: k for k, i in enumerate(ids)}
    for u, v, _ in churn.edges():
        assert position[u] < position[v], (u, v)
    # ties are broken by id, so the order is fully determined
    assert ids == list(nx.lexicographical_topological_sort(churn.graph))


def test_edges_with_roles(churn):
    assert churn.edges() == sorted([
        ("source.calls", "feature.call_stats", "input"),
        ("source.customers", "feature.customer_features", "left"),
        ("feature.call_stats", "feature.customer_features", "right"),
        ("feature.customer_features", "train.churn", "table"),
        ("feature.customer_features", "evaluate.churn", "table"),
        ("train.churn", "evaluate.churn", "model"),
        ("evaluate.churn", "gate.quality", "metrics"),
        ("train.churn", "rollout.churn", "model"),
        ("feature.customer_features", "rollout.churn", "table"),  # rows the rollout replays
        ("gate.quality", "rollout.churn", "gate:quality"),
    ])
    assert [n.id for n in churn.upstream("feature.customer_features")] == [
        "feature.call_stats", "source.customers"]
    assert [n.id for n in churn.downstream("train.churn")] == ["evaluate.churn", "rollout.churn"]


def test_input_ports_carry_upstream_output_types(churn):
    for node in churn.nodes:
        for port in node.inputs:
            assert port.type == churn.node(port.node).output, (node.id, port.role)


def test_aggregate_output_schema(churn):
    agg = churn.node("feature.call_stats")
    assert agg.output.columns == (("customer_id", "int64"), ("n_calls", "int64"),
                                  ("total_fee", "float64"), ("avg_minutes", "float64"))
    (op,) = agg.ops
    assert isinstance(op, ir.Aggregate) and op.keys == ("customer_id",)
    assert [name for name, _ in op.aggregates] == ["n_calls", "total_fee", "avg_minutes"]
    assert all(e.type is not None for _, e in op.aggregates)


def test_join_output_schema_and_op_order(churn):
    node = churn.node("feature.customer_features")
    # join keys first, then left columns, then right columns; derived columns appended;
    # `drop: [signup, plan]` removes those two
    assert node.output.columns == (
        ("customer_id", "int64"), ("tenure_days", "int64"), ("churned", "bool"),
        ("n_calls", "int64"), ("total_fee", "float64"), ("avg_minutes", "float64"),
        ("fee_per_call", "float64"), ("ratio", "float64"), ("is_pro", "bool"))
    kinds = [type(op).__name__ for op in node.ops]
    assert kinds == ["Join", "Filter", "Derive", "Derive", "Derive", "Select"]
    join = node.ops[0]
    assert (join.how, join.on) == ("left", ("customer_id",))
    flt = node.ops[1]
    assert flt.predicate.type == "bool"
    # params are bound: params.min_tenure is the literal 30 in the IR
    assert flt.predicate.right == E.Literal(value=30, type="int64")


def test_params_recorded_on_nodes(churn):
    assert churn.params == (("min_tenure", 30), ("seed", 7))
    assert churn.node("feature.customer_features").params == (("min_tenure", 30),)
    assert churn.node("train.churn").params == (("seed", 7),)
    assert churn.node("source.calls").params == ()
    assert churn.node("feature.call_stats").params == ()


def test_model_gate_and_rollout_nodes(churn):
    train = churn.node("train.churn")
    assert train.task == "classification" and train.target == "churned"
    assert train.keys == ("customer_id",)
    assert "customer_id" not in train.features and "churned" not in train.features
    assert json.loads(train.estimator_params) == {"n_estimators": 50, "random_state": 7}
    assert train.evaluation == ir.Evaluation(method="split", seed=7, test_size=0.25, stratify=True)
    assert churn.node("evaluate.churn").metrics == ("roc_auc", "accuracy")
    gate = churn.node("gate.quality")
    assert [c.text for c in gate.checks] == ["roc_auc >= 0.7", "roc_auc >= production.roc_auc - 0.01"]
    rollout = churn.node("rollout.churn")
    assert [(s.traffic, s.hold_seconds) for s in rollout.steps] == [(10.0, 1800), (50.0, 3600), (100.0, None)]
    assert rollout.rollback_if.expr.type == "bool"


def test_networkx_graph_is_acyclic_and_frozen(churn):
    g = churn.graph
    assert nx.is_directed_acyclic_graph(g)
    assert nx.is_frozen(g)
    assert set(g.nodes) == set(EXPECTED_NODES)
    with pytest.raises(nx.NetworkXError):
        g.add_edge("rollout.churn", "source.calls")
    assert g.edges["gate.quality", "rollout.churn"]["role"] == "gate:quality"


def test_nodes_are_immutable(churn):
    with pytest.raises(AttributeError):  # dataclasses.FrozenInstanceError
        churn.node("train.churn").target = "x"  # type: ignore[misc]


# --- fingerprints --------------------------------------------------------------------------

REFORMATTED = """\
# the same pipeline, written differently
pipeline: churn          # keys reordered, comments, flow <-> block
pipespec: 1
rollout:
  rollback_if: "error_rate > 0.02 or latency_p99_ms > 250"
  strategy: canary
  model: churn
  requires:
    - quality
  steps:
    - traffic: 10
      hold: 30m
    - {hold: 1h, traffic: 50}
    - traffic: 100
gates:
  quality:
    require: ["roc_auc >= 0.7", "roc_auc >= production.roc_auc - 0.01"]
    model: churn
models:
  churn:
    metrics: [roc_auc, accuracy]
    split:
      seed: "${params.seed}"
      stratify: true
      test_size: 0.25
    params:
      random_state: "${params.seed}"
      n_estimators: 50
    estimator: sklearn.ensemble.RandomForestClassifier
    keys: [customer_id]
    target: churned
    from: customer_features
features:
  customer_features:
    drop:
      - signup
      - plan
    columns: {fee_per_call: total_fee / n_calls, ratio: fee_per_call / tenure_days, is_pro: 'plan == "pro"'}
    where: >-
      tenure_days >= params.min_tenure
    join:
      how: left
      on: customer_id
      right: call_stats
      left: customers
  call_stats:
    aggregate: {n_calls: count(), total_fee: sum(fee), avg_minutes: mean(minutes)}
    group_by:
      - customer_id
    from: calls


sources:
  calls:
    schema:
      customer_id: int64
      minutes: float64
      fee: float64
    path: data/calls.parquet
    format: parquet
  customers:
    schema:
      customer_id: int64
      signup: date
      plan: string
      tenure_days: int64
      churned: bool
    path: "data/customers.csv"
    format: csv
params: {min_tenure: 30, seed: 7}
"""


def test_fingerprints_stable_across_reformatting(churn):
    other = compile_ok(REFORMATTED)
    assert fingerprints(other) == fingerprints(churn)
    assert strip_spans(json.loads(other.to_json())) == strip_spans(json.loads(churn.to_json()))


def test_reformatting_changes_spans_only(churn):
    other = compile_ok(REFORMATTED)
    assert other.node("feature.call_stats").span != churn.node("feature.call_stats").span
    assert other == churn  # spans are excluded from equality


def test_fingerprint_ignores_names_and_descriptions():
    text = CHURN.read_text()
    g0 = compile_ok(text)
    g1 = compile_ok(text.replace("  quality:", "  quality:\n    description: some words"))
    assert g1.node("gate.quality").description == "some words"
    assert g1.node("gate.quality").fingerprint() == g0.node("gate.quality").fingerprint()


def test_fingerprint_changes_when_an_expression_changes(churn):
    text = CHURN.read_text()
    other = compile_ok(text.replace("fee_per_call / tenure_days", "fee_per_call * tenure_days"))
    a, b = fingerprints(churn), fingerprints(other)
    assert a["feature.customer_features"] != b["feature.customer_features"]
    assert a["feature.call_stats"] == b["feature.call_stats"]
    assert a["source.customers"] == b["source.customers"]


def test_fingerprint_changes_when_a_param_value_changes(churn):
    other = compile_ok(CHURN.read_text().replace("min_tenure: 30", "min_tenure: 31"))
    a, b = fingerprints(churn), fingerprints(other)
    assert a["feature.customer_features"] != b["feature.customer_features"]
    assert a["feature.call_stats"] == b["feature.call_stats"]
    assert a["train.churn"] == b["train.churn"]  # it does not use min_tenure ...


def test_seed_param_changes_model_fingerprint(churn):
    other = compile_ok(CHURN.read_text().replace("seed: 7", "seed: 8"))
    a, b = fingerprints(churn), fingerprints(other)
    assert a["train.churn"] != b["train.churn"]
    assert a["feature.customer_features"] == b["feature.customer_features"]


def test_param_override_changes_the_ir(churn):
    r = compile_file(str(CHURN), ["min_tenure=45"])
    assert r.errors == []
    g = r.ir
    assert g != churn
    assert dict(g.params)["min_tenure"] == 45
    assert g.node("feature.customer_features").params == (("min_tenure", 45),)
    assert g.node("feature.customer_features").ops[1].predicate.right.value == 45
    assert g.to_json() != churn.to_json()
    # an override equal to the default gives the default IR
    assert compile_file(str(CHURN), ["min_tenure=30"]).ir.to_json() == churn.to_json()


# --- JSON -----------------------------------------------------------------------------------


def test_json_round_trip(churn):
    text = churn.to_json()
    back = Graph.from_json(text)
    assert back == churn
    assert back.to_json() == text
    assert [n.span for n in back.nodes] == [n.span for n in churn.nodes]
    assert Graph.from_json(text.encode()) == churn


def test_json_is_canonical(churn):
    text = churn.to_json()
    data = json.loads(text)
    assert text.endswith("\n")

    def keys_sorted(v):
        if isinstance(v, dict):
            return list(v) == sorted(v) and all(keys_sorted(x) for x in v.values())
        if isinstance(v, list):
            return all(keys_sorted(x) for x in v)
        return True

    assert keys_sorted(data)  # json.loads keeps the file's key order
    assert data["schema_version"] == ir.SCHEMA_VERSION
    assert [n["id"] for n in data["nodes"]] == [n.id for n in churn.nodes]
    assert all(n["fingerprint"] == churn.node(n["id"]).fingerprint() for n in data["nodes"])


def test_from_json_rejects_a_tampered_node(churn):
    data = json.loads(churn.to_json())
    node = next(n for n in data["nodes"] if n["id"] == "source.calls")
    node["path"] = "data/evil.parquet"
    with pytest.raises(ValueError, match="fingerprint"):
        Graph.from_json(json.dumps(data))


def test_from_json_rejects_a_tampered_fingerprint(churn):
    data = json.loads(churn.to_json())
    data["nodes"][0]["fingerprint"] = "0" * 64
    with pytest.raises(ValueError, match="fingerprint"):
        Graph.from_json(json.dumps(data))


@pytest.mark.parametrize("version", [0, 2, "1", None])
def test_from_json_rejects_wrong_schema_version(churn, version):
    data = json.loads(churn.to_json())
    data["schema_version"] = version
    with pytest.raises(ValueError, match="schema_version"):
        Graph.from_json(json.dumps(data))


def test_no_absolute_paths_in_json(churn, monkeypatch):
    text = churn.to_json()
    assert str(ROOT) not in text
    assert "/work" not in text
    monkeypatch.chdir(ROOT)
    relative = compile_file("specs/valid/churn_full.yaml").ir
    monkeypatch.chdir(ROOT / "specs")
    other_cwd = compile_file("valid/churn_full.yaml").ir
    assert relative.to_json() == text
    assert other_cwd.to_json() == text
    assert json.loads(text)["source_file"] == "churn_full.yaml"


def test_compile_is_deterministic():
    a = compile_file(str(CHURN)).ir.to_json()
    b = compile_file(str(CHURN)).ir.to_json()
    assert a == b
    assert a.encode() == b.encode()


def test_non_finite_param_cannot_break_the_json():
    text = CHURN.read_text().replace("min_tenure: 30", "min_tenure: .inf")
    r = compile_text(text, "churn_full.yaml", base_dir=str(CHURN.parent))
    if r.ir is not None:  # accepted: then its JSON must still be valid, finite JSON
        data = json.loads(r.ir.to_json())
        assert Graph.from_json(json.dumps(data)) == r.ir
    else:
        assert r.errors


# --- every valid spec -----------------------------------------------------------------------


@pytest.mark.parametrize("path", VALID, ids=lambda p: p.name)
def test_every_valid_spec_round_trips(path):
    r = compile_file(str(path))
    assert r.errors == [], [(d.code, d.message) for d in r.errors]
    text = r.ir.to_json()
    back = Graph.from_json(text)
    assert back == r.ir and back.to_json() == text
    assert nx.is_directed_acyclic_graph(r.ir.graph)
    ids = [n.id for n in r.ir.nodes]
    assert len(set(ids)) == len(ids)


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(VALID), st.randoms(use_true_random=False))
def test_valid_specs_survive_json_reencoding(path, rnd):
    """Re-serializing the IR JSON with shuffled keys and other whitespace still loads equal."""
    g = compile_file(str(path)).ir

    def shuffle(v):
        if isinstance(v, dict):
            items = list(v.items())
            rnd.shuffle(items)
            return {k: shuffle(x) for k, x in items}
        if isinstance(v, list):
            return [shuffle(x) for x in v]
        return v

    data = shuffle(json.loads(g.to_json()))
    text = json.dumps(data, indent=rnd.choice([None, 2, 4]))
    back = Graph.from_json(text)
    assert back == g and back.to_json() == g.to_json()
