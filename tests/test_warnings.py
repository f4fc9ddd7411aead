"""Warnings: reported with the IR still built, and `check` still exits 0."""

import shutil
from pathlib import Path

from click.testing import CliRunner

from pipespec.cli import main
from pipespec.compiler.lower import compile_file

ROOT = Path(__file__).resolve().parent.parent


def _demand_copy(tmp_path: Path, old: str, new: str) -> Path:
    dest = tmp_path / "demand"
    shutil.copytree(ROOT / "examples" / "demand", dest)
    spec = dest / "pipeline.yaml"
    text = spec.read_text()
    assert old in text
    spec.write_text(text.replace(old, new, 1))
    return spec


def test_declared_type_differing_from_parquet_file_warns_at_the_column(tmp_path):
    spec = _demand_copy(tmp_path, "units: int64", "units: int32")
    result = compile_file(str(spec))
    assert result.ir is not None
    [warning] = result.diagnostics
    assert (warning.code, warning.severity) == ("W0404", "warning")
    line = spec.read_text().splitlines()[warning.span.line - 1]
    assert line[warning.span.col - 1:].startswith("int32")
    assert "int64" in warning.message


def test_declared_column_missing_from_file_warns(tmp_path):
    spec = _demand_copy(tmp_path, "units: int64", "units: int64\n      unitz: int64")
    result = compile_file(str(spec))
    assert [d.code for d in result.diagnostics] == ["W0404"]
    assert "'unitz' is not in" in result.diagnostics[0].message


def test_check_exits_zero_with_warnings(tmp_path):
    spec = _demand_copy(tmp_path, "units: int64", "units: int32")
    out = CliRunner().invoke(main, ["check", str(spec)])
    assert out.exit_code == 0
    assert "warning[W0404]" in out.output and "ok: pipeline" in out.output


def test_unreachable_file_gives_no_warning(tmp_path):
    spec = _demand_copy(tmp_path, "units: int64", "units: int32")
    shutil.rmtree(spec.parent / "data")
    assert compile_file(str(spec)).diagnostics == []


def test_check_json_with_warnings_prints_one_document(tmp_path):
    import json

    spec = _demand_copy(tmp_path, "units: int64", "units: int32")
    out = CliRunner().invoke(main, ["check", str(spec), "--format", "json"])
    assert out.exit_code == 0
    doc = json.loads(out.stdout)
    assert doc["ok"] is True
    assert [d["code"] for d in doc["diagnostics"]] == ["W0404"]


def test_unrepresentable_file_column_does_not_hide_the_comparison(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    pq.write_table(pa.table({"id": pa.array([1], pa.uint64()), "x": pa.array([1.0])}), tmp_path / "t.parquet")
    spec = tmp_path / "p.yaml"
    spec.write_text("pipespec: 1\npipeline: p\nsources:\n  t:\n    format: parquet\n    path: t.parquet\n"
                    "    schema: {id: int64, x: int64, y: string}\n")
    messages = sorted(d.message for d in compile_file(str(spec)).diagnostics)
    assert messages == ["column 'id' is uint64 in t.parquet, declared int64",
                        "column 'x' is float64 in t.parquet, declared int64",
                        "column 'y' is not in t.parquet"]
