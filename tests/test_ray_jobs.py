"""The `ray` compile target: golden packages per example, a deterministic driver that
takes spec strings only as checked literals, and the runtime_env as YAML data.

Refresh the golden files with PIPESPEC_UPDATE_GOLDEN=1 and review the diff."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from pipespec.compiler.lower import compile_file
from pipespec.targets.base import UnsupportedError
from pipespec.targets.ray import jobs
from pipespec.targets.registry import TARGETS

from pipespec.cli import main

ROOT = Path(__file__).resolve().parent.parent
GOLDEN = Path(__file__).resolve().parent / "golden" / "ray"
EXAMPLES = ("churn", "demand")


def package(example: str, **options) -> dict[str, bytes]:
    result = compile_file(str(ROOT / "examples" / example / "pipeline.yaml"), [])
    return jobs.compile(result.ir, options).files


@pytest.mark.parametrize("example", EXAMPLES)
def test_each_example_compiles_to_its_golden_package(example):
    """The driver and runtime_env; the IR file is the `ir` target's (checked below), whose
    own golden files belong to the compiler."""
    files = {rel: data for rel, data in package(example).items() if not rel.endswith(".ir.json")}
    folder = GOLDEN / example
    if os.environ.get("PIPESPEC_UPDATE_GOLDEN"):
        for rel, data in files.items():
            (folder / rel).parent.mkdir(parents=True, exist_ok=True)
            (folder / rel).write_bytes(data)
    expected = {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}
    assert files == expected


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_package_holds_the_canonical_ir_a_parsable_driver_and_yaml_data(example):
    files = package(example)
    result = compile_file(str(ROOT / "examples" / example / "pipeline.yaml"), [])
    ir_file = f"{result.ir.pipeline}.ir.json"
    assert sorted(files) == sorted([ir_file, "run_pipeline.py", "runtime_env.yaml"])
    assert files[ir_file] == TARGETS["ir"].compile(result.ir, {}).files[ir_file]
    tree = ast.parse(files["run_pipeline.py"])
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    assert ast.literal_eval(assigned["IR_FILE"]) == ir_file
    assert yaml.safe_load(files["runtime_env.yaml"]) == {"pip": ["pipespec"]}
    assert package(example) == files  # deterministic


def test_the_driver_holds_no_path_version_or_time():
    script = package("churn")["run_pipeline.py"].decode()
    assert str(ROOT) not in script and "0.1.0" not in script and "2026" not in script
    assert "ray.init" not in script  # connecting is the executor's job (address=auto in a job)


def test_the_driver_runs_its_help_without_a_cluster(tmp_path):
    for rel, data in package("churn").items():
        (tmp_path / rel).write_bytes(data)
    done = subprocess.run([sys.executable, "run_pipeline.py", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and "--store" in done.stdout and "telecom-churn.ir.json" in done.stdout


@pytest.mark.parametrize("hostile", ['x"""\nimport os', "a'\\", "\u2028", "é\x00"])
def test_spec_strings_enter_the_driver_only_as_checked_literals(hostile):
    try:
        script = jobs.driver_script(hostile)
    except ValueError:
        return  # refused: cannot be one line
    tree = ast.parse(script)
    values = [ast.literal_eval(n.value) for n in tree.body if isinstance(n, ast.Assign)
              and getattr(n.targets[0], "id", "") == "IR_FILE"]
    assert values == [hostile]


def test_the_requirement_option_and_unknown_options():
    env = yaml.safe_load(package("churn", requirement="pipespec==0.1.0")["runtime_env.yaml"])
    assert env == {"pip": ["pipespec==0.1.0"]}
    with pytest.raises(UnsupportedError, match="--option image: unknown option"):
        package("churn", image="x")


def test_compile_target_ray_through_the_cli(tmp_path):
    out = tmp_path / "out"
    done = CliRunner().invoke(main, ["compile", str(ROOT / "examples" / "churn" / "pipeline.yaml"),
                                     "--target", "ray", "-o", str(out)])
    assert done.exit_code == 0, done.output
    assert sorted(p.name for p in out.iterdir()) == ["run_pipeline.py", "runtime_env.yaml",
                                                      "telecom-churn.ir.json"]
