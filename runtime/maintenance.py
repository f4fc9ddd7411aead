"""`pipespec cache ls|gc`: what the store holds, and cleaning it (`cache verify` is verify.py).

gc keeps every entry named by the newest runs of each pipeline (in the main store and
in every sample namespace) or by the newest `keep` results of each node run alone
(`pipespec step`, what orchestrators call, rollout steps included), every object those
entries and the model registry name, the rollout step reports of live rollouts, and
anything younger than the grace period, so a run in progress (whose record is not
written yet) never loses what it just stored.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field

from . import records
from .store import CacheEntry
from .verify import namespaces


@dataclass
class Usage:
    entries: int = 0
    objects: int = 0
    bytes: int = 0
    runs: dict[str, int] = field(default_factory=dict)
    models: int = 0


def usage(store) -> Usage:
    out = Usage()
    out.entries = sum(1 for rel in store.list("cache") if rel.endswith(".json"))
    for digest in store.iter_objects():
        out.objects += 1
        out.bytes += _size(store, store.object_path(digest))
    for pipeline in records.pipelines(store):
        out.runs[pipeline] = len(records.run_ids(store, pipeline))
    out.models = sum(1 for rel in store.list("registry") if rel.endswith(".json"))
    return out


@dataclass
class Collected:
    entries: list[str] = field(default_factory=list)
    objects: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    bytes: int = 0


def gc(store, keep_runs: int = 3, grace_seconds: float = 3600.0, dry_run: bool = False) -> Collected:
    stores = [store, *namespaces(store)]
    out = Collected()
    for s in stores:
        _collect(s, store, keep_runs, grace_seconds, out, dry_run)
    return out


def _collect(s, main, keep_runs: int, grace: float, out: Collected, dry_run: bool) -> None:
    live_keys, live_objects = _step_keys(s, keep_runs, grace, out, dry_run), set()
    for pipeline in records.pipelines(s):
        for record in records.latest(s, pipeline, keep_runs):
            for node in record.get("nodes", []):
                if node.get("key"):
                    live_keys.add(node["key"])
    if s is main:
        for rel in s.list("registry"):
            record = s.read_json(rel) if rel.endswith(".json") else None
            if record and record.get("digest"):
                live_objects.add(record["digest"])
    now = time.time()
    for rel, key, entry in list(s.iter_entries()):
        path = s.path(rel)
        if key in live_keys or now - _mtime(s, path) < grace:
            if isinstance(entry, CacheEntry):
                live_objects.add(entry.digest)
            continue
        out.entries.append(rel)
        if not dry_run:
            s.remove(rel)
    for digest in list(s.iter_objects()):
        path = s.object_path(digest)
        if digest in live_objects or now - _mtime(s, path) < grace:
            continue
        out.objects.append(s.relpath(path))
        out.bytes += _size(s, path)
        if not dry_run:
            s.remove(s.relpath(path))
    for rel in s.list("rollout-steps"):  # reports of rollout steps run as their own tasks
        key = rel.split("/")[1] if rel.count("/") == 2 else None
        if key and key not in live_keys and now - _mtime(s, s.path(rel)) >= grace:
            out.entries.append(rel)
            if not dry_run:
                s.remove(rel)
    for path in s.stale_temp_files(grace):
        out.temp_files.append(path)
        if not dry_run:
            os.remove(path)


def _step_keys(s, keep: int, grace: float, out: Collected, dry_run: bool) -> set[str]:
    """The keys of each node's newest `keep` step records (as for runs: several DAGs of one
    spec, or overlapping runs, each keep theirs); older records past the grace go."""
    keys, now = set(), time.time()
    for paths in records.step_records(s).values():
        aged = sorted(((_mtime(s, s.path(rel)), rel) for rel in paths), reverse=True)
        for n, (mtime, rel) in enumerate(aged):
            if n < keep or now - mtime < grace:
                keys.add(rel.rsplit("/", 1)[1][:-5])
                continue
            out.entries.append(rel)
            if not dry_run:
                s.remove(rel)
    return keys




def _mtime(store, path: str) -> float:
    try:
        if store.local:
            return os.stat(path).st_mtime
        info = store.fs.info(path)
        stamp = info.get("mtime") or info.get("LastModified") or info.get("created")
        return stamp.timestamp() if hasattr(stamp, "timestamp") else float(stamp or 0)
    except (OSError, ValueError, TypeError):
        return 0.0


def _size(store, path: str) -> int:
    try:
        return os.stat(path).st_size if store.local else int(store.fs.info(path).get("size") or 0)
    except OSError:
        return 0
