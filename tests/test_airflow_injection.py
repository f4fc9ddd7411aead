"""Spec strings are hostile.  A payload corpus (quotes, triple quotes, backslashes,
newlines, Jinja `{{ }}`/`{% %}`, `__import__`, unicode line separators, a `.md` suffix
Airflow would read as a file, a very long string) placed in every string field a spec
allows: each generated DAG parses, its AST equals the benign one with constants masked,
it loads in a real DagBag, and `dag.test()` runs it without executing any payload."""

from __future__ import annotations

import ast
import json
import shutil
import sys
from pathlib import Path

import pytest

import airflow_env
from pipespec.compiler.lower import compile_file
from pipespec.targets import airflow as target

pytestmark = pytest.mark.airflow
pytest.importorskip("airflow")


def payloads(sentinel: Path) -> list[str]:
    touch = f"__import__('os').system('touch {sentinel}')"
    return ["'", '"', "'''", '"""', "\\", "\\'", "a\nb", "a\rb", "{{ 7 * 7 }}",
            "{{ var.value.get('x') }}", "{% for i in range(3) %}X{% endfor %}", touch,
            f"'); {touch} #", f'"""); {touch}; ("""', "\u2028", "\u2029", "\x85", "\x0c", "\t",
            f"$(touch {sentinel})", f"`touch {sentinel}`", "; touch " + str(sentinel), "/etc/hostname.md"]


def hostile(sentinel: Path) -> str:
    return "".join(payloads(sentinel)) + "/etc/hostname.md"  # ends as a path Airflow would read


SPEC = """\
pipespec: 1
pipeline: inject
description: {text}
params:
  label: {text}
sources:
  rows:
    format: csv
    path: {path}
    description: {text}
    schema: {{x: float64, y: bool, s: string}}
features:
  f:
    from: rows
    description: {text}
    where: s != ${{params.label}}
    columns: {{z: x * 2}}
models:
  m:
    from: f
    description: {text}
    target: y
    features: [x, z]
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [accuracy]
gates:
  g:
    model: m
    description: {text}
    require: accuracy >= 0
rollout:
  model: m
  description: {text}
  requires: [g]
  strategy: canary
  steps: [{{traffic: 50, hold: 1s}}, {{traffic: 100}}]
targets:
  airflow:
    owner: {text}
    tags: [{tag}, {text_short}]
{pool}
"""


def write_spec(folder: Path, text: str, data_name: str, pool: bool) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rows = "\n".join(f"{i / 10},{'true' if i % 3 else 'false'},s{i}" for i in range(40))
    (folder / data_name).write_text("x,y,s\n" + rows + "\n")
    q = json.dumps  # a JSON string is a YAML double-quoted scalar
    spec = SPEC.format(text=q(text), path=q(data_name), tag=q(text[:100]), text_short=q("2" + text[-90:]),
                       pool=f"    pool: {q(text)}" if pool else "")
    (folder / "p.yaml").write_text(spec, encoding="utf-8")
    return folder / "p.yaml"


def masked(source: bytes) -> str:
    tree = ast.parse(source)
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str):
            node.value = "…"
    return ast.dump(tree)


def compile_dag(spec: Path, **options) -> dict[str, bytes]:
    result = compile_file(str(spec), [])
    assert result.ir is not None, [d.message for d in result.diagnostics]
    return target.compile(result.ir, options).files


def data_name(sentinel: Path) -> str:
    """A real file name holding most of the payloads (any byte but / and NUL)."""
    return "".join(p for p in payloads(sentinel) if "/" not in p and "\r" not in p)[:200] + ".csv"


@pytest.mark.parametrize("flavour", target.FLAVOURS)
def test_payloads_change_only_constants_of_the_generated_dag(tmp_path, flavour):
    sentinel = tmp_path / "SENTINEL"
    options = {"operator": flavour, "image": "img:1"}
    benign = compile_dag(write_spec(tmp_path / "benign", "plain text", "rows.csv", pool=True), **options)
    evil = compile_dag(write_spec(tmp_path / "evil", hostile(sentinel) + "x" * 20_000, data_name(sentinel),
                                  pool=True), **options)
    (benign_py,) = [v for k, v in benign.items() if k.endswith(".py")]
    (evil_py,) = [v for k, v in evil.items() if k.endswith(".py")]
    assert masked(evil_py) == masked(benign_py)
    airflow_env.write(evil, tmp_path / "dags")
    bag = airflow_env.dagbag(tmp_path / "dags")
    assert bag.import_errors == {}
    (dag,) = bag.dags.values()
    assert dag.owner == hostile(sentinel) + "x" * 20_000
    assert "/etc/hostname.md" in dag.doc_md and not dag.doc_md.endswith(".md")  # never read as a file
    assert not sentinel.exists()


@pytest.mark.parametrize("flavour", ["python", "bash"])
@pytest.mark.slow
def test_a_dag_full_of_payloads_runs_without_executing_any(tmp_path, monkeypatch, flavour):
    airflow_env.migrate()
    sentinel = tmp_path / "SENTINEL"
    spec = write_spec(tmp_path / "spec", hostile(sentinel), data_name(sentinel), pool=False)
    folder = airflow_env.DAGS / f"inject-{flavour}"
    shutil.rmtree(folder, ignore_errors=True)
    airflow_env.write(compile_dag(spec, operator=flavour), folder)
    monkeypatch.setenv("PIPESPEC_STORE", str(tmp_path / "store"))
    monkeypatch.setenv("PIPESPEC_ROOT", str(spec.parent))
    monkeypatch.setenv("PIPESPEC_BIN", str(Path(sys.executable).parent / "pipespec"))
    bag = airflow_env.dagbag(folder)
    assert bag.import_errors == {}
    (dag,) = bag.dags.values()
    run = dag.test()
    states = {ti.task_id: str(ti.state) for ti in run.get_task_instances()}
    assert set(states.values()) == {"success"}, states
    assert not sentinel.exists()
    text = hostile(sentinel)
    for task in dag.tasks:  # no field Airflow renders with Jinja holds any spec text
        for name in task.template_fields:
            assert text[:40] not in repr(getattr(task, name)), (task.task_id, name)
    described = [t for t in dag.tasks if t.task_id in ("source_rows", "feature_f", "train_m", "gate_g", "rollout_m")]
    assert len(described) == 5 and all(text in t.doc_md for t in described)  # the spec text, kept as data
