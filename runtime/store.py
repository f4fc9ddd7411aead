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
import secrets
import time
from dataclasses import dataclass
from typing import Any, Iterator

from .errors import CorruptArtifact, StoreError
from .hashing import canonical_json, digest_bytes

TMP_PREFIX = ".tmp-"


@dataclass(frozen=True)
class ObjectInfo:
    digest: str
    size: int


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
        return Store(self._join("namespaces", name) if self.local else f"{self.url.rstrip('/')}/namespaces/{name}")

    # --- paths -------------------------------------------------------------------------

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts]) if self.root != "/" else "/" + "/".join(parts)

    def object_path(self, digest: str) -> str:
        return self._join("objects", digest[:2], digest[2:])

    def entry_path(self, key: str) -> str:
        return self._join("cache", key[:2], key + ".json")

    def path(self, relpath: str) -> str:
        return self._join(*relpath.split("/"))

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

    def put_entry(self, key: str, entry: dict) -> None:
        self._write(self.entry_path(key), (canonical_json(entry) + "\n").encode())

    def get_entry(self, key: str) -> dict | None:
        raw = self._read(self.entry_path(key))
        return None if raw is None else _loads(raw, f"cache entry {key[:12]}…")

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
        prefix = self.root.rstrip("/") + "/"
        rel = [p[len(prefix):] if p.startswith(prefix) else p.lstrip("/") for p in found]
        return sorted(r for r in rel if not os.path.basename(r).startswith(TMP_PREFIX))

    def iter_entries(self) -> Iterator[tuple[str, dict | None]]:
        for rel in self.list("cache"):
            key = os.path.basename(rel)[:-5]
            try:
                yield key, self.get_entry(key)
            except StoreError:
                yield key, None

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
