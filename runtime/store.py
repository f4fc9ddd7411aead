"""The content-addressed store: artifacts by digest, cache entries by key, run records.

Layout under the store root (a local directory or any fsspec URL)::

    objects/ab/cdef…       artifact bytes, named by their BLAKE3 digest
    cache/ab/abcd….json    cache entries: node key -> output digest (+ why the key is what it is)
    runs/<pipeline>/…json  run records
    registry/<pipeline>/<model>/<version>.json
    state/                 local-only bookkeeping (the source stat cache)

Every write is atomic.  Locally: a temp file in the same directory, fsync, rename,
so a reader sees the old state or the new one and a kill -9 leaves at most a
`.tmp-*` file that `gc` removes.  Remote object stores make single PUTs atomic
themselves, so remote writes go straight to the final name.  An entry is written
only after the objects it names, so a visible entry never points at nothing.

Local stores (a path or a `file://` URL) use `os` directly; fsspec, which costs
~0.1 s to import, is imported only for other URLs.
"""

from __future__ import annotations

import json
import os
import re
import secrets
import time
from dataclasses import dataclass, field
from typing import Any, Iterator

from .errors import CorruptArtifact, StoreError
from .hashing import canonical_json, digest_bytes

TMP_PREFIX = ".tmp-"


_HEX64 = re.compile(r"[0-9a-f]{64}")
FORMATS = ("arrow", "skops", "json")  # artifacts.TABLE, MODEL, JSON (kept light: no import)


@dataclass(frozen=True)
class ObjectInfo:
    digest: str
    size: int


class DamagedEntry(StoreError):
    """A cache entry that cannot be used: unreadable, not JSON, or not an entry's shape.
    The runner treats it as a miss and overwrites it."""


@dataclass(frozen=True)
class CacheEntry:
    """What `cache/<key>.json` holds: the node's output digest and why its key is what it is."""

    key: str
    kind: str
    format: str
    digest: str
    size: int
    rows: int | None = None
    summary: dict = field(default_factory=dict)
    components: dict = field(default_factory=dict)

    def to_json(self) -> dict:
        return {"key": self.key, "kind": self.kind, "format": self.format, "digest": self.digest,
                "size": self.size, "rows": self.rows, "summary": self.summary, "components": self.components}

    @classmethod
    def from_json(cls, data: Any, key: str) -> "CacheEntry":
        """The entry, or DamagedEntry naming what is wrong with it."""
        problem = _entry_problem(data, key)
        if problem:
            raise DamagedEntry(f"cache entry {key[:12]}… is damaged: {problem}",
                               "it is recomputed and overwritten by the next run")
        return cls(**{k: data.get(k) for k in ("key", "kind", "format", "digest", "size", "rows")},
                   summary=data.get("summary") or {}, components=data.get("components") or {})


def _entry_problem(data: Any, key: str) -> str | None:
    if not isinstance(data, dict):
        return f"a JSON {type(data).__name__}, not an object"
    checks = (
        (data.get("key") == key, "its key is not its file name"),
        (isinstance(data.get("kind"), str), "no node kind"),
        (data.get("format") in FORMATS, "no artifact format"),
        (isinstance(data.get("digest"), str) and bool(_HEX64.fullmatch(data["digest"])), "no output digest"),
        (_is_int(data.get("size")), "no output size"),
        (data.get("rows") is None or _is_int(data["rows"]), "rows is not a count"),
        (isinstance(data.get("summary") or {}, dict), "summary is not an object"),
        (isinstance(data.get("components") or {}, dict), "components is not an object"),
    )
    return next((problem for ok, problem in checks if not ok), None)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def check_segments(relpath: str) -> list[str]:
    """The segments of a store-relative path; StoreError for one that could leave the store
    (`..`, `.`, an absolute path, an empty segment, a backslash or a NUL)."""
    parts = relpath.split("/")
    bad = [p for p in parts if p in ("", ".", "..") or "\\" in p or "\0" in p]
    if bad or not relpath:
        raise StoreError(f"refusing the store path {relpath!r}: it has a {bad[0] if bad else 'no'!r} "
                         "segment (a path must stay inside the store)",
                         "the IR or a record names a path outside the store: recompile it from the spec")
    return parts


def check_hex(name: str, what: str) -> str:
    if not _HEX64.fullmatch(name):
        raise StoreError(f"refusing {what} {name[:80]!r}: not a 64-digit hex digest")
    return name


class Store:
    """One store root.  `namespace(name)` gives an isolated sub-store (used by sample runs)."""

    def __init__(self, url: str):
        self.url = str(url)
        path = local_path(self.url)
        if path is not None:
            self.local, self._fs, self.root = True, None, path
            return
        try:
            import fsspec
            from fsspec.implementations.local import LocalFileSystem
            self._fs, self.root = fsspec.core.url_to_fs(self.url)
        except (ImportError, ValueError) as exc:
            raise StoreError(f"cannot open store {self.url}: {exc}",
                             "install the fsspec driver for that protocol (e.g. s3fs for s3://)") from None
        self.local = isinstance(self._fs, LocalFileSystem)
        self.root = self.root.rstrip("/") or "/"

    @property
    def fs(self):
        """The fsspec filesystem (created on first use for a local store)."""
        if self._fs is None:
            from fsspec.implementations.local import LocalFileSystem
            self._fs = LocalFileSystem()
        return self._fs

    def __repr__(self) -> str:
        return f"Store({self.url!r})"

    def namespace(self, name: str) -> "Store":
        if len(check_segments(name)) != 1:
            raise StoreError(f"refusing the namespace {name!r}: it must be one path segment")
        return Store(self._join("namespaces", name) if self.local else f"{self.url.rstrip('/')}/namespaces/{name}")

    # --- paths -------------------------------------------------------------------------

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts]) if self.root != "/" else "/" + "/".join(parts)

    def object_path(self, digest: str) -> str:
        check_hex(digest, "object")
        return self._join("objects", digest[:2], digest[2:])

    def entry_path(self, key: str) -> str:
        check_hex(key, "cache key")
        return self._join("cache", key[:2], key + ".json")

    def path(self, relpath: str) -> str:
        return self._join(*check_segments(relpath))

    # --- raw atomic IO -----------------------------------------------------------------

    def _write(self, path: str, data: bytes) -> None:
        try:
            if self.local:
                _atomic_local_write(path, data)
            else:
                self.fs.pipe_file(path, bytes(data) if isinstance(data, memoryview) else data)
        except OSError as exc:
            from .errors import map_exception
            raise map_exception(exc, f"writing {path}") from None

    def _read(self, path: str) -> bytes | None:
        try:
            if self.local:
                with open(path, "rb") as f:
                    return f.read()
            return self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from None

    def _exists(self, path: str) -> bool:
        return os.path.exists(path) if self.local else self.fs.exists(path)

    # --- objects -----------------------------------------------------------------------

    def put(self, data: bytes | memoryview) -> ObjectInfo:
        """Store bytes under their digest (a no-op when already present)."""
        digest = digest_bytes(data)
        path = self.object_path(digest)
        if not self._exists(path):
            self._write(path, data)
        return ObjectInfo(digest, len(data))

    def get(self, digest: str, what: str = "artifact") -> bytes:
        """The bytes of an object, verified against its digest."""
        data = self._read(self.object_path(digest))
        if data is None:
            raise StoreError(f"{what} {digest[:12]}… is missing from the store {self.url}",
                             "run the pipeline again to recompute it")
        actual = digest_bytes(data)
        if actual != digest:
            raise CorruptArtifact(f"{what} {digest[:12]}… ({self.object_path(digest)})", digest, actual)
        return data

    def has(self, digest: str) -> bool:
        return self._exists(self.object_path(digest))

    # --- JSON documents (entries, records, registry) --------------------------------

    def write_bytes(self, relpath: str, data: bytes) -> None:
        self._write(self.path(relpath), data)

    def read_bytes(self, relpath: str) -> bytes | None:
        return self._read(self.path(relpath))

    def write_json(self, relpath: str, data: Any) -> None:
        self._write(self.path(relpath), (canonical_json(data) + "\n").encode())

    def read_json(self, relpath: str) -> Any | None:
        raw = self._read(self.path(relpath))
        return None if raw is None else _loads(raw, relpath)

    def put_entry(self, entry: CacheEntry) -> None:
        self._write(self.entry_path(entry.key), (canonical_json(entry.to_json()) + "\n").encode())

    def get_entry(self, key: str) -> CacheEntry | None:
        """The entry of `key`, None when there is none; DamagedEntry when it cannot be used."""
        try:
            raw = self._read(self.entry_path(key))
            data = None if raw is None else json.loads(raw)
        except (StoreError, ValueError) as exc:
            reason = exc.message if isinstance(exc, StoreError) else "not valid JSON"
            raise DamagedEntry(f"cache entry {key[:12]}… is damaged: {reason}",
                               "it is recomputed and overwritten by the next run") from None
        return None if raw is None else CacheEntry.from_json(data, key)

    def object_state(self, entry: CacheEntry, verify: bool = False) -> str | None:
        """Why the object an entry names cannot be reused ("missing", "corrupt"), or None.
        A size that differs from the entry's is corrupt; `verify` re-hashes the bytes too."""
        path = self.object_path(entry.digest)
        try:
            size = os.stat(path).st_size if self.local else self.fs.info(path).get("size")
        except FileNotFoundError:
            return "missing"
        except OSError as exc:
            raise StoreError(f"cannot read {path}: {exc}") from None
        if size != entry.size:
            return "corrupt"
        if verify and digest_bytes(self._read(path) or b"") != entry.digest:
            return "corrupt"
        return None

    def discard(self, digest: str) -> None:
        """Remove a corrupt object, so that recomputing it writes it anew."""
        self.remove(self.relpath(self.object_path(digest)))

    def relpath(self, path: str) -> str:
        """A full path under the store's root as the store-relative path its methods take."""
        prefix = self.root.rstrip("/") + "/"
        return path[len(prefix):] if path.startswith(prefix) else path.lstrip("/")

    def list(self, relpath: str) -> list[str]:
        """Relative paths of the files under a directory of the store (sorted; temp files skipped)."""
        base = self.path(relpath)
        try:
            if self.local:
                found = [os.path.join(d, f) for d, _, files in os.walk(base) for f in files]
            else:
                found = self.fs.find(base) if self.fs.exists(base) else []
        except OSError as exc:
            raise StoreError(f"cannot list {base}: {exc}") from None
        rel = [self.relpath(p) for p in found]
        return sorted(r for r in rel if not os.path.basename(r).startswith(TMP_PREFIX))

    def iter_entries(self) -> Iterator[tuple[str, str, CacheEntry | DamagedEntry]]:
        """(relative path, key, entry or why it is damaged) of every file under cache/."""
        for rel in self.list("cache"):
            key = os.path.basename(rel).removesuffix(".json")
            if not _HEX64.fullmatch(key) or rel != f"cache/{key[:2]}/{key}.json":
                yield rel, key, DamagedEntry(f"{rel} is not a cache entry's name")
                continue
            try:
                yield rel, key, self.get_entry(key) or DamagedEntry(f"{rel} vanished")
            except DamagedEntry as exc:
                yield rel, key, exc

    def iter_objects(self) -> Iterator[str]:
        for rel in self.list("objects"):
            parts = rel.split("/")
            yield parts[-2] + parts[-1]

    def remove(self, relpath: str) -> None:
        try:
            if self.local:
                os.remove(self.path(relpath))
            else:
                self.fs.rm_file(self.path(relpath))
        except FileNotFoundError:
            pass

    def stale_temp_files(self, older_than: float = 3600.0) -> list[str]:
        """Temp files left by killed writers (local stores only)."""
        if not self.local or not os.path.isdir(self.root):
            return []
        now, stale = time.time(), []
        for d, _, files in os.walk(self.root):
            for f in files:
                p = os.path.join(d, f)
                if f.startswith(TMP_PREFIX) and now - _mtime(p) > older_than:
                    stale.append(p)
        return sorted(stale)


def local_path(url: str) -> str | None:
    """The absolute directory of a local store URL (a path or `file://…`), else None."""
    path = url.removeprefix("file://")
    if "://" in path or "::" in path:
        return None
    return os.path.abspath(os.path.expanduser(path)).rstrip("/") or "/"


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except FileNotFoundError:
        return time.time()


def _loads(raw: bytes, what: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        raise StoreError(f"{what} is not valid JSON (damaged store?)",
                         "run `pipespec cache verify --delete`") from None


def write_atomic(path: str, data: bytes | memoryview) -> None:
    """Write a local file so readers see the old content or the new one, never a part."""
    _atomic_local_write(path, data)


def _atomic_local_write(path: str, data: bytes | memoryview) -> None:
    directory = os.path.dirname(path)
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f"{TMP_PREFIX}{os.getpid()}-{secrets.token_hex(6)}-{os.path.basename(path)}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.remove(tmp)
        except FileNotFoundError:
            pass
        raise
    _fsync_dir(directory)


def _fsync_dir(directory: str) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def state_location(store, name: str) -> str:
    """Where local bookkeeping `name` lives: `<store>/state/<name>` for a local store, the
    user cache directory (XDG_CACHE_HOME or ~/.cache) `pipespec/<name>` for a remote one."""
    if store is not None and getattr(store, "local", False):
        return store.path(f"state/{name}")
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "pipespec", name)
