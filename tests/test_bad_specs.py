"""Bad specs found by fuzzing (issue 11, section 4): each gives a diagnostic at its place,
never an exception, and never blocks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipespec.cli import main
from pipespec.compiler.lower import compile_file, compile_text

ROOT = Path(__file__).resolve().parent.parent
BASE = (ROOT / "specs" / "valid" / "model_split_stratify.yaml").read_text()
DATA = str(ROOT / "specs" / "valid")


def diagnostics(text: str, base_dir: str = DATA) -> list[tuple]:
    result = compile_text(text, "spec.yaml", base_dir=base_dir)
    return [(d.code, d.span.line if d.span else None, d.span.col if d.span else None, d.message)
            for d in result.diagnostics]


def position(text: str, needle: str) -> tuple[int, int]:
    before = text[:text.index(needle)]
    return before.count("\n") + 1, len(before) - (before.rfind("\n") + 1) + 1


# --- numbers ------------------------------------------------------------------------


@pytest.mark.parametrize("literal", ["9" * 5000, "-" + "9" * 4301, "9" * 401, "0x" + "f" * 4000,
                                     "9223372036854775808", "-9223372036854775809"])
def test_an_integer_beyond_64_bits_is_e0104_at_its_position(literal):
    text = BASE.replace("seed: 13", f"seed: {literal}")
    (code, line, col, message), = diagnostics(text)
    assert (code, line, col) == ("E0104", *position(text, literal))
    assert "out of range" in message and "64 bits" in message
    assert len(message) < 200  # a 5,000-digit literal is not repeated


def test_the_64_bit_bounds_themselves_are_integers():
    text = BASE.replace("sources:", "params: {big: 9223372036854775807, small: -9223372036854775808}\nsources:")
    assert diagnostics(text) == []


@pytest.mark.parametrize("seed, message", [("-1", "-1 is too small: must be >= 0"),
                                           ("4294967296", "4294967296 is too large: must be <= 4294967295")])
def test_a_seed_numpy_cannot_take_is_e0104_at_check_time(seed, message):
    """It used to fail at run time, in scikit-learn's split (`Seed must be between 0 and 2**32 - 1`)."""
    text = BASE.replace("seed: 13", f"seed: {seed}")
    assert diagnostics(text) == [("E0104", *position(text, seed + "}"), message)]
    text = BASE.replace("split: {test_size: 0.25, stratify: true, seed: 13}", f"cv: {{folds: 3, seed: {seed}}}")
    assert [d[0] for d in diagnostics(text)] == ["E0104"]


def test_the_largest_seed_is_accepted():
    assert diagnostics(BASE.replace("seed: 13", "seed: 4294967295")) == []


def test_a_huge_integer_key_is_just_a_key():
    text = BASE.replace("schema: {sepal", "schema: {" + "1" * 30 + ": int64, sepal")
    assert [d for d in diagnostics(text) if d[0] == "E0104"] == []


@pytest.mark.parametrize("memory", ["9" * 401, '"' + "9" * 401 + '"', "9" * 401 + "TiB", "9000000TiB",
                                    "1" + "0" * 400 + ".5 GiB"])
def test_a_memory_size_too_large_is_e0104_at_its_line(memory):
    text = BASE.replace("    metrics: [balanced_accuracy]", f"    resources: {{memory: {memory}}}\n"
                                                             "    metrics: [balanced_accuracy]")
    (code, line, col, message), = diagnostics(text)
    assert (code, line, col) == ("E0104", *position(text, memory))
    assert "out of range" in message or "too large" in message


def test_the_largest_memory_size_is_accepted():
    text = BASE.replace("    metrics: [balanced_accuracy]", "    resources: {memory: 8000000 TiB}\n"
                                                             "    metrics: [balanced_accuracy]")
    assert diagnostics(text) == []


# --- spec paths that are not regular files ------------------------------------------------


def _cli(*args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "pipespec", *args], capture_output=True, text=True,
                          timeout=timeout, env=env)


@pytest.mark.parametrize("command", ["check", "plan", "run"])
def test_a_fifo_is_e0001_without_blocking(tmp_path, command):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    done = _cli(command, str(fifo))  # without the check, open() waits for a writer: the timeout fails it
    assert done.returncode == 1
    assert "error[E0001]" in done.stderr and "is a FIFO (named pipe), not a regular file" in done.stderr


def test_a_fifo_is_e0001_in_process(tmp_path):
    fifo = tmp_path / "spec.yaml"
    os.mkfifo(fifo)
    result = compile_file(str(fifo))
    assert [(d.code, "FIFO" in d.message) for d in result.diagnostics] == [("E0001", True)]


def test_a_device_is_e0001():
    result = compile_file(os.devnull)
    assert [(d.code, "character device" in d.message) for d in result.diagnostics] == [("E0001", True)]


def test_a_directory_is_e0001_naming_it(tmp_path):
    out = CliRunner().invoke(main, ["check", str(tmp_path)])
    assert out.exit_code == 1 and "is a directory, not a spec file" in out.output


# --- data paths that are directories -------------------------------------------------------


SOURCE = """\
pipespec: 1
pipeline: p
sources:
  s:
    format: csv
    path: {path}
{schema}features:
  f:
    from: s
"""


def test_a_data_directory_without_schema_is_e0404_saying_it_is_a_directory(tmp_path):
    (tmp_path / "d.csv").mkdir()
    (code, line, col, message), = diagnostics(SOURCE.format(path="d.csv", schema=""), str(tmp_path))
    assert (code, line) == ("E0404", 4)
    assert message == "cannot type source 's': d.csv is a directory, not a csv file"


def test_a_data_directory_with_schema_is_a_w0404_warning_at_the_schema(tmp_path):
    (tmp_path / "d.csv").mkdir()
    text = SOURCE.format(path="d.csv", schema="    schema: {x: int64}\n")
    result = compile_text(text, "spec.yaml", base_dir=str(tmp_path))
    assert result.ir is not None
    (d,) = result.diagnostics
    assert (d.code, d.severity, d.span.line) == ("W0404", "warning", 7)
    assert "d.csv is a directory, not a csv file" in d.message


def test_a_missing_data_file_is_still_not_found(tmp_path):
    (_, _, _, message), = diagnostics(SOURCE.format(path="d.csv", schema=""), str(tmp_path))
    assert message == "cannot type source 's': file not found: d.csv"


# --- long names and the files the targets write -------------------------------------------


@pytest.mark.parametrize("target", ["ray", "airflow"])
def test_a_long_pipeline_name_compiles_to_files_the_file_system_takes(tmp_path, target):
    spec = tmp_path / "pipeline.yaml"
    spec.write_text(BASE.replace("pipeline: model-split-stratify", "pipeline: p" + "x" * 299)
                    .replace("path: data/", f"path: {DATA}/data/"))
    out = CliRunner().invoke(main, ["compile", str(spec), "--target", target, "-o", str(tmp_path / "out")],
                             catch_exceptions=False)
    if target == "airflow":  # the DAG id is the pipeline name: refused, by name, not by the file system
        assert out.exit_code == 1 and "is 300 characters; Airflow allows at most 250" in out.output
        return
    assert out.exit_code == 0, out.output
    names = [p.name for p in (tmp_path / "out").iterdir()]
    assert len(names) == 3 and all(len(n.encode()) <= 220 for n in names)
