"""Hostile IR files (issue 11, section 3): `Graph.from_json` accepts only what `to_json` writes
and raises one error, IRError, naming the JSON path of anything else; `pipespec step` turns it
into one diagnostic line and exit 1, and a tampered name never makes it write outside the store."""

from __future__ import annotations

import copy
import json
import os
import pickle
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipespec import compile_spec
from pipespec.cli import main
from pipespec.compiler import ir
from pipespec.compiler.ir import Graph, IRError

ROOT = Path(__file__).resolve().parent.parent
SPECS = [*sorted(ROOT.glob("examples/*/pipeline.yaml")),
         *(ROOT / "specs" / "valid" / f"{name}.yaml" for name in (
             "churn_full", "rollout_replay", "gates_table_checks", "joins_all_how", "aggregates_all",
             "functions_null_and_conditional", "model_regressor_cv", "resources_retries"))]
NOT_AN_IR = "is not a pipespec IR file: "
FIXTURE = HealthCheck.function_scoped_fixture  # conftest's autouse env fixture: fine to share


@pytest.fixture(scope="module")
def irs() -> list[dict]:
    """The IR JSON of every spec in SPECS, as data."""
    out = []
    for path in SPECS:
        result = compile_spec(str(path))
        assert result.ir is not None, (path, result.errors)
        out.append(json.loads(result.ir.to_json()))
    return out


@pytest.fixture(scope="module")
def churn(irs) -> dict:
    return next(d for d in irs if d["pipeline"] == "churn")


def refingerprint(data) -> None:
    """Recompute every node's fingerprint with the compiler's own function, so the fingerprint
    check does not hide what the decoder itself rejects (a malformed node keeps its own)."""
    nodes = data.get("nodes") if isinstance(data, dict) else None
    for node in nodes if isinstance(nodes, list) else []:
        try:
            definition = {k: v for k, v in node.items() if k != "fingerprint"}
            node["fingerprint"] = ir._fingerprint_encoded(definition)
        except Exception:  # noqa: BLE001 - a node too broken to hash
            pass


def mutated(data: dict, change) -> str:
    data = copy.deepcopy(data)
    change(data)
    refingerprint(data)
    return json.dumps(data)


def index(data: dict, node_id: str) -> int:
    return next(i for i, n in enumerate(data["nodes"]) if n["id"] == node_id)


# --- from_json: each hostile case names its JSON path -------------------------------------------


def _deep_expression(levels: int) -> dict:
    expr = {"node": "Literal", "type": "bool", "value": True}
    for _ in range(levels):
        expr = {"node": "Unary", "op": "not", "type": "bool", "operand": expr}
    return expr


def _rename(data: dict, old: str, new: str) -> None:
    """Give node `old` the id `new` everywhere it appears (inputs and edges too)."""
    for node in data["nodes"]:
        node["id"] = new if node["id"] == old else node["id"]
        for port in node["inputs"]:
            port["node"] = new if port["node"] == old else port["node"]
    data["edges"] = sorted([new if x == old else x for x in e] for e in data["edges"])


def _cycle(d):  # feature.call_stats reads feature.customer_features, which reads it
    stats = d["nodes"][index(d, "feature.call_stats")]
    features = d["nodes"][index(d, "feature.customer_features")]
    stats["inputs"][0].update(node=features["id"], type=features["output"])


CASES = {  # name: (change, path of the error, words of its message)
    "pipeline escapes": (lambda d: d.update(pipeline="../../escape"), "pipeline", "pipeline name"),
    "node id escapes": (lambda d: _rename(d, "source.calls", "../../../tmp/x"), "nodes[0].id",
                        "is not the id of Source 'calls'"),
    "node name escapes": (lambda d: d["nodes"][0].update(name="../x"), "nodes[0].name", "not a name"),
    "absolute id": (lambda d: _rename(d, "source.calls", "/tmp/x"), "nodes[0].id", "not the id"),
    "rollout model escapes": (lambda d: d["nodes"][index(d, "rollout.churn")].update(model="../x"),
                              "nodes[7].model", "its name"),
    "param name escapes": (lambda d: d["params"].update({"../x": 1}), 'params["../x"]', "not a name"),
    "role escapes": (lambda d: d["nodes"][index(d, "train.churn")]["inputs"][0].update(role="../x"),
                     "nodes[4].inputs", "roles"),
    "gate expression null": (lambda d: d["nodes"][6]["checks"][0].update(expr=None),
                             "nodes[6].checks[0].expr", "expected an expression object, got null"),
    "unknown kind": (lambda d: d["nodes"][2].update(kind="Bogus"), "nodes[2].kind", "node kind"),
    "unknown op kind": (lambda d: d["nodes"][1]["ops"][0].update(kind="Source"), "nodes[1].ops[0].kind",
                        "expected kind"),
    "unknown expression": (lambda d: d["nodes"][6]["checks"][0]["expr"].update(node="Eval"),
                           "nodes[6].checks[0].expr.node", "unknown expression node"),
    "missing key": (lambda d: d["nodes"][2].pop("inputs"), "nodes[2]", "missing key 'inputs'"),
    "unknown key": (lambda d: d["nodes"][2].update(shell="rm -rf /"), "nodes[2].shell", "unknown key"),
    "wrong type": (lambda d: d["nodes"][2].update(inputs={}), "nodes[2].inputs", "expected an array"),
    "bool for int": (lambda d: d["nodes"][4]["evaluation"].update(seed=True), "nodes[4].evaluation.seed",
                     "64-bit integer"),
    "huge int": (lambda d: d["nodes"][4].update(retries=10**30), "nodes[4].retries", "64-bit integer"),
    "negative count": (lambda d: d["nodes"][4].update(retries=-1), "nodes[4].retries", "non-negative"),
    "column type": (lambda d: d["nodes"][0]["output"]["columns"][1].__setitem__(1, 5),
                    "nodes[0].output.columns[1][1]", 'expected one of "int64"'),
    "edge to unknown node": (lambda d: d["edges"][0].__setitem__(0, "source.nope"), "edges[0]",
                             "expected the edge"),
    "edge missing": (lambda d: d["edges"].pop(), "edges", "edges, not"),
    "duplicate id": (lambda d: d["nodes"].append(copy.deepcopy(d["nodes"][0])), "nodes[8].id",
                     "duplicate node id 'source.calls' (also nodes[0])"),
    "input unknown node": (lambda d: d["nodes"][3]["inputs"][0].update(node="source.nope"),
                           "nodes[3].inputs[0].node", "unknown node 'source.nope'"),
    "input type": (lambda d: d["nodes"][3]["inputs"][0].update(type=d["nodes"][0]["output"]),
                   "nodes[3].inputs[0].type", "not the output type"),
    "self loop": (lambda d: d["nodes"][1]["inputs"][0].update(node="feature.call_stats"),
                  "nodes[1].inputs[0].node", "cycle: feature.call_stats <- feature.call_stats"),
    "cycle": (_cycle, "nodes[1].inputs[0].node",
              "cycle: feature.call_stats <- feature.customer_features <- feature.call_stats"),
    "schema_version string": (lambda d: d.update(schema_version="1"), "schema_version", "not supported"),
    "schema_version bool": (lambda d: d.update(schema_version=True), "schema_version", "not supported"),
    "expression too deep": (lambda d: d["nodes"][6]["checks"][0].update(expr=_deep_expression(300)),
                            "nodes[6].checks[0].expr.operand", "deeper than 200"),
    "lone surrogate": (lambda d: d.update(description="\ud800"), "description", "lone surrogate"),
    "targets not an object": (lambda d: d.update(targets=[]), "targets", "expected an object"),
    **{f"fixed value: {name}": case for name, case in {  # a value outside its field's fixed set
        "source format": (lambda d: d["nodes"][0].update(format="xml"), "nodes[0].format",
                          'expected one of "parquet", "csv", "jsonl", "arrow", "sql", got a string "xml"'),
        "join how": (lambda d: d["nodes"][3]["ops"][0].update(how="cross"), "nodes[3].ops[0].how",
                     'expected one of "inner", "left", "right", "outer"'),
        "strategy": (lambda d: d["nodes"][7].update(strategy="yolo"), "nodes[7].strategy",
                     'expected one of "direct", "canary"'),
        "evaluation method": (lambda d: d["nodes"][4]["evaluation"].update(method="loo"),
                              "nodes[4].evaluation.method", 'expected one of "split", "cv"'),
        "train task": (lambda d: d["nodes"][4].update(task="clustering"), "nodes[4].task",
                       'expected one of "classification", "regression"'),
        "model type task": (lambda d: d["nodes"][4]["output"].update(task="ranking"),
                            "nodes[4].output.task", 'expected one of "classification"'),
        "gate subject": (lambda d: d["nodes"][6].update(subject="data"), "nodes[6].subject",
                         'expected one of "model", "table"'),
        "metric": (lambda d: d["nodes"][5].update(metrics=["roc_auc", "__import__"]),
                   "nodes[5].metrics[1]", 'expected a metric name, got a string "__import__"'),
        "metrics type": (lambda d: d["nodes"][5]["output"].update(metrics=["bogus"]),
                         "nodes[5].output.metrics[0]", "expected a metric name"),
        "column type list": (lambda d: d["nodes"][0]["output"]["columns"][0].__setitem__(1, ["x"]),
                             "nodes[0].output.columns[0][1]", 'expected one of "int64"'),
        "column type name": (lambda d: d["nodes"][0]["output"]["columns"][0].__setitem__(1, "int128"),
                             "nodes[0].output.columns[0][1]", 'expected one of "int64"'),
        "model target type": (lambda d: d["nodes"][4]["output"].update(target=["churned", "decimal"]),
                              "nodes[4].output.target[1]", 'expected one of "int64"'),
        "model feature type": (lambda d: d["nodes"][4]["output"]["features"][0].__setitem__(1, "x"),
                               "nodes[4].output.features[0][1]", 'expected one of "int64"'),
        "expression type": (lambda d: d["nodes"][6]["checks"][0]["expr"].update(type="boolean"),
                            "nodes[6].checks[0].expr.type", 'expected one of "int64"'),
        "binary operator": (lambda d: d["nodes"][6]["checks"][0]["expr"].update(op="**"),
                            "nodes[6].checks[0].expr.op", 'expected one of "+", "-"'),
        "unary operator": (lambda d: d["nodes"][6]["checks"][0].update(expr={
            "node": "Unary", "op": "~", "type": "bool", "operand": d["nodes"][6]["checks"][0]["expr"]}),
            "nodes[6].checks[0].expr.op", 'expected one of "-", "+", "not"'),
        "qualifier": (lambda d: d["nodes"][6]["checks"][1]["expr"]["right"]["left"].update(
            qualifier="staging"), "nodes[6].checks[1].expr.right.left.qualifier",
            'expected one of "production"'),
        "function name": (lambda d: d["nodes"][1]["ops"][0]["aggregates"][1][1].update(func="eval"),
                          "nodes[1].ops[0].aggregates[1][1].func",
                          'expected a function name, got a string "eval"'),
        "aggregate in a filter": (lambda d: d["nodes"][3]["ops"][1]["predicate"].update(
            left={"node": "Call", "func": "sum", "type": "int64",
                  "args": [{"node": "Column", "name": "tenure_days", "type": "int64"}]}),
            "nodes[3].ops[1].predicate.left.func", "sum() is not allowed in a Filter"),
        "scalar function as an aggregate": (
            lambda d: d["nodes"][1]["ops"][0]["aggregates"][1][1].update(func="row_count", args=[]),
            "nodes[1].ops[0].aggregates[1][1].func", "row_count() is not allowed in an aggregate"),
        "data check in a model gate": (lambda d: d["nodes"][6]["checks"][0]["expr"].update(
            left={"node": "Call", "func": "row_count", "type": "int64", "args": []}),
            "nodes[6].checks[0].expr.left.func", "row_count() is not allowed in a model gate"),
        "aggregate in rollback_if": (lambda d: d["nodes"][7]["rollback_if"]["expr"]["left"].update(
            left={"node": "Call", "func": "mean", "type": "float64",
                  "args": [{"node": "Column", "name": "error_rate", "type": "float64"}]}),
            "nodes[7].rollback_if.expr.left.left.func", "mean() is not allowed in rollback_if"),
        "literal out of int64": (lambda d: d["nodes"][3]["ops"][1]["predicate"]["right"].update(
            value=2**63), "nodes[3].ops[1].predicate.right.value", "64-bit integer"),
    }.items()},
}


@pytest.mark.parametrize("case", CASES)
def test_a_hostile_ir_names_the_json_path(churn, case):
    change, path, words = CASES[case]
    with pytest.raises(IRError) as caught:
        Graph.from_json(mutated(churn, change))
    assert caught.value.path.startswith(path) and words in caught.value.message
    assert str(caught.value).startswith(f"{caught.value.path}: ")


@pytest.mark.parametrize("text, words", [
    ("[]", "expected an IR object, got an array"),
    ("null", "expected an IR object, got null"),
    ('"x"', "expected an IR object"),
    ("{}", "schema_version"),
    ("", "not JSON"),
    ("{\"schema_version\": NaN}", "NaN is not a JSON number"),
    (b"\xff\xfe{}", "not UTF-8"),
    ("[" * 100_000, "nested too deeply"),
], ids=["list", "null", "string", "empty-object", "empty", "nan", "not-utf8", "deep"])
def test_a_file_that_is_not_an_ir_object_is_an_ir_error(text, words):
    with pytest.raises(IRError, match=words):
        Graph.from_json(text)


def test_a_number_json_reads_as_infinity_is_refused(churn):
    text = mutated(churn, lambda d: d["nodes"][6]["checks"][0]["expr"]["right"].update(value=0.125))
    with pytest.raises(IRError) as caught:  # json.loads reads 1e999 as inf (to_json never writes it)
        Graph.from_json(text.replace('"value": 0.125', '"value": 1e999'))
    assert caught.value.path == "nodes[6].checks[0].expr.right.value"
    assert "expected a finite number" in caught.value.message


def test_a_fingerprint_still_guards_a_node_edited_by_hand(churn):
    data = copy.deepcopy(churn)
    data["nodes"][0]["path"] = "data/evil.parquet"
    with pytest.raises(IRError) as caught:
        Graph.from_json(json.dumps(data))
    assert caught.value.path == "nodes[0].fingerprint"


def test_ir_error_is_a_value_error_that_survives_pickling():
    error = IRError("expected a string, got null", "nodes[3].inputs[0].node")
    assert isinstance(error, ValueError)
    back = pickle.loads(pickle.dumps(error))
    assert (back.message, back.path, str(back)) == (error.message, error.path, str(error))


# --- from_json: random mutations of real IRs ---------------------------------------------------

_WRONG = st.sampled_from([None, 0, -1, 1.5, True, False, "", "x", "../x", "../../escape", "/tmp/x",
                          "a/b", "..", 10**30, -2**63 - 1, 2**64, [], {}, [1], {"kind": "Input"},
                          {"node": "Column"}])


_SAME_TYPE = {
    str: st.sampled_from(["", "x", "../x", "/tmp/x", "int64", "bool", "inner", "cv", "model", "table",
                          "canary", "shadow", "{}", "{\"n_estimators\": -1}", "sklearn.svm.SVC",
                          "os.system", "accuracy"]) | st.text(max_size=8),
    int: st.sampled_from([0, 1, -1, 2, 10**18, -2**63]),
    float: st.sampled_from([0.0, -1.0, 0.5, 1.0, 100.0, 1e308, -1e-308]),
    bool: st.booleans(),
}


def _slots(value, out: list) -> list:
    """Every (container, key) in a JSON document."""
    if isinstance(value, dict):
        for key in list(value):
            out.append((value, key))
            _slots(value[key], out)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out.append((value, i))
            _slots(item, out)
    return out


def _mutate(data: dict, draw, within: dict | None = None) -> None:
    """One random change to `data` (to a value inside `within`, when given)."""
    op = draw(st.sampled_from(["delete", "replace", "text", "wrap", "kind", "dup", "drop", "swap",
                               "same-type", "same-type", "same-type"]))
    nodes = data.get("nodes") if isinstance(data.get("nodes"), list) else []
    if op in ("dup", "drop", "swap") and nodes:
        i, j = draw(st.integers(0, len(nodes) - 1)), draw(st.integers(0, len(nodes) - 1))
        if op == "dup":
            nodes.insert(j, copy.deepcopy(nodes[i]))
        elif op == "drop":
            del nodes[i]
        else:
            nodes[i], nodes[j] = nodes[j], nodes[i]
        return
    slots = _slots(data if within is None else within, [])
    if not slots:
        return
    container, key = slots[draw(st.integers(0, len(slots) - 1))]  # drawn by index: short reprs
    if op == "delete":
        del container[key]
    elif op == "replace":
        container[key] = draw(_WRONG)
    elif op == "text":
        container[key] = draw(st.text(max_size=12))
    elif op == "wrap":
        container[key] = [container[key]]
    elif op == "same-type":  # well-typed, so the decoder cannot reject it: the runtime must cope
        container[key] = draw(_SAME_TYPE.get(type(container[key]), _WRONG))
    else:
        tagged = [v for v, _ in slots if isinstance(v, dict) and ("kind" in v or "node" in v)]
        if not tagged:
            return
        target = tagged[draw(st.integers(0, len(tagged) - 1))]
        tag = "kind" if "kind" in target else "node"
        target[tag] = draw(st.sampled_from([*ir._CLASSES, "Bogus", "Call", "Column", "Literal"]))


@settings(max_examples=300, deadline=None, suppress_health_check=[FIXTURE])
@given(data=st.data())
def test_a_mutated_ir_gives_a_graph_or_an_ir_error(irs, data):
    doc = copy.deepcopy(irs[data.draw(st.integers(0, len(irs) - 1))])
    for _ in range(data.draw(st.integers(1, 3))):
        _mutate(doc, data.draw)
    if data.draw(st.integers(0, 9)):  # mostly: the fingerprints must not be what rejects it
        refingerprint(doc)
    try:
        graph = Graph.from_json(json.dumps(doc))
    except IRError as exc:
        assert exc.message
        return
    # accepted: exactly an IR this pipespec writes, fingerprints and all
    assert [n.fingerprint() for n in graph.nodes] == [n["fingerprint"] for n in doc["nodes"]]
    assert json.loads(graph.to_json()) == doc
    assert Graph.from_json(graph.to_json()) == graph


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20)


@settings(max_examples=100, deadline=None)
@given(st.one_of(_JSON.map(json.dumps), st.binary(max_size=64)))
def test_arbitrary_json_or_bytes_is_an_ir_error(text):
    with pytest.raises(IRError):
        Graph.from_json(text)


# --- pipespec step --------------------------------------------------------------------------

STEP_SPEC = """\
pipespec: 1
pipeline: hostile
sources:
  rows: {format: csv, path: rows.csv, schema: {x: float64, y: bool}}
models:
  m:
    from: rows
    target: y
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [accuracy]
gates:
  ok: {model: m, require: "accuracy >= 0.0"}
rollout:
  model: m
  requires: [ok]
  strategy: canary
  steps: [{traffic: 50}, {traffic: 100}]
  rollback_if: error_rate > 0.5
"""
STEP_NODES = ["source.rows", "train.m", "evaluate.m", "gate.ok", "rollout.m"]


def compile_step_ir(work: Path) -> dict:
    work.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{i / 10},{'true' if i % 3 else 'false'}" for i in range(40))
    (work / "rows.csv").write_text("x,y\n" + rows + "\n")
    (work / "p.yaml").write_text(STEP_SPEC)
    result = compile_spec(str(work / "p.yaml"))
    assert result.ir is not None, result.errors
    return json.loads(result.ir.to_json())


def files(top: Path, store: Path) -> set[str]:
    """Every file and directory under `top`, outside `store`."""
    out = set()
    for folder, dirs, names in os.walk(top):
        dirs[:] = [d for d in dirs if Path(folder, d) != store]
        out.update(os.path.relpath(os.path.join(folder, n), top) for n in dirs + names)
    return out


def pipespec_step(ir_file: Path, node: str, store: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipespec", "step", str(ir_file), "--node", node,
                           "--store", str(store)], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("change, node, path", [
    (lambda d: d.update(pipeline="../../escape"), "source.rows", "pipeline"),
    (lambda d: _rename(d, "source.rows", "../../../tmp/x"), "../../../tmp/x", "nodes[0].id"),
], ids=["pipeline", "node-id"])
def test_step_refuses_a_tampered_name_and_writes_nothing_outside_the_store(tmp_path, change, node, path):
    work = tmp_path / "w"
    ir_file, store = work / "tampered.ir.json", work / "store"
    ir_file.write_text(mutated(compile_step_ir(work), change))
    before = files(tmp_path, store)
    done = pipespec_step(ir_file, node, store)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"error: {ir_file} {NOT_AN_IR}{path}: " in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert files(tmp_path, store) == before


def test_step_on_files_that_are_not_an_ir_exits_1_with_one_line(tmp_path):
    for name, raw in (("list", b"[]"), ("binary", b"\xff\xfe\x00garbage"), ("deep", b"[" * 100_000)):
        ir_file = tmp_path / f"{name}.ir.json"
        ir_file.write_bytes(raw)
        done = pipespec_step(ir_file, "source.rows", tmp_path / "store")
        assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr
        assert done.stderr.startswith(f"error: {ir_file} {NOT_AN_IR}") and done.stdout == ""


@pytest.fixture(scope="module")
def step_work(tmp_path_factory) -> tuple[Path, dict]:
    """A compiled IR whose every node has run once in `work/store`."""
    work = tmp_path_factory.mktemp("step") / "w"
    data = compile_step_ir(work)
    (work / "ok.ir.json").write_text(json.dumps(data))
    with pytest.MonkeyPatch.context() as env:
        # as conftest's autouse fixture does, which runs after this one: the per-user key
        # (runtime/localkey.py) is read once per process, from the cache home set here
        env.setenv("XDG_CACHE_HOME", str(tmp_path_factory.getbasetemp() / "xdg-cache"))
        for node in STEP_NODES:
            result = CliRunner().invoke(main, ["step", str(work / "ok.ir.json"), "--node", node,
                                               "--store", str(work / "store")])
            assert result.exit_code == 0, result.output
    return work, data


@settings(max_examples=200, deadline=None, suppress_health_check=[FIXTURE])
@given(data=st.data())
def test_step_on_a_mutated_ir_gives_a_diagnostic_and_an_exit_code(step_work, data):
    work, original = step_work
    doc = copy.deepcopy(original)
    node = data.draw(st.sampled_from(STEP_NODES))
    # half the time, change the node that runs
    within = doc["nodes"][index(original, node)] if data.draw(st.booleans()) else None
    for _ in range(data.draw(st.integers(1, 2))):
        _mutate(doc, data.draw, within)
    refingerprint(doc)
    ir_file = work / "mutant.ir.json"
    ir_file.write_text(json.dumps(doc))
    store = work / "store"
    before = files(work.parent, store)
    result = CliRunner().invoke(main, ["step", str(ir_file), "--node", node, "--store", str(store)])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    assert files(work.parent, store) == before
    if result.exit_code == 1 and NOT_AN_IR in result.stderr:
        assert result.stderr.startswith(f"error: {ir_file} {NOT_AN_IR}") and result.stdout == ""
        return
    assert result.exit_code in (0, 1, 3, 4), result.output
    line = json.loads(result.stdout.strip().splitlines()[-1])  # the one JSON line orchestrators read
    assert line["id"] == node and line["status"] in ("done", "cached", "failed", "blocked")
