"""The `ray` compile target: golden packages per example, a deterministic driver that
takes spec strings only as checked literals, the content-named IR, and the runtime_env as
YAML data pinning pipespec's own version.

Refresh the golden files with `pytest --update-golden` and review the diff; they hold
`pipespec==<pipespec version>` where the package pins the installed version."""

from __future__ import annotations

import ast
import hashlib
import subprocess
import sys
from importlib.metadata import version
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
EXAMPLES = ("churn", "demand")
VERSION = version("pipespec")
STAND_INS = {f"pipespec=={VERSION}": "pipespec==<pipespec version>"}  # goldens outlive a version bump


def package(example: str, **options) -> dict[str, bytes]:
    result = compile_file(str(ROOT / "examples" / example / "pipeline.yaml"), [])
    return jobs.compile(result.ir, options).files


@pytest.mark.parametrize("example", EXAMPLES)
def test_each_example_compiles_to_its_golden_package(example, golden):
    """The driver and runtime_env; the IR file is the `ir` target's (checked below), whose
    own golden files belong to the compiler."""
    files = {rel: data for rel, data in package(example).items() if not rel.endswith(".ir.json")}
    golden.check(f"ray/{example}", files, STAND_INS)


@pytest.mark.parametrize("example", EXAMPLES)
def test_the_package_holds_the_canonical_ir_a_parsable_driver_and_yaml_data(example):
    files = package(example)
    result = compile_file(str(ROOT / "examples" / example / "pipeline.yaml"), [])
    canonical = TARGETS["ir"].compile(result.ir, {}).files[f"{result.ir.pipeline}.ir.json"]
    ir_file = f"{result.ir.pipeline}.{hashlib.sha256(canonical).hexdigest()[:12]}.ir.json"  # named by content
    assert sorted(files) == sorted([ir_file, "run_pipeline.py", "runtime_env.yaml"])
    assert files[ir_file] == canonical
    tree = ast.parse(files["run_pipeline.py"])
    assigned = {t.id: n.value for n in tree.body if isinstance(n, ast.Assign) for t in n.targets}
    assert ast.literal_eval(assigned["IR_FILE"]) == ir_file
    assert yaml.safe_load(files["runtime_env.yaml"]) == {"pip": [f"pipespec=={VERSION}"]}
    assert package(example) == files  # deterministic


def test_the_driver_holds_no_path_version_or_time():
    script = package("churn")["run_pipeline.py"].decode()
    assert str(ROOT) not in script and VERSION not in script and "2026" not in script
    assert "ray.init" not in script  # connecting is the executor's job (address=auto in a job)


def test_only_pipespec_itself_is_pinned():
    """The workers run the runtime the IR was compiled for; no other tool's version is in
    the package (pipespec's own requirements pin nothing either)."""
    files = package("churn")
    env = yaml.safe_load(files["runtime_env.yaml"])
    assert env == {"pip": [f"pipespec=={VERSION}"]}
    for rel in ("run_pipeline.py", "runtime_env.yaml"):
        assert all(version(tool) not in files[rel].decode() for tool in ("ray", "pyarrow", "scikit-learn")), rel


def test_the_driver_runs_its_help_without_a_cluster(tmp_path):
    for rel, data in package("churn").items():
        (tmp_path / rel).write_bytes(data)
    done = subprocess.run([sys.executable, "run_pipeline.py", "--help"], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0 and "--store" in done.stdout and "telecom-churn." in done.stdout


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
    names = sorted(p.name for p in out.iterdir())
    assert names[:2] == ["run_pipeline.py", "runtime_env.yaml"] and len(names) == 3
    assert names[2].startswith("telecom-churn.") and names[2].endswith(".ir.json")
