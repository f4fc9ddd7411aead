"""What `pipespec step` offers orchestrator targets: one attempt (--no-retries), the result
and a gate's verdict written to files, an IR read from an fsspec URL, one rollout step at a
time (--rollout-step) whose reports the decision reuses, and `run`'s exit code 4 for a
rolled-back rollout."""

from __future__ import annotations

import json
from pathlib import Path

import fsspec
import pytest
from click.testing import CliRunner

from pipespec.cli import main

SPEC = """\
pipespec: 1
pipeline: step-demo
params:
  min_acc: 0.0
sources:
  rows: {format: csv, path: rows.csv, schema: {x: float64, y: bool}}
models:
  m:
    from: rows
    target: y
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [accuracy]
    retries: 2
gates:
  ok: {model: m, require: "accuracy >= ${params.min_acc}"}
rollout:
  model: m
  requires: [ok]
  strategy: canary
  steps: [{traffic: 50, hold: 1h}, {traffic: 100}]
  rollback_if: %s
"""
NODES = ["source.rows", "train.m", "evaluate.m", "gate.ok"]


def compile_ir(tmp_path: Path, rollback_if: str = "error_rate > 0.5", *params: str) -> Path:
    rows = "\n".join(f"{i / 10},{'true' if i % 3 else 'false'}" for i in range(60))
    (tmp_path / "rows.csv").write_text("x,y\n" + rows + "\n")
    (tmp_path / "p.yaml").write_text(SPEC % rollback_if)
    args = ["compile", str(tmp_path / "p.yaml"), "-t", "ir", "-o", str(tmp_path)]
    for p in params:
        args += ["-p", p]
    assert CliRunner().invoke(main, args).exit_code == 0
    return tmp_path / "step-demo.ir.json"


def step(ir: Path | str, node: str, store: Path, *extra: str):
    result = CliRunner().invoke(main, ["step", str(ir), "--node", node, "--store", str(store), *extra])
    return result.exit_code, json.loads(result.stdout.strip().splitlines()[-1])


def upstream(ir: Path, store: Path) -> None:
    for node in NODES:
        assert step(ir, node, store)[0] == 0


def test_a_rolled_back_rollout_exits_4_like_run(tmp_path):
    ir = compile_ir(tmp_path, "latency_p99_ms >= 0")
    upstream(ir, tmp_path / "s")
    code, data = step(ir, "rollout.m", tmp_path / "s")
    assert data["summary"]["outcome"] == "rolled_back" and code == 4


def test_rollout_steps_run_alone_and_the_decision_reuses_their_reports(tmp_path):
    ir = compile_ir(tmp_path)
    store = tmp_path / "s"
    upstream(ir, store)
    reports = []
    for k in (1, 2):
        code, data = step(ir, "rollout.m", store, "--rollout-step", str(k))
        assert code == 0 and data["rollout_step"] == k and data["report"]["rollback"] is False
        reports.append(data["report"])
    assert reports[0]["hold"] == "hold 1h left to the orchestrator (its next task)"
    code, data = step(ir, "rollout.m", store)
    assert code == 0 and data["summary"]["outcome"] == "promoted"
    assert data["summary"]["steps"] == reports  # the measured latencies too: not replayed again
    code, data = step(ir, "rollout.m", store, "--rollout-step", "1")
    assert code == 5 and data["decided"] is True  # already decided: later steps need not run
    # the same decision artifact as a run that replays every step itself
    other = tmp_path / "t"
    upstream(ir, other)
    assert step(ir, "rollout.m", other)[1]["digest"] == data["digest"]


def test_a_step_that_rolls_back_exits_4(tmp_path):
    ir = compile_ir(tmp_path, "latency_p99_ms >= 0")
    upstream(ir, tmp_path / "s")
    code, data = step(ir, "rollout.m", tmp_path / "s", "--rollout-step", "1")
    assert code == 4 and data["report"]["rollback"] is True


def test_an_unknown_rollout_step_is_E0808(tmp_path):
    ir = compile_ir(tmp_path)
    upstream(ir, tmp_path / "s")
    code, data = step(ir, "rollout.m", tmp_path / "s", "--rollout-step", "3")
    assert code == 1 and data["code"] == "E0808" and "has 2" in data["error"]
    code, data = step(ir, "rollout.m", tmp_path / "empty", "--rollout-step", "9")  # before any upstream
    assert code == 1 and data["code"] == "E0808"
    code, data = step(ir, "train.m", tmp_path / "s", "--rollout-step", "1")
    assert code == 1 and data["code"] == "E0808" and "has 0" in data["error"]


def test_result_and_passed_files(tmp_path):
    ir = compile_ir(tmp_path, "error_rate > 0.5", "min_acc=1.5")
    store = tmp_path / "s"
    for node in NODES[:3]:
        step(ir, node, store)
    out = tmp_path / "out"
    code, data = step(ir, "gate.ok", store, "--passed-file", str(out / "passed"),
                      "--result-file", str(out / "result.json"))
    assert code == 0 and (out / "passed").read_text() == "false"
    assert json.loads((out / "result.json").read_text()) == data
    code, data = step(ir, "rollout.m", store)
    assert code == 3 and data["status"] == "blocked"
    result = CliRunner().invoke(main, ["step", str(ir), "--node", "train.m", "--store", str(store),
                                       "--passed-file", str(out / "x")])
    assert result.exit_code == 2 and "not a gate" in result.output


@pytest.mark.parametrize("retries, attempts", [(True, 3), (False, 1)])
def test_no_retries_makes_one_attempt(tmp_path, monkeypatch, retries, attempts):
    from pipespec.compiler.ir import Graph
    from pipespec.runtime.ops import train
    from pipespec.runtime.stepcli import run_step

    ir = compile_ir(tmp_path)
    graph = Graph.from_json(ir.read_bytes())
    store = str(tmp_path / "s")
    assert run_step(graph, "source.rows", store, str(tmp_path))[0] == 0
    calls = []

    def broken(ctx):
        calls.append(1)
        raise RuntimeError("boom")

    monkeypatch.setattr(train, "run", broken)
    code, data = run_step(graph, "train.m", store, str(tmp_path), retries=retries)
    assert code == 1 and "boom" in data["reason"]
    assert len(calls) == attempts  # the model's `retries: 2`, or one attempt


def test_the_ir_can_be_read_from_an_fsspec_url(tmp_path):
    ir = compile_ir(tmp_path)
    url = "memory://irs/step-demo.ir.json"
    with fsspec.open(url, "wb") as fh:
        fh.write(ir.read_bytes())
    code, data = step(url, "source.rows", tmp_path / "s", "--root", str(tmp_path))
    assert code == 0 and data["status"] == "done"
    result = CliRunner().invoke(main, ["step", "memory://irs/missing.json", "--node", "x", "--store", "s"])
    assert result.exit_code == 1 and "cannot read" in result.output


def test_gc_keeps_what_steps_produced_and_drops_dead_rollout_step_reports(tmp_path):
    """An orchestrated pipeline writes no run record: gc keeps the newest result of every
    node run by `pipespec step`, and removes step reports of rollouts no longer current."""
    from pipespec.runtime.maintenance import gc
    from pipespec.runtime.verify import verify
    from pipespec.runtime.store import Store

    ir = compile_ir(tmp_path)
    store = tmp_path / "s"
    upstream(ir, store)
    for k in (1, 2):
        step(ir, "rollout.m", store, "--rollout-step", str(k))
    assert step(ir, "rollout.m", store)[0] == 0
    reports = sorted((store / "rollout-steps").rglob("*.json"))
    assert len(reports) == 2
    dead = store / "rollout-steps" / ("0" * 64)  # a rollout whose inputs have since changed
    dead.mkdir()
    (dead / "1.json").write_text("{}")
    out = gc(Store(str(store)), grace_seconds=0)
    assert out.objects == [] and [e for e in out.entries if not e.startswith("rollout-steps/" + "0" * 64)] == []
    assert out.entries == ["rollout-steps/" + "0" * 64 + "/1.json"]
    assert sorted((store / "rollout-steps").rglob("*.json")) == reports
    assert verify(Store(str(store))) == []
    for node in NODES + ["rollout.m"]:  # everything is still cached
        assert step(ir, node, store)[1]["status"] == "cached"


def age(folder: Path, seconds: float = 7200) -> None:
    """Make every file under `folder` look `seconds` old (past gc's grace period)."""
    import os
    import time
    then = time.time() - seconds
    for p in folder.rglob("*"):
        if p.is_file():
            os.utime(p, (then, then))


def test_gc_keeps_two_orchestrated_pipelines_of_one_spec_and_a_rollout_mid_hold(tmp_path):
    """DAG A (default params) is between its rollout steps (a long hold) while DAG B (other
    params) runs to the end on the same store; gc past the grace keeps what A still needs."""
    from pipespec.runtime.maintenance import gc
    from pipespec.runtime.store import Store

    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = compile_ir(tmp_path / "a")
    b = compile_ir(tmp_path / "b", "error_rate > 0.5", "min_acc=0.1")
    store = tmp_path / "s"
    upstream(a, store)
    assert step(a, "rollout.m", store, "--rollout-step", "1")[0] == 0
    upstream(b, store)
    assert step(b, "rollout.m", store)[0] == 0
    age(store)
    gc(Store(str(store)), grace_seconds=3600)
    code, data = step(a, "rollout.m", store, "--rollout-step", "2")
    assert code == 0, data
    code, data = step(a, "rollout.m", store)
    assert code == 0 and data["summary"]["steps"][0]["hold"].startswith("hold 1h left to the orchestrator")


def test_gc_drops_step_records_beyond_the_newest_keep_per_node(tmp_path):
    from pipespec.runtime.maintenance import gc
    from pipespec.runtime.store import Store

    store = tmp_path / "s"
    for i in range(4):  # four param values: four keys for every node
        folder = tmp_path / f"v{i}"
        folder.mkdir()
        ir = compile_ir(folder, "error_rate > 0.5", f"min_acc={i / 10}")
        upstream(ir, store)
        age(store, 7200 - i * 60)  # older runs look older
    gate_records = sorted((store / "steps" / "step-demo" / "gate.ok").iterdir())
    assert len(gate_records) == 4
    out = gc(Store(str(store)), keep_runs=3, grace_seconds=3600)
    assert len(list((store / "steps" / "step-demo" / "gate.ok").iterdir())) == 3
    assert any(e.startswith("steps/step-demo/gate.ok/") for e in out.entries)


def test_a_step_refuses_an_ir_other_than_the_one_compiled_against(tmp_path):
    import hashlib
    ir = compile_ir(tmp_path)
    right = hashlib.sha256(ir.read_bytes()).hexdigest()
    code, data = step(ir, "source.rows", tmp_path / "s", "--ir-sha256", right)
    assert code == 0 and data["status"] == "done"
    result = CliRunner().invoke(main, ["step", str(ir), "--node", "source.rows", "--store", str(tmp_path / "s"),
                                       "--ir-sha256", "0" * 64])
    assert result.exit_code == 1 and "is not the IR this task was compiled with" in result.output
