"""The store under stress: atomic writes, kill -9, concurrent runs, corruption, disk full, gc."""

from __future__ import annotations

import errno
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipespec.cli import main
from pipespec.runtime import maintenance, records
from pipespec.runtime.verify import verify
from pipespec.runtime.errors import CorruptArtifact
from pipespec.runtime.registry import Registry
from pipespec.runtime.store import TMP_PREFIX, Store

ROOT = Path(__file__).resolve().parent.parent


def copy_churn(tmp_path: Path) -> Path:
    target = tmp_path / "churn"
    shutil.copytree(ROOT / "examples" / "churn", target, ignore=shutil.ignore_patterns(".pipespec"))
    return target / "pipeline.yaml"


def run_cli(spec: Path, *extra: str, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "pipespec", "run", str(spec), "--no-progress", *extra],
                          capture_output=True, text=True, timeout=timeout)


def latest_nodes(store: Store) -> dict[str, dict]:
    (record,) = records.latest(store, "telecom-churn", 1)
    return {n["id"]: n for n in record["nodes"]}


# --- unit: objects and entries ------------------------------------------------------------


def test_put_get_round_trip_and_idempotence(tmp_path):
    store = Store(str(tmp_path))
    a = store.put(b"hello")
    b = store.put(b"hello")
    assert a == b and store.get(a.digest) == b"hello" and store.has(a.digest)
    assert list(store.iter_objects()) == [a.digest]


def test_get_detects_a_modified_object(tmp_path):
    store = Store(str(tmp_path))
    info = store.put(b"payload")
    Path(store.object_path(info.digest)).write_bytes(b"pAyload")
    with pytest.raises(CorruptArtifact) as err:
        store.get(info.digest)
    assert err.value.code == "E0805"


def test_a_failed_write_leaves_neither_the_file_nor_a_temp_file(tmp_path, monkeypatch):
    store = Store(str(tmp_path))
    real_write = os.write

    def full_disk(fd, data):
        real_write(fd, bytes(data)[:3])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", full_disk)
    with pytest.raises(Exception) as err:
        store.put(b"x" * 100)
    monkeypatch.undo()
    assert getattr(err.value, "code", None) == "E0804" and "no space" in str(err.value)
    leftovers = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert leftovers == []


def test_disk_full_fails_the_node_and_caches_nothing_for_it(tmp_path, monkeypatch):
    from pipespec.compiler.lower import compile_file
    from pipespec.runtime.executor import RunOptions, execute
    from pipespec.runtime.progress import Reporter
    from pipespec.runtime import store as store_module

    spec = copy_churn(tmp_path)
    graph = compile_file(str(spec), []).ir
    real = store_module._atomic_local_write

    def flaky(path, data):
        if "/objects/" in path and len(data) > 40_000:  # the model artifact and big tables
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(path, data)

    monkeypatch.setattr(store_module, "_atomic_local_write", flaky)
    store = Store(str(spec.parent / ".pipespec"))
    report = execute(graph, store, str(spec.parent), RunOptions(jobs=2), Reporter(open(os.devnull, "w")))
    failed = [r for r in report.results if r.status == "failed"]
    assert failed and all(r.error.code == "E0804" for r in failed)
    assert report.exit_code == 1
    for r in failed:
        assert r.key is None or store.get_entry(r.key) is None
    assert verify(store) == []


# --- kill -9, concurrency, corruption (real subprocesses) -----------------------------------


@pytest.mark.slow
def test_kill_9_at_any_point_leaves_a_valid_store(tmp_path):
    spec = copy_churn(tmp_path)
    store = Store(str(spec.parent / ".pipespec"))
    rng = random.Random(1234)
    for attempt in range(6):
        proc = subprocess.Popen([sys.executable, "-m", "pipespec", "run", str(spec), "--no-progress"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.8, 4.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=60)
        assert verify(store) == [], f"attempt {attempt}"
        for path in Path(store.root).rglob("*"):
            if path.is_file() and path.name.endswith(".json") and not path.name.startswith(TMP_PREFIX):
                json.loads(path.read_text())  # every visible JSON document is whole
    final = run_cli(spec)
    assert final.returncode == 0, final.stdout + final.stderr
    assert verify(store) == []
    clean = copy_churn(tmp_path / "clean")
    assert run_cli(clean).returncode == 0
    a = {k: v["digest"] for k, v in latest_nodes(store).items() if k.startswith(("source", "feature"))}
    b = {k: v["digest"] for k, v in latest_nodes(Store(str(clean.parent / ".pipespec"))).items()
         if k.startswith(("source", "feature"))}
    assert a == b


def test_two_concurrent_runs_on_one_store(tmp_path):
    spec = copy_churn(tmp_path)
    procs = [subprocess.Popen([sys.executable, "-m", "pipespec", "run", str(spec), "--no-progress"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    store = Store(str(spec.parent / ".pipespec"))
    assert verify(store) == []
    recs = records.latest(store, "telecom-churn", 2)
    assert len(recs) == 2
    digests = [{n["id"]: n["digest"] for n in r["nodes"] if n["kind"] in ("Source", "Transform")} for r in recs]
    assert digests[0] == digests[1]
    third = run_cli(spec)
    assert third.returncode == 0 and {n["status"] for n in latest_nodes(store).values()} == {"cached"}


def _flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def test_a_corrupted_input_is_recomputed_by_its_producer_once(tmp_path):
    """A reader that finds its input corrupt re-runs the producer (with a warning), never retries
    itself on E0805, and ends with the clean digests."""
    spec = copy_churn(tmp_path)
    assert run_cli(spec).returncode == 0
    store = Store(str(spec.parent / ".pipespec"))
    clean = {k: n["digest"] for k, n in latest_nodes(store).items()}
    digest = clean["feature.churn_features"]
    _flip_middle_byte(Path(store.object_path(digest)))

    out = CliRunner().invoke(main, ["cache", "verify", "--store", str(store.root)])
    assert out.exit_code == 1 and digest[:12] in out.output
    rerun = run_cli(spec, "--force", "train.churn_gbm")
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "feature.churn_features" in rerun.stderr and "corrupt: recomputing it" in rerun.stderr
    nodes = latest_nodes(store)
    assert {k: n["digest"] for k, n in nodes.items()} == clean
    assert nodes["feature.churn_features"]["status"] == "done"
    assert verify(store) == []


def test_a_corrupt_object_found_by_verify_delete_is_recomputed_by_the_next_run(tmp_path):
    spec = copy_churn(tmp_path)
    assert run_cli(spec).returncode == 0
    store = Store(str(spec.parent / ".pipespec"))
    digest = latest_nodes(store)["feature.churn_features"]["digest"]
    _flip_middle_byte(Path(store.object_path(digest)))
    fixed = CliRunner().invoke(main, ["cache", "verify", "--store", str(store.root), "--delete"])
    assert fixed.exit_code == 0 and "(removed)" in fixed.output
    assert verify(store) == []
    healed = run_cli(spec)
    assert healed.returncode == 0, healed.stdout
    nodes = latest_nodes(store)
    assert nodes["feature.churn_features"]["status"] == "done" and nodes["feature.churn_features"]["digest"] == digest


# --- gc ------------------------------------------------------------------------------------


@pytest.mark.slow
def test_gc_keeps_the_latest_runs_and_registered_models(tmp_path):
    spec = copy_churn(tmp_path)
    assert run_cli(spec).returncode == 0
    assert run_cli(spec, "-p", "high_value_charge=60.0").returncode == 0
    store = Store(str(spec.parent / ".pipespec"))
    before = set(store.iter_objects())
    dry = maintenance.gc(store, keep_runs=1, grace_seconds=0, dry_run=True)
    assert set(store.iter_objects()) == before and dry.objects
    out = maintenance.gc(store, keep_runs=1, grace_seconds=0)
    assert out.objects == dry.objects
    assert verify(store) == []
    latest = latest_nodes(store)
    assert all(store.has(n["digest"]) for n in latest.values())
    versions = Registry(store).versions("telecom-churn", "churn_gbm")
    assert versions and all(store.has(v["digest"]) for v in versions)
    again = run_cli(spec, "-p", "high_value_charge=60.0")
    assert {n["status"] for n in latest_nodes(store).values()} == {"cached"}, again.stdout


def test_gc_grace_period_protects_fresh_files(tmp_path):
    store = Store(str(tmp_path))
    store.put(b"orphan")
    out = maintenance.gc(store, keep_runs=1, grace_seconds=3600)
    assert out.objects == [] and len(list(store.iter_objects())) == 1


def test_a_run_on_an_fsspec_store_url_caches_there(tmp_path, monkeypatch):
    """Any fsspec URL works as the store (memory:// here: the same code path as s3://)."""
    from pipespec.compiler.lower import compile_file
    from pipespec.runtime.executor import RunOptions, execute
    from pipespec.runtime.progress import Reporter

    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))  # the stat cache of a remote store
    spec = copy_churn(tmp_path)
    graph = compile_file(str(spec), []).ir
    url = f"memory://pipespec-test-{os.getpid()}/store"
    quiet = Reporter(open(os.devnull, "w"))
    first = execute(graph, Store(url), str(spec.parent), RunOptions(jobs=2), quiet)
    assert first.exit_code == 0 and {r.status for r in first.results} == {"done"}
    second = execute(graph, Store(url), str(spec.parent), RunOptions(jobs=2), quiet)
    assert {r.status for r in second.results} == {"cached"}
    store = Store(url)
    assert not store.local and verify(store) == []
    assert not (spec.parent / ".pipespec").exists()
    assert Registry(store).production("telecom-churn", "churn_gbm") is not None
