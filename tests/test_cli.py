"""The `pipespec` command line, through click's CliRunner (and one real subprocess)."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from pipespec.compiler.ir import Graph
from pipespec.compiler.lower import compile_file

from pipespec import __version__
from pipespec.cli import main

ROOT = Path(__file__).resolve().parent.parent
CHURN = ROOT / "specs" / "valid" / "churn_full.yaml"


@pytest.fixture
def runner():
    try:
        return CliRunner(mix_stderr=False)  # click < 8.2
    except TypeError:
        return CliRunner()  # click >= 8.2 keeps stderr apart


def run(runner, *args):
    return runner.invoke(main, [str(a) for a in args], catch_exceptions=False)


def broken_spec(tmp_path: Path) -> Path:
    text = CHURN.read_text().replace("tenure_days >= params.min_tenure", "tenure_dayz >= params.min_tenure")
    p = tmp_path / "broken.yaml"
    p.write_text(text)
    return p


def no_traceback(result):
    assert "Traceback" not in result.output and "Traceback" not in (result.stderr or "")


# --- check ---------------------------------------------------------------------------------


def test_check_ok(runner):
    r = run(runner, "check", CHURN)
    assert r.exit_code == 0, r.output + r.stderr
    first = r.stdout.splitlines()[0]
    assert first == "ok: pipeline churn: 8 nodes (2 source, 2 transform, 1 train, 1 evaluate, 1 gate, 1 rollout)"
    assert re.search(r"^\s+customer_features\s+transform\s+9 columns$", r.stdout, re.MULTILINE)
    assert r.stderr == ""


def test_check_json_ok(runner):
    r = run(runner, "check", CHURN, "--format", "json")
    assert r.exit_code == 0
    data = json.loads(r.stdout)
    assert data["ok"] is True and data["pipeline"] == "churn"
    assert data["nodes"]["Transform"] == 2
    assert data["tables"]["customer_features"] == 9


def test_check_errors_go_to_stderr(runner, tmp_path):
    r = run(runner, "check", broken_spec(tmp_path))
    assert r.exit_code == 1
    assert r.stdout == ""
    assert "error[E0203]: unknown column 'tenure_dayz'" in r.stderr
    assert re.search(r"broken\.yaml:25:12: error\[E0203\]", r.stderr)
    assert "did you mean 'tenure_days'" in r.stderr
    assert r.stderr.rstrip().endswith("1 error")
    assert "\x1b[" not in r.stderr  # no colour when not a terminal
    no_traceback(r)


def test_check_json_errors(runner, tmp_path):
    r = run(runner, "check", broken_spec(tmp_path), "--format", "json")
    assert r.exit_code == 1
    data = json.loads(r.stdout)
    assert data["errors"] == 1
    (d,) = data["diagnostics"]
    assert (d["code"], d["line"], d["col"], d["severity"]) == ("E0203", 25, 12, "error")
    assert d["file"].endswith("broken.yaml")
    assert d["title"] == "unknown column"


@pytest.mark.parametrize("param, needle", [("seed=x", "expected int"), ("nope=1", "unknown parameter 'nope'"),
                                           ("seed", "name=value"), ("=3", "name=value"),
                                           ("min_tenure=1.5", "expected int")])
def test_bad_param_overrides(runner, param, needle):
    r = run(runner, "check", CHURN, "--param", param)
    assert r.exit_code == 1
    assert "E0702" in r.stderr and needle in r.stderr
    no_traceback(r)


def test_bad_param_json(runner):
    r = run(runner, "check", CHURN, "-p", "seed=x", "--format", "json")
    assert r.exit_code == 1
    assert [d["code"] for d in json.loads(r.stdout)["diagnostics"]] == ["E0702"]


def test_good_param_override(runner):
    assert run(runner, "check", CHURN, "-p", "seed=11", "-p", "min_tenure=5").exit_code == 0


@pytest.mark.parametrize("make", ["directory", "missing"])
def test_directory_or_missing_spec(runner, tmp_path, make):
    target = tmp_path if make == "directory" else tmp_path / "missing.yaml"
    r = run(runner, "check", target)
    assert r.exit_code == 1
    assert "E0001" in r.stderr
    no_traceback(r)


def test_invalid_yaml_spec(runner, tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_bytes(b"pipespec: 1\n\x00\x01binary")
    r = run(runner, "check", p)
    assert r.exit_code == 1 and "E0001" in r.stderr


# --- compile -------------------------------------------------------------------------------


def test_compile_ir_target(runner, tmp_path):
    out = tmp_path / "out"
    r = run(runner, "compile", CHURN, "--target", "ir", "-o", out)
    assert r.exit_code == 0, r.stderr
    written = out / "churn.ir.json"
    assert written.exists()
    assert str(written) in r.stdout
    assert written.read_text() == compile_file(str(CHURN)).ir.to_json()
    assert Graph.from_json(written.read_bytes()) == compile_file(str(CHURN)).ir
    assert [p.name for p in out.iterdir()] == ["churn.ir.json"]  # no temp files left over


def test_compile_with_param_override(runner, tmp_path):
    r = run(runner, "compile", CHURN, "-t", "ir", "-o", tmp_path, "-p", "min_tenure=99")
    assert r.exit_code == 0
    data = json.loads((tmp_path / "churn.ir.json").read_text())
    assert data["params"]["min_tenure"] == 99


def test_compile_unknown_target(runner, tmp_path):
    r = run(runner, "compile", CHURN, "--target", "irr", "-o", tmp_path)
    assert r.exit_code == 2
    assert "unknown target 'irr'" in r.stderr
    assert "Did you mean 'ir'?" in r.stderr
    assert "Available targets:" in r.stderr and "ir" in r.stderr.split("Available targets:")[1]
    assert list(tmp_path.iterdir()) == []


def test_compile_spec_errors_write_nothing(runner, tmp_path):
    out = tmp_path / "out"
    r = run(runner, "compile", broken_spec(tmp_path), "-t", "ir", "-o", out)
    assert r.exit_code == 1
    assert not out.exists()


def test_compile_requires_target_and_out(runner, tmp_path):
    assert run(runner, "compile", CHURN, "-o", tmp_path).exit_code == 2
    assert run(runner, "compile", CHURN, "-t", "ir").exit_code == 2


# --- graph ---------------------------------------------------------------------------------


def test_graph_mermaid(runner):
    r = run(runner, "graph", CHURN)
    assert r.exit_code == 0
    lines = r.stdout.splitlines()
    assert lines[0] == "flowchart LR"
    node_lines = [ln for ln in lines if re.match(r"^\s+n\d+[\[\(\{>]", ln)]
    assert len(node_lines) == 8
    assert sum("-->" in ln for ln in lines) == 10  # incl. the rollout's traffic table
    gate = next(ln for ln in node_lines if "gate: quality" in ln)
    rollout = next(ln for ln in node_lines if "rollout: churn" in ln)
    transform = next(ln for ln in node_lines if "transform: call_stats" in ln)
    shape = lambda ln: re.sub(r'"[^"]*"', '""', ln.strip().split(" ", 1)[0])
    assert len({shape(gate), shape(rollout), shape(transform)}) == 3  # visually distinct shapes
    assert "{{" in gate
    assert any(ln.strip().startswith("classDef gate") for ln in lines)
    assert any(ln.strip().startswith("classDef rollout") for ln in lines)
    gate_id = gate.strip().split("{")[0]
    assert any(re.match(rf"^\s+class .*\b{gate_id}\b.* gate$", ln) for ln in lines)


def test_graph_dot(runner):
    r = run(runner, "graph", CHURN, "--format", "dot")
    assert r.exit_code == 0
    out = r.stdout
    assert out.startswith('digraph "churn" {') and out.rstrip().endswith("}")
    assert re.search(r'label="gate: quality", shape=hexagon', out)
    assert re.search(r'label="rollout: churn", shape=cds', out)
    assert re.search(r'label="source: calls", shape=cylinder', out)
    assert out.count("->") == 10  # incl. the rollout's traffic table
    assert '[label="left"]' in out and '[label="right"]' in out


HOSTILE = 'evil"]; x [label="pwn'


def hostile_spec(tmp_path: Path) -> Path:
    text = CHURN.read_text().replace("  call_stats:", "  call_stats:\n    description: 'x\"];}{'")
    # a feature name may only be an identifier; the description and names still must not escape
    text = text.replace("call_stats", "call_stats_z")
    p = tmp_path / "hostile.yaml"
    p.write_text(text)
    return p


def _balanced_dot(out: str) -> bool:
    # outside quoted strings, braces and brackets balance, and every statement ends cleanly
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', out)
    return (stripped.count("{") == stripped.count("}") == 1 and stripped.count("[") == stripped.count("]")
            and '"' not in stripped.replace('""', ""))


def test_dot_and_mermaid_escape_hostile_labels():
    from pipespec.compiler import ir
    from pipespec.compiler.render import dot, mermaid

    g = compile_file(str(CHURN)).ir
    nodes = tuple(ir.Source(id=n.id, name=HOSTILE + "\n}\\", format="csv", path="x")
                  if n.id == "source.calls" else n for n in g.nodes)
    hostile = Graph(pipeline='p"} digraph {', nodes=nodes)
    d = dot(hostile)
    assert _balanced_dot(d), d
    assert 'label="source: evil\\"]; x [label=\\"pwn\\n}\\\\"' in d
    m = mermaid(hostile)
    node_line = next(ln for ln in m.splitlines() if "source: evil" in ln)
    assert node_line.strip().startswith('n0[("') and node_line.rstrip().endswith('")]')
    inner = node_line.strip()[len('n0[("'):-len('")]')]
    assert not re.search(r'["\[\]{}()<>|\n]', inner.replace("source: evil", "")), inner


def test_graph_of_hostile_spec(runner, tmp_path):
    r = run(runner, "graph", hostile_spec(tmp_path), "--format", "dot")
    assert r.exit_code == 0, r.stderr
    assert _balanced_dot(r.stdout)


# --- schema, explain, version, help ----------------------------------------------------------


def test_schema(runner):
    r = run(runner, "schema")
    assert r.exit_code == 0
    schema = json.loads(r.stdout)
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert schema["type"] == "object"
    props = schema["properties"]
    for key in ("pipespec", "pipeline", "params", "sources", "features", "models", "gates", "rollout", "targets"):
        assert key in props, key
    assert set(schema["required"]) >= {"pipespec", "pipeline"}
    assert schema.get("additionalProperties") is False


def _resolve(schema, node):
    while "$ref" in node:
        node = schema["$defs"][node["$ref"].rsplit("/", 1)[1]]
    return node


def _accepts_param_ref(node) -> bool:
    alts = node.get("anyOf", [])
    return any(a.get("type") == "string" and "params" in a.get("pattern", "") for a in alts)


def test_schema_integer_fields_accept_param_refs(runner):
    schema = json.loads(run(runner, "schema").stdout)
    split = _resolve(schema, {"$ref": "#/$defs/Split"})
    seed = split["properties"]["seed"]
    assert _accepts_param_ref(seed)
    assert {"type": "integer"} in [{k: v for k, v in a.items() if k == "type"} for a in seed["anyOf"]]
    pattern = next(a["pattern"] for a in seed["anyOf"] if a.get("type") == "string")
    assert re.match(pattern, "${params.seed}") and not re.match(pattern, "${params.}") and not re.match(pattern, "7")
    # every integer/number/boolean anywhere accepts ${params.x}
    def walk(node, path=""):
        if isinstance(node, dict):
            if node.get("type") in ("integer", "number", "boolean") and not path.endswith("anyOf"):
                raise AssertionError(f"bare {node['type']} at {path}")
            for k, v in node.items():
                walk(v, f"{path}/{k}")
        elif isinstance(node, list):
            for i, v in enumerate(node):
                walk(v, path if isinstance(v, dict) else f"{path}/{i}")
    walk(schema)


def test_schema_validates_example_with_jsonschema(runner):
    jsonschema = pytest.importorskip("jsonschema")
    from pipespec.compiler.diagnostics import Diagnostics
    from pipespec.compiler.loader import load_text

    schema = json.loads(run(runner, "schema").stdout)
    data = load_text(CHURN.read_text(), "churn.yaml", Diagnostics()).data  # YAML 1.2: `on:` stays "on"
    jsonschema.validate(data, schema)
    data["models"]["churn"]["split"]["seed"] = "not a param"
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(data, schema)


def test_explain(runner):
    r = run(runner, "explain", "E0203")
    assert r.exit_code == 0
    assert r.stdout.startswith("E0203: unknown column")
    assert run(runner, "explain", "e0203").exit_code == 0


def test_explain_unknown_code(runner):
    r = run(runner, "explain", "E9999")
    assert r.exit_code == 2
    assert "unknown diagnostic code" in r.stderr
    r = run(runner, "explain", "E02O3")
    assert r.exit_code == 2 and "did you mean" in r.stderr


def test_version(runner):
    r = run(runner, "--version")
    assert r.exit_code == 0
    assert r.stdout.strip() == f"pipespec {__version__}"


@pytest.mark.parametrize("cmd", [[], ["check"], ["compile"], ["graph"], ["schema"], ["explain"]])
def test_help(runner, cmd):
    r = run(runner, *cmd, "--help")
    assert r.exit_code == 0
    assert "Usage:" in r.stdout


def test_unknown_command_and_option(runner):
    assert run(runner, "frobnicate").exit_code == 2
    assert run(runner, "check", CHURN, "--nope").exit_code == 2


# --- the real console script -------------------------------------------------------------------


def test_console_script_subprocess(tmp_path):
    exe = shutil.which("pipespec")
    cmd = [exe] if exe else [sys.executable, "-m", "pipespec"]
    ok = subprocess.run(cmd + ["check", str(CHURN)], capture_output=True, text=True, timeout=120, check=False)
    assert ok.returncode == 0, ok.stderr
    assert ok.stdout.startswith("ok: pipeline churn: 8 nodes")
    bad = subprocess.run(cmd + ["check", str(broken_spec(tmp_path))], capture_output=True, text=True, timeout=120,
                         check=False)
    assert bad.returncode == 1
    assert "error[E0203]" in bad.stderr and "Traceback" not in bad.stderr
