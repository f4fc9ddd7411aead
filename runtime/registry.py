"""The file-backed model registry inside the store.

One JSON record per model version at `registry/<pipeline>/<model>/<version>.json`.
The version id is the first 12 hex digits of the model artifact's digest, so the
same trained model is the same version on every target and re-registering is a
no-op.  Stages: none -> candidate -> canary -> production -> archived.

"Production" for a gate means the model a candidate must beat: the version in
production, unless that IS the candidate (it was promoted by an earlier run of
the same inputs), in which case the version it replaced.  That keeps a re-run of
an unchanged pipeline identical to the first run.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import os

from .errors import StoreError

STAGES = ("none", "candidate", "canary", "production", "archived")
FIELDS = ("pipeline", "model", "version", "digest", "stage")


def record_problem(record, relpath: str) -> str | None:
    """What makes `record` (read from `relpath`) not a registry record, or None."""
    if not isinstance(record, dict):
        return f"a JSON {type(record).__name__}, not an object"
    missing = [k for k in FIELDS if not isinstance(record.get(k), str)]
    if missing:
        return f"'{missing[0]}' is not a string"
    if relpath != f"registry/{record['pipeline']}/{record['model']}/{record['version']}.json":
        return "its pipeline, model and version do not match its path"
    if record["version"] != version_of(record["digest"]) or record["stage"] not in STAGES:
        return "its version is not its digest's, or its stage is unknown"
    if not isinstance(record.get("history", []), list):
        return "its history is not a list"
    return None


def version_of(digest: str) -> str:
    return digest[:12]


class Registry:
    def __init__(self, store, read_only: bool = False):
        self.store, self.read_only = store, read_only

    def _rel(self, pipeline: str, model: str, version: str = "") -> str:
        base = f"registry/{pipeline}/{model}"
        return f"{base}/{version}.json" if version else base

    def get(self, pipeline: str, model: str, version: str) -> dict | None:
        return self._read(self._rel(pipeline, model, version))

    def _read(self, relpath: str) -> dict | None:
        """A record; StoreError naming the file when it is damaged."""
        try:
            record = self.store.read_json(relpath)
        except StoreError as exc:
            problem: str | None = exc.message
        else:
            problem = None if record is None else record_problem(record, relpath)
        if problem:
            raise StoreError(f"registry record {relpath} is damaged: {problem}",
                             "run `pipespec cache verify --delete` to remove it (the next run registers "
                             "the model again)")
        return record

    def versions(self, pipeline: str, model: str) -> list[dict]:
        records = []
        for rel in self.store.list(self._rel(pipeline, model)):
            if rel.endswith(".json"):
                record = self._read(rel)
                if record:
                    records.append(record)
        return sorted(records, key=lambda r: (r.get("registered_at", ""), r["version"]))

    def models(self) -> list[tuple[str, str]]:
        found = {tuple(rel.split("/")[1:3]) for rel in self.store.list("registry") if rel.count("/") >= 3}
        return sorted(found)

    def production(self, pipeline: str, model: str, exclude_digest: str | None = None) -> dict | None:
        """The version a candidate with `exclude_digest` is compared against (see module doc)."""
        current = [r for r in self.versions(pipeline, model) if r["stage"] == "production"]
        if not current:
            return None
        record = max(current, key=lambda r: r.get("promoted_at", ""))
        if exclude_digest and record["digest"] == exclude_digest:
            replaced = record.get("replaced")
            return self.get(pipeline, model, replaced) if replaced else None
        return record

    def register(self, pipeline: str, model: str, *, digest: str, **facts) -> dict:
        """Record a trained model (stage `none`); an existing version is returned unchanged."""
        version = version_of(digest)
        with self._locked(pipeline, model):
            existing = self.get(pipeline, model, version)
            if existing:
                return existing
            record = {"pipeline": pipeline, "model": model, "version": version, "digest": digest,
                      "stage": "none", "registered_at": _now(), "history": [], **facts}
            self._write(record)
            return record

    def set_stage(self, pipeline: str, model: str, version: str, stage: str, note: str = "") -> dict:
        assert stage in STAGES, stage
        with self._locked(pipeline, model):
            record = self.get(pipeline, model, version)
            if record is None:
                raise KeyError(f"{pipeline}/{model}@{version} is not registered")
            return self._set(record, stage, note)

    def promote(self, pipeline: str, model: str, version: str, note: str = "") -> dict:
        """Make `version` production; the previous production version is archived."""
        with self._locked(pipeline, model):
            record = self.get(pipeline, model, version)
            if record is None:
                raise KeyError(f"{pipeline}/{model}@{version} is not registered")
            previous = [r for r in self.versions(pipeline, model)
                        if r["stage"] == "production" and r["version"] != version]
            for old in previous:
                self._set(old, "archived", f"replaced by {version}")
            if record["stage"] != "production":
                record["replaced"] = previous[-1]["version"] if previous else None
                record["promoted_at"] = _now()
            return self._set(record, "production", note)

    def _set(self, record: dict, stage: str, note: str) -> dict:
        if self.read_only:
            return record
        record = dict(record, stage=stage)
        record["history"] = [*record.get("history", []), {"stage": stage, "at": _now(), "note": note}]
        self._write(record)
        return record

    def _write(self, record: dict) -> None:
        if not self.read_only:
            self.store.write_json(self._rel(record["pipeline"], record["model"], record["version"]), record)

    @contextlib.contextmanager
    def _locked(self, pipeline: str, model: str):
        """Serialize read-modify-write of one model's records between processes (local stores)."""
        if not self.store.local or self.read_only:
            yield
            return
        import fcntl
        directory = self.store.path(self._rel(pipeline, model))
        os.makedirs(directory, exist_ok=True)
        with open(os.path.join(directory, ".lock"), "a") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def _now() -> str:
    return _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
