"""A damaged store heals: entries, outputs, records, the local caches; `cache verify` finds
every kind of damage and `--delete` repairs it so that the next run recovers."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipespec.cli import main
from pipespec.runtime import records
from pipespec.runtime.errors import StoreError
from pipespec.runtime.store import Store
from pipespec.runtime.verify import verify

SPEC = """pipespec: 1
pipeline: heal
sources:
  d: {format: csv, path: d.csv, schema: {x1: float64, x2: float64, y: bool}}
features:
  f:
    from: d
    columns:
      x3: x1 * x2
models:
  m:
    from: f
    target: y
    features: [x1, x2, x3]
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [accuracy]
    split: {test_size: 0.5, seed: 3}
gates:
  good:
    model: m
    require: [accuracy > 0.5]
rollout:
  model: m
  strategy: direct
"""


def write_project(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    x1, x2 = rng.normal(size=200), rng.normal(size=200)
    y = (x1 + 0.5 * x2 + rng.normal(0, 0.3, 200)) > 0
    lines = ["x1,x2,y"] + [f"{a:.6f},{b:.6f},{str(c).lower()}" for a, b, c in zip(x1, x2, y)]
    (folder / "d.csv").write_text("\n".join(lines) + "\n")
    old = os.stat(folder / "d.csv").st_mtime - 60  # not "racily clean": the compile is cached
    os.utime(folder / "d.csv", (old, old))
    (folder / "pipeline.yaml").write_text(SPEC)
    return folder / "pipeline.yaml"


def cli(*args: str):
    return CliRunner().invoke(main, list(args))


def run(spec: Path, *extra: str):
    result = cli("run", str(spec), "--no-progress", *extra)
    assert "Traceback" not in result.output
    return result


def digests(store: Store) -> dict[str, str]:
    (record,) = records.latest(store, "heal", 1)
    return {n["id"]: n["digest"] for n in record["nodes"]}


def statuses(store: Store) -> dict[str, str]:
    (record,) = records.latest(store, "heal", 1)
    return {n["id"]: n["status"] for n in record["nodes"]}


@pytest.fixture(scope="module")
def clean(tmp_path_factory) -> Path:
    """A project run once: its store is the reference every test copies."""
    spec = write_project(tmp_path_factory.mktemp("clean") / "p")
    assert run(spec).exit_code == 0
    return spec.parent


@pytest.fixture
def project(clean, tmp_path) -> tuple[Path, Store, dict]:
    folder = tmp_path / "p"
    shutil.copytree(clean, folder)
    store = Store(str(folder / ".pipespec"))
    return folder / "pipeline.yaml", store, digests(store)


def entry_file(store: Store, node_id: str) -> Path:
    (record,) = records.latest(store, "heal", 1)
    key = next(n["key"] for n in record["nodes"] if n["id"] == node_id)
    return Path(store.entry_path(key))


def object_file(store: Store, digest: str) -> Path:
    return Path(store.object_path(digest))


@pytest.mark.parametrize("damage", ["{}", "[]", "null", '{"digest": 5}', "not json", ""])
def test_a_damaged_cache_entry_is_a_miss_recomputed_with_one_warning(project, damage):
    spec, store, clean = project
    path = entry_file(store, "feature.f")
    path.write_text(damage)
    result = run(spec)
    assert result.exit_code == 0, result.output
    assert digests(store) == clean
    assert statuses(store)["feature.f"] == "done"
    assert result.output.count("cache entry") == 1 and "damaged" in result.output
    assert json.loads(path.read_text())["digest"] == clean["feature.f"]  # overwritten


def test_an_entry_naming_another_kinds_format_is_damaged(project):
    spec, store, clean = project
    path = entry_file(store, "feature.f")
    data = json.loads(path.read_text())
    path.write_text(json.dumps(dict(data, format="skops")))
    assert run(spec).exit_code == 0
    assert digests(store) == clean and statuses(store)["feature.f"] == "done"


@pytest.mark.parametrize("how", ["truncate", "append", "delete"])
def test_a_cached_output_of_the_wrong_size_is_recomputed(project, how):
    spec, store, clean = project
    path = object_file(store, clean["gate.good"])  # a leaf: nobody reads it
    data = path.read_bytes()
    if how == "delete":
        path.unlink()
    else:
        path.write_bytes(data[:5] if how == "truncate" else data + b"x")
    result = run(spec)
    assert result.exit_code == 0 and digests(store) == clean
    assert statuses(store)["gate.good"] == "done"
    assert verify(store) == []


def test_verify_rehashes_cached_outputs_a_size_check_misses(project):
    spec, store, clean = project
    path = object_file(store, clean["gate.good"])
    data = bytearray(path.read_bytes())
    data[3] ^= 0x01  # same size
    path.write_bytes(bytes(data))
    plain = cli("plan", str(spec))
    assert "corrupt" not in plain.output
    planned = cli("plan", str(spec), "--verify")
    assert planned.exit_code == 0 and "corrupt" in planned.output, planned.output
    result = run(spec, "--verify")
    assert result.exit_code == 0 and "corrupt" in result.output
    assert digests(store) == clean and statuses(store)["gate.good"] == "done"
    assert verify(store) == []


def test_a_corrupt_input_fails_only_when_its_producer_is_corrupt_again(project, monkeypatch):
    """Never retried for E0805: the node fails after one recompute of the producer."""
    spec, store, clean = project
    from pipespec.runtime.step import Runner

    real = Runner._run

    def corrupting(self, node, force=False):
        result = real(self, node, force)
        if node.id == "feature.f":
            path = object_file(self.store, result.digest)
            data = bytearray(path.read_bytes())
            data[len(data) // 2] ^= 0xFF
            path.write_bytes(bytes(data))
        return result

    monkeypatch.setattr(Runner, "_run", corrupting)
    result = run(spec, "--force", "feature.f", "--force", "train.m")
    assert result.exit_code == 1
    assert "E0805" in result.output and "retrying" not in result.output


@pytest.mark.parametrize("damage", ["[]", '{"nodes": null}', '{"run_id": "x", "nodes": [5]}', "garbage"])
def test_a_run_record_of_the_wrong_shape_is_a_clear_diagnostic(project, damage):
    spec, store, clean = project
    (path,) = Path(store.path("runs/heal")).glob("*.json")
    path.write_text(damage)
    for args in (("plan", str(spec)), ("runs", str(spec)), ("show", str(spec), "gate.good")):
        result = cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert "Traceback" not in result.output and "E0804" in result.output and path.name in result.output
        assert "cache verify --delete" in result.output
    assert cli("cache", "verify", "--store", store.root, "--delete").exit_code == 0
    assert cli("runs", str(spec)).exit_code == 0
    assert run(spec).exit_code == 0 and digests(store) == clean


def _damage(path: Path, how: str) -> None:
    if how == "flip":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0xFF
        path.write_bytes(bytes(data))
    elif how == "truncate":
        path.write_bytes(path.read_bytes()[:7])
    else:
        path.write_text(how)


PARTS = {
    "object": lambda store, clean: object_file(store, clean["train.m"]),
    "entry": lambda store, clean: entry_file(store, "evaluate.m"),
    "run record": lambda store, clean: next(Path(store.path("runs/heal")).glob("*.json")),
    "registry record": lambda store, clean: next(Path(store.path("registry/heal/m")).glob("*.json")),
    "compile cache": lambda store, clean: next(Path(store.path("state/compiled")).glob("*.json")),
    "stat cache": lambda store, clean: Path(store.path("state/stat.sqlite")),
}


@pytest.mark.parametrize("part", sorted(PARTS))
@pytest.mark.parametrize("how", ["flip", "truncate", "[]"])
def test_verify_finds_every_part_and_delete_lets_the_next_run_recover(project, part, how):
    spec, store, clean = project
    path = PARTS[part](store, clean)
    _damage(path, how)
    found = cli("cache", "verify", "--store", store.root)
    if part != "stat cache" or how != "flip":  # a flipped byte in SQLite's free space is harmless
        assert found.exit_code == 1, found.output
    fixed = cli("cache", "verify", "--store", store.root, "--delete")
    assert fixed.exit_code == 0
    assert verify(store) == []
    result = run(spec)
    assert result.exit_code == 0, result.output
    assert digests(store) == clean
    assert verify(store) == []


def test_verify_checks_model_trust_not_only_the_hash(project):
    """A model file rewritten with an untrusted type, its entry pointing at it by digest."""
    spec, store, clean = project
    import io
    import zipfile

    from pipespec.runtime.hashing import digest_bytes
    original = object_file(store, clean["train.m"]).read_bytes()
    with zipfile.ZipFile(io.BytesIO(original)) as zin:
        members = {n: zin.read(n) for n in zin.namelist()}
    schema = json.loads(members["schema.json"])
    schema["__module__"], schema["__class__"] = "os", "system"
    members["schema.json"] = json.dumps(schema).encode()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zout:
        for name, data in members.items():
            zout.writestr(name, data)
    forged = buf.getvalue()
    digest = digest_bytes(forged)
    store.put(forged)
    path = entry_file(store, "train.m")
    entry = json.loads(path.read_text())
    path.write_text(json.dumps(dict(entry, digest=digest, size=len(forged))))
    found = cli("cache", "verify", "--store", store.root)
    assert found.exit_code == 1 and "does not load" in found.output and "untrusted" in found.output
    assert cli("cache", "verify", "--store", store.root, "--delete").exit_code == 0
    assert run(spec).exit_code == 0 and digests(store) == clean


def test_a_forged_compile_cache_entry_is_a_miss(project, tmp_path):
    """A writer of the store recomputes the entry's plain digest over another IR: the run
    compiles the spec instead of executing the forged IR."""
    spec, store, clean = project
    from pipespec.compiler.lower import compile_text
    from pipespec.runtime.hashing import digest_json
    (path,) = Path(store.path("state/compiled")).glob("*.json")
    entry = json.loads(path.read_text())
    other = compile_text(SPEC.replace("x1 * x2", "x1 + x2"))
    entry["ir"] = other.ir.to_json()
    entry["digest"] = digest_json({k: v for k, v in entry.items() if k != "digest"})
    path.write_text(json.dumps(entry))
    result = run(spec)
    assert result.exit_code == 0 and digests(store) == clean
    assert set(statuses(store).values()) == {"cached"}


def test_a_forged_stat_cache_row_is_a_miss(project):
    """A row naming another digest for the file (an older version's, say) is not believed."""
    import sqlite3
    spec, store, clean = project
    db = sqlite3.connect(store.path("state/stat.sqlite"))
    with db:
        db.execute("UPDATE stat SET digest = ?", ("0" * 64,))
    db.close()
    result = run(spec)
    assert result.exit_code == 0 and digests(store) == clean
    assert set(statuses(store).values()) == {"cached"}


@pytest.mark.parametrize("relpath", ["../x", "a/../../x", "/abs", "a//b", "./a", "a/./b", "", "a\\..\\b"])
@pytest.mark.parametrize("backend", ["local", "memory"])
def test_store_paths_never_leave_the_store(tmp_path, relpath, backend):
    store = Store(str(tmp_path / "store") if backend == "local" else f"memory://heal-{backend}/store")
    with pytest.raises(StoreError, match="refusing"):
        store.write_bytes(relpath, b"x")
    with pytest.raises(StoreError):
        store.namespace(relpath or "..")
    with pytest.raises(StoreError):
        store.read_json(relpath)
    assert sorted(os.listdir(tmp_path)) in ([], ["store"])
    if backend == "memory":
        assert not store.fs.find(f"/heal-{backend}")


def test_keys_and_digests_must_be_hex_digests(tmp_path):
    store = Store(str(tmp_path / "store"))
    with pytest.raises(StoreError):
        store.get_entry("../../etc/passwd")
    with pytest.raises(StoreError):
        store.get("../" * 10 + "x" * 40)


def test_gc_with_a_damaged_run_record_says_so_and_deletes_nothing(project):
    spec, store, clean = project
    (path,) = Path(store.path("runs/heal")).glob("*.json")
    path.write_text("[]")
    before = sorted(p for p in Path(store.root).rglob("*") if p.is_file())
    result = cli("cache", "gc", "--store", store.root, "--grace", "0")
    assert result.exit_code == 1 and "E0804" in result.output and "Traceback" not in result.output
    assert sorted(p for p in Path(store.root).rglob("*") if p.is_file()) == before


@pytest.mark.parametrize("damage", ["[]", '{"nodes": null}', '{"stage": 5}'])
def test_a_registry_record_of_the_wrong_shape_is_a_clear_diagnostic_whose_fix_works(project, damage):
    spec, store, clean = project
    (path,) = Path(store.path("registry/heal/m")).glob("*.json")
    path.write_text(damage)
    planned = cli("plan", str(spec))
    assert "Traceback" not in planned.output and "damaged" in planned.output
    result = run(spec, "--force", "gate.good")
    assert result.exit_code == 1 and "E0804" in result.output and path.name in result.output
    assert "cache verify --delete" in result.output
    assert cli("cache", "verify", "--store", store.root, "--delete").exit_code == 0
    healed = run(spec)
    assert healed.exit_code == 0, healed.output
    assert digests(store) == clean
    assert json.loads(path.read_text())["stage"] == "production"


def test_the_local_key_follows_the_cache_directory(tmp_path, monkeypatch):
    """A process that changes XDG_CACHE_HOME signs with the key a fresh process there reads."""
    from pipespec.runtime.localkey import local_key
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "a"))
    a = local_key()
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "b"))
    b = local_key()
    assert a and b and a != b
    assert (tmp_path / "b" / "pipespec" / "local.key").read_bytes() == b
    assert oct((tmp_path / "b" / "pipespec" / "local.key").stat().st_mode & 0o777) == "0o600"
