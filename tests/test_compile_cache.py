"""The compile cache of `run`/`plan`: hits, every kind of miss, warnings replayed exactly,
the bypass flag, damaged entries, and a hit importing none of the compiler's front end."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from pipespec.cli import main
from pipespec.runtime import compiled
from pipespec.runtime.compiled import CompileCache
from pipespec.runtime.store import Store

OLD = 1_600_000_000  # a modification time far enough in the past to be trusted

SPEC = """\
pipespec: 1
pipeline: cache-test
params:
  threshold: 0.5
sources:
  people:
    format: csv
    path: data/people.csv
features:
  people_features:
    from: people
    where: score > ${params.threshold}
    columns:
      score_sq: score * score
models:
  likes:
    from: people_features
    target: likes
    keys: [id]
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [accuracy]
"""

# W0404: `units` is int64 in the file, declared int32
WARN_SPEC = """\
pipespec: 1
pipeline: warn-test
sources:
  sales:
    format: parquet
    path: data/sales.parquet
    schema: {day: int64, units: int32}
features:
  busy:
    from: sales
    where: units > 2
"""


def _cli(*args):
    return CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)


def _age(path: Path, when: int = OLD) -> None:
    os.utime(path, (when, when))


def _write_people(spec_dir: Path, extra_column: bool = False) -> Path:
    rows = ["id,score,likes" + (",age" if extra_column else "")]
    rows += [f"{i},{i / 40:.3f},{'true' if i % 3 else 'false'}" + (f",{20 + i}" if extra_column else "")
             for i in range(40)]
    data = spec_dir / "data" / "people.csv"
    data.parent.mkdir(exist_ok=True)
    data.write_text("\n".join(rows) + "\n")
    _age(data, OLD + (1 if extra_column else 0))
    return data


@pytest.fixture
def spec(tmp_path) -> Path:
    _write_people(tmp_path)
    path = tmp_path / "pipeline.yaml"
    path.write_text(SPEC)
    return path


@pytest.fixture
def warn_spec(tmp_path) -> Path:
    (tmp_path / "data").mkdir()
    data = tmp_path / "data" / "sales.parquet"
    pq.write_table(pa.table({"day": pa.array([1, 2, 3], pa.int64()), "units": pa.array([1, 5, 9], pa.int64())}),
                   data)
    _age(data)
    path = tmp_path / "pipeline.yaml"
    path.write_text(WARN_SPEC)
    return path


def _cache(spec: Path) -> CompileCache:
    return CompileCache(str(spec.parent / ".pipespec" / "state" / "compiled"))


def _entries(spec: Path) -> list[Path]:
    directory = spec.parent / ".pipespec" / "state" / "compiled"
    return sorted(directory.glob("*.json")) if directory.is_dir() else []


def _imported(stderr: str) -> set[str]:
    """Module names from `python -X importtime` output."""
    return {m.group(1) for m in re.finditer(r"^import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", stderr, re.M)}


# --- hits ---------------------------------------------------------------------------


def test_a_run_fills_the_cache_and_the_next_run_hits_it(spec):
    out = _cli("run", spec, "--no-progress")
    assert out.exit_code == 0, out.output
    [entry] = _entries(spec)
    hit = _cache(spec).get(str(spec), ())
    assert hit is not None and hit.ir.pipeline == "cache-test"
    assert hit.text == SPEC and hit.file == str(spec) and hit.diagnostics == []
    assert json.loads(entry.read_text())["files"] == [[str(spec.parent / "data" / "people.csv"),
                                                       [os.stat(spec.parent / "data" / "people.csv").st_size,
                                                        OLD * 10**9,
                                                        os.stat(spec.parent / "data" / "people.csv").st_ino]]]
    again = _cli("run", spec, "--no-progress")
    assert again.exit_code == 0 and "4 cached" in again.output, again.output
    assert _entries(spec) == [entry]


def test_a_hit_imports_no_compiler_front_end(spec):
    """The point of the cache: a cached run never imports pydantic, the YAML loader or
    scikit-learn (the compiler's estimator checks)."""
    assert _cli("run", spec, "--no-progress").exit_code == 0
    command = [sys.executable, "-X", "importtime", "-m", "pipespec", "run", str(spec), "--no-progress"]
    hit = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert hit.returncode == 0, hit.stderr[-2000:]
    assert "4 cached" in hit.stdout
    loaded = _imported(hit.stderr)
    assert "pipespec.runtime.compiled" in loaded
    forbidden = ("sklearn", "pydantic", "lark", "yaml", "pipespec.compiler.loader", "pipespec.compiler.lower",
                 "pipespec.compiler.spec", "pipespec.compiler.estimators")
    assert sorted(m for m in loaded if m.split(".")[0] in forbidden or m in forbidden) == []
    bypass = subprocess.run(command + ["--no-compile-cache"], capture_output=True, text=True, timeout=120)
    assert bypass.returncode == 0 and {"pydantic", "pipespec.compiler.lower"} <= _imported(bypass.stderr)


def test_plan_uses_the_same_cache(spec):
    assert _cli("plan", spec).exit_code == 0
    assert len(_entries(spec)) == 1 and _cache(spec).get(str(spec), ()) is not None


# --- misses -------------------------------------------------------------------------


def test_editing_the_spec_is_a_miss(spec):
    assert _cli("plan", spec).exit_code == 0
    spec.write_text(SPEC.replace("score * score", "score * 2"))
    assert _cache(spec).get(str(spec), ()) is None
    out = _cli("plan", spec, "--format", "json")
    assert out.exit_code == 0 and len(_entries(spec)) == 2
    assert "score * 2" not in SPEC and _cache(spec).get(str(spec), ()) is not None


def test_a_changed_param_is_a_miss_and_each_value_has_its_entry(spec):
    assert _cli("plan", spec, "-p", "threshold=0.7").exit_code == 0
    cache = _cache(spec)
    assert cache.get(str(spec), ("threshold=0.7",)).ir.params == (("threshold", 0.7),)
    assert cache.get(str(spec), ()) is None
    assert cache.get(str(spec), ("threshold=0.8",)) is None
    assert _cli("plan", spec).exit_code == 0
    assert cache.get(str(spec), ()).ir.params == (("threshold", 0.5),)
    assert len(_entries(spec)) == 2


def test_a_changed_data_file_that_a_schema_was_inferred_from_is_a_miss(spec):
    assert _cli("plan", spec).exit_code == 0
    _write_people(spec.parent, extra_column=True)
    assert _cache(spec).get(str(spec), ()) is None
    assert _cli("plan", spec).exit_code == 0
    source = _cache(spec).get(str(spec), ()).ir.node("source.people")
    assert ("age", "int64") in source.output.columns


def test_a_data_file_appearing_is_a_miss(warn_spec):
    (warn_spec.parent / "data" / "sales.parquet").rename(warn_spec.parent / "elsewhere.parquet")
    assert _cli("plan", warn_spec).exit_code == 0  # declared schema: compiles without the file
    assert _cache(warn_spec).get(str(warn_spec), ()) is not None
    (warn_spec.parent / "elsewhere.parquet").rename(warn_spec.parent / "data" / "sales.parquet")
    assert _cache(warn_spec).get(str(warn_spec), ()) is None  # now W0404 applies


def test_a_data_file_modified_just_before_the_compile_is_not_cached(spec):
    _age(spec.parent / "data" / "people.csv", int(os.path.getmtime(spec)) + 10**6)  # "now" or later
    assert _cli("plan", spec).exit_code == 0
    assert _entries(spec) == []


def test_a_spec_with_errors_is_never_cached(spec):
    spec.write_text(SPEC.replace("score * score", "scor * score"))
    assert _cli("plan", spec).exit_code == 1
    assert _cli("run", spec, "--no-progress").exit_code == 1
    assert _entries(spec) == []


# --- warnings -----------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_warnings_are_replayed_exactly_on_a_hit(warn_spec, fmt):
    first = _cli("plan", warn_spec, "--format", fmt)
    assert first.exit_code == 0 and "W0404" in first.stderr
    assert _cache(warn_spec).get(str(warn_spec), ()) is not None
    second = _cli("plan", warn_spec, "--format", fmt)
    assert (second.exit_code, second.stderr, second.stdout) == (0, first.stderr, first.stdout)


def test_replayed_warnings_name_the_spec_as_given_this_time(warn_spec, monkeypatch):
    assert _cli("plan", warn_spec).exit_code == 0
    monkeypatch.chdir(warn_spec.parent.parent)
    relative = Path(warn_spec.parent.name) / "pipeline.yaml"
    hit = _cli("plan", relative)
    fresh = _cli("plan", relative, "--no-compile-cache")
    assert hit.stderr == fresh.stderr and f"{relative}:7:" in hit.stderr


# --- bypass, damage, where ----------------------------------------------------------


def test_no_compile_cache_neither_reads_nor_writes(spec, monkeypatch):
    assert _cli("plan", spec, "--no-compile-cache").exit_code == 0
    assert _entries(spec) == []
    assert _cli("plan", spec).exit_code == 0
    monkeypatch.setattr(CompileCache, "get", lambda *a: pytest.fail("read the cache"))
    assert _cli("run", spec, "--no-progress", "--no-compile-cache").exit_code == 0


def test_check_and_compile_always_compile(spec, tmp_path, monkeypatch):
    assert _cli("plan", spec).exit_code == 0
    monkeypatch.setattr(CompileCache, "get", lambda *a: pytest.fail("read the cache"))
    assert _cli("check", spec).exit_code == 0
    assert _cli("compile", spec, "-t", "ir", "-o", tmp_path / "out").exit_code == 0


def _tamper_ir(entry: dict) -> dict:
    entry["ir"] = entry["ir"].replace('"cache-test"', '"other"')
    return entry


@pytest.mark.parametrize("damage", [
    lambda raw: b"",
    lambda raw: raw[: len(raw) // 2],
    lambda raw: b"\x00\xff not json",
    lambda raw: b"[1, 2]",
    lambda raw: json.dumps(dict(json.loads(raw), files=5)).encode(),
    lambda raw: json.dumps(dict(json.loads(raw), ir="{}")).encode(),
    lambda raw: json.dumps(dict(json.loads(raw), format=99)).encode(),
    lambda raw: json.dumps(dict(json.loads(raw), diagnostics=[{"code": "X9999"}])).encode(),
    lambda raw: json.dumps(_tamper_ir(json.loads(raw))).encode(),
], ids=["empty", "truncated", "binary", "list", "bad-files", "bad-ir", "format", "bad-diagnostic",
        "fingerprint"])
def test_a_damaged_entry_is_a_miss_and_is_replaced(spec, damage):
    assert _cli("plan", spec).exit_code == 0
    [entry] = _entries(spec)
    entry.write_bytes(damage(entry.read_bytes()))
    assert _cache(spec).get(str(spec), ()) is None
    out = _cli("run", spec, "--no-progress")
    assert out.exit_code == 0, out.output
    assert _cache(spec).get(str(spec), ()).ir.pipeline == "cache-test"


def test_an_unwritable_cache_only_costs_a_compile(spec):
    blocker = spec.parent / ".pipespec" / "state" / "compiled"
    blocker.parent.mkdir(parents=True)
    blocker.write_text("a file where the cache directory should be")
    assert _cli("plan", spec).exit_code == 0
    assert _cli("run", spec, "--no-progress").exit_code == 0


def test_a_remote_store_keeps_the_cache_in_the_user_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert compiled.location(Store("memory://somewhere")) == str(tmp_path / "xdg" / "pipespec" / "compiled")
    local = Store(str(tmp_path / "store"))
    assert compiled.location(local) == str(tmp_path / "store" / "state" / "compiled")


def test_old_entries_are_pruned(spec, monkeypatch):
    monkeypatch.setattr(compiled, "KEEP", 2)
    for value in ("0.1", "0.2", "0.3"):
        assert _cli("plan", spec, "-p", f"threshold={value}").exit_code == 0
    assert len(_entries(spec)) == 2
    assert _cache(spec).get(str(spec), ("threshold=0.3",)) is not None


def test_a_failed_node_shows_its_yaml_line(warn_spec):
    """Run errors carry the IR's span (the file named by its base name): the excerpt must show."""
    (warn_spec.parent / "data" / "sales.parquet").unlink()
    out = _cli("run", warn_spec, "--no-progress")
    assert out.exit_code == 1 and "error[E0801]" in out.output
    assert re.search(r"^4 \|   sales:$", out.output, re.M), out.output


# --- what a cached run does not import ---------------------------------------------------


def test_reading_an_ir_and_opening_a_local_store_import_nothing_heavy(tmp_path):
    from pipespec import load
    ir_file = tmp_path / "churn.ir.json"
    ir_file.write_text(load(str(Path(__file__).parent.parent / "examples" / "churn" / "pipeline.yaml")).to_json())
    code = f"""
import sys
import pipespec
from pipespec.compiler.ir import Graph
from pipespec.runtime import artifacts
from pipespec.runtime.store import Store
graph = Graph.from_json(open({str(ir_file)!r}).read())
graph.upstream("feature.churn_features"), graph.ancestors("rollout.churn_gbm"), graph.edges()
Store({str(tmp_path / "store")!r}).put(b"x"), Store("file://" + {str(tmp_path / "other")!r}).has("ab" * 32)
artifacts.decode(artifacts.JSON, artifacts.encode(artifacts.JSON, {{"a": 1}}))
print(sorted(m for m in ("networkx", "fsspec", "pyarrow", "pydantic", "lark", "yaml", "sklearn", "numpy",
                         "pipespec.compiler.lower") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_the_public_api_is_unchanged():
    import pipespec
    assert set(pipespec.__all__) <= set(dir(pipespec))
    assert pipespec.Graph.__name__ == "Graph" and pipespec.compile_text("pipespec: 1").ok is False
    assert isinstance(pipespec.__version__, str)
    with pytest.raises(AttributeError):
        pipespec.no_such_name  # noqa: B018


def test_graph_queries_match_networkx():
    import dataclasses

    import networkx as nx

    from pipespec import load
    root = Path(__file__).parent.parent / "examples"
    for example in ("churn", "demand"):
        graph = load(str(root / example / "pipeline.yaml"))
        for node in graph.nodes:
            assert graph.ancestors(node.id) == nx.ancestors(graph.graph, node.id)
            assert graph.descendants(node.id) == nx.descendants(graph.graph, node.id)
        smaller = dataclasses.replace(graph, nodes=graph.nodes[:2])
        assert set(smaller.graph.nodes) == {n.id for n in graph.nodes[:2]} and smaller != graph


@pytest.mark.parametrize("url, expected", [
    ("rel/dir/", "{cwd}/rel/dir"), ("file:///abs/x/", "/abs/x"), ("file://rel", "{cwd}/rel"),
    ("~/z", "{home}/z"), ("/", "/"), ("/a/../b", "/b"),
])
def test_local_store_paths_resolve_like_fsspec_without_it(url, expected):
    store = Store(url)
    assert store.local
    assert store.root == expected.format(cwd=os.getcwd(), home=os.path.expanduser("~"))


def test_remote_store_urls_still_use_fsspec():
    store = Store("memory://bucket/prefix")
    assert not store.local and type(store.fs).__name__ == "MemoryFileSystem"
