"""`pipespec cache verify [--delete]`: every part of a store checked, and repaired so that
the next run recovers.

Checked: objects (re-hashed; their name must be a digest), cache entries (shape, and that
the digest names an intact object of the format the node kind produces; model files pass
the skops trust check), run and step records, registry records (shape, and an intact,
trusted model), rollout step reports, and in a local store the compile cache and the
source stat cache, in the main store and in every sample namespace.  `--delete` removes
what it reports, except a registry record whose model is lost: that version is archived
(its history kept), so no gate or rollout compares against a model that is gone.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from typing import Callable

from . import artifacts, records
from .errors import RunError
from .hashing import digest_bytes
from .registry import Registry, record_problem
from .store import CacheEntry, Store, check_hex


@dataclass
class Problem:
    what: str
    detail: str
    relpaths: list[str]
    repair: Callable[[], None] | None = field(default=None, repr=False)  # None: remove relpaths


@dataclass
class _Objects:
    """What the object pass found: digest -> sniffed format, and the corrupt digests."""

    formats: dict[str, str | None] = field(default_factory=dict)
    bad: set[str] = field(default_factory=set)


def verify(store: Store, delete: bool = False) -> list[Problem]:
    problems: list[Problem] = []
    for s in [store, *namespaces(store)]:
        problems += _verify_store(s, "" if s is store else store.relpath(s.root) + "/")
    problems += _state(store)
    if delete:
        for problem in problems:
            _fix(store, problem)
    return problems


def namespaces(store: Store) -> list[Store]:
    names = sorted({rel.split("/")[1] for rel in store.list("namespaces") if rel.count("/") >= 2})
    return [store.namespace(n) for n in names]


def _fix(store: Store, problem: Problem) -> None:
    if problem.repair is not None:
        problem.repair()
        return
    for relpath in problem.relpaths:
        store.remove(relpath)


def _verify_store(s: Store, prefix: str) -> list[Problem]:
    """The problems of one store (the main one, or a namespace `prefix` below it)."""
    objects, problems = _objects(s, prefix)
    problems += _entries(s, prefix, objects)
    problems += _records(s, prefix)
    problems += _registry(s, prefix, objects) if not prefix else []
    problems += _step_reports(s, prefix)
    return problems


def _objects(s: Store, prefix: str) -> tuple[_Objects, list[Problem]]:
    found, problems = _Objects(), []
    for rel in s.list("objects"):
        parts = rel.split("/")
        digest = parts[-2] + parts[-1] if len(parts) == 3 else ""
        try:
            check_hex(digest, "object")
            data = s.read_bytes(rel) or b""
        except RunError as exc:
            problems.append(Problem(f"object {rel}", exc.message, [prefix + rel]))
            continue
        actual = digest_bytes(data)
        if actual != digest:
            found.bad.add(digest)
            problems.append(Problem(f"object {digest[:12]}…", f"content hashes to {actual[:12]}…", [prefix + rel]))
        else:
            found.formats[digest] = artifacts.sniff(data)
    return found, problems


def _entries(s: Store, prefix: str, objects: _Objects) -> list[Problem]:
    problems = []
    for rel, key, entry in s.iter_entries():
        detail = entry.message if not isinstance(entry, CacheEntry) else _entry_detail(s, entry, objects)
        if detail:
            problems.append(Problem(f"entry {key[:12]}…", detail, [prefix + rel]))
    return problems


def _entry_detail(s: Store, entry: CacheEntry, objects: _Objects) -> str | None:
    expected = artifacts.KIND_FORMATS.get(entry.kind)
    if expected is None or entry.format != expected:
        return f"a {entry.kind} node does not produce a {entry.format} artifact"
    if entry.digest in objects.bad:
        return f"its output {entry.digest[:12]}… is corrupt"
    if entry.digest not in objects.formats:
        return f"its output {entry.digest[:12]}… is missing"
    if objects.formats[entry.digest] != entry.format:
        return f"its output {entry.digest[:12]}… is not a {entry.format} artifact"
    if entry.format == artifacts.MODEL:
        return _model_problem(s, entry.digest)
    return None


def _model_problem(s: Store, digest: str) -> str | None:
    """Why the model file `digest` would not load (the skops trust check), or None."""
    from .modelio import loads
    try:
        loads(s.get(digest, "model"))
    except Exception as exc:  # noqa: BLE001 - any failure to load is the finding
        return f"its model {digest[:12]}… does not load: {getattr(exc, 'message', exc)}"
    return None


def _records(s: Store, prefix: str) -> list[Problem]:
    problems = []
    for rel in s.list("runs"):
        problems += _json_problem(s, prefix, rel, "run record", records.run_problem, depth=3)
    for rel in s.list("steps"):
        problems += _json_problem(s, prefix, rel, "step record", records.step_problem, depth=4)
    return problems


def _step_reports(s: Store, prefix: str) -> list[Problem]:
    problems = []
    for rel in s.list("rollout-steps"):
        problems += _json_problem(s, prefix, rel, "rollout step report",
                                  lambda d: None if isinstance(d, dict) and d else "not a report", depth=3)
    return problems


def _json_problem(s: Store, prefix: str, rel: str, what: str, check, depth: int) -> list[Problem]:
    data, problem = _read_json(s, rel)
    if problem is None and (rel.count("/") != depth - 1 or not rel.endswith(".json")):
        problem = "not where such a record is kept"
    if problem is None:
        problem = check(data)
    return [Problem(f"{what} {rel}", problem, [prefix + rel])] if problem else []


def _read_json(s: Store, rel: str):
    try:
        return json.loads(s.read_bytes(rel) or b""), None
    except RunError as exc:
        return None, exc.message
    except ValueError:
        return None, "not valid JSON"


def _registry(s: Store, prefix: str, objects: _Objects) -> list[Problem]:
    problems = []
    for rel in s.list("registry"):
        if rel.endswith("/.lock"):
            continue
        record, problem = _read_json(s, rel)
        problem = problem or record_problem(record, rel)
        if problem:
            problems.append(Problem(f"registry record {rel}", problem, [prefix + rel]))
            continue
        lost = _model_lost(s, record["digest"], objects)
        if lost and record["stage"] != "archived":
            problems.append(Problem(f"registry record {rel}", f"{lost}: the version is archived",
                                    [prefix + rel], repair=lambda r=record, why=lost: _archive(s, r, why)))
    return problems


def _model_lost(s: Store, digest: str, objects: _Objects) -> str | None:
    if digest in objects.bad:
        return f"its model {digest[:12]}… is corrupt"
    if digest not in objects.formats:
        return f"its model {digest[:12]}… is missing"
    return _model_problem(s, digest)


def _archive(s: Store, record: dict, why: str) -> None:
    Registry(s).set_stage(record["pipeline"], record["model"], record["version"], "archived",
                          f"cache verify --delete: {why}")


def _state(store: Store) -> list[Problem]:
    """The local bookkeeping: the compile cache and the source stat cache."""
    if not store.local:
        return []
    from .compiled import CompileCache, location
    problems = []
    cache = CompileCache(location(store))
    for path, why in cache.damaged():
        problems.append(Problem(f"compile cache {os.path.basename(path)[:12]}…", why,
                                [store.relpath(path)]))
    from .statcache import location as stat_location
    db = stat_location(store)
    why = _sqlite_problem(db) if os.path.exists(db) else None
    if why:
        paths = [db + suffix for suffix in ("", "-wal", "-shm") if os.path.exists(db + suffix)]
        problems.append(Problem("source stat cache", why, [store.relpath(p) for p in paths]))
    return problems


def _sqlite_problem(db: str) -> str | None:
    try:
        with closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as conn:
            (result,) = conn.execute("PRAGMA quick_check").fetchone()
            conn.execute("SELECT path, size, version, digest FROM stat LIMIT 1").fetchall()
    except sqlite3.Error as exc:
        return f"not a readable stat cache ({exc})"
    return None if result == "ok" else f"damaged ({result})"
