"""Source-file digests memoized by file stat, so an unchanged file is never read twice.

A small SQLite database (WAL mode: concurrent readers and writers from several
processes) maps a path to the stat it had when hashed (size, mtime_ns, inode for
local files; size and ETag/mtime for remote ones) and the BLAKE3 digest of its bytes.
A lookup whose stat matches returns the digest without opening the file.

"Racily clean" files (git's term) are not remembered: a file modified less than
`RACY_SECONDS` before it is hashed could be rewritten within the same timestamp
tick with the same size and keep its stat, so it is hashed again on each use
until its modification time is that old.

Each row's digest carries a MAC under this user's key (localkey.py): a row damaged in
place, or forged by another writer of the store (the digest of an older version of
the file, which would reuse that version's cached outputs), is a miss.
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from contextlib import closing
from typing import Callable

from . import hashing
from .localkey import mac

RACY_SECONDS = 2.0
_SCHEMA = """CREATE TABLE IF NOT EXISTS stat (
    path TEXT PRIMARY KEY, size INTEGER NOT NULL, version TEXT NOT NULL, digest TEXT NOT NULL)"""


def location(store) -> str:
    from .store import state_location
    return state_location(store, "stat.sqlite")


class StatCache:
    def __init__(self, db_path: str):
        self.db_path = db_path

    def file_digest(self, path: str) -> str:
        """The digest of a local file (absolute path), read only when its stat changed."""
        st = os.stat(path)
        version = f"{st.st_mtime_ns}:{st.st_ino}"
        trusted = time.time_ns() - st.st_mtime_ns > RACY_SECONDS * 1e9
        return self.digest(path, st.st_size, version, trusted, lambda: hashing.digest_file(path))

    def remote_digest(self, fs, path: str, url: str) -> str:
        """The digest of a remote file: memoized by size and ETag (or modification time)
        when the filesystem reports one, else hashed from a stream every time."""
        info = fs.info(path)
        version = _remote_version(info)
        if version is None:
            return _stream_digest(fs, path)
        return self.digest(url, int(info.get("size") or 0), version, True,
                           lambda: _stream_digest(fs, path))

    def digest(self, key: str, size: int, version: str, trusted: bool,
               compute: Callable[[], str]) -> str:
        """The memoized digest of `key` at (size, version), else `compute()` (remembered when
        `trusted`, i.e. when the stat is safe to identify the content by)."""
        found = self._lookup(key, size, version)
        if found is not None:
            return found
        digest = compute()
        if trusted:
            self._remember(key, size, version, digest)
        return digest

    # The cache only saves reading: when its database cannot be used (locked for too long,
    # read-only, damaged), digests are computed as if nothing were cached.

    def _lookup(self, key: str, size: int, version: str) -> str | None:
        try:
            with closing(self._connect()) as db:
                row = db.execute("SELECT digest FROM stat WHERE path = ? AND size = ? "
                                 "AND version = ?", (key, size, version)).fetchone()
        except (sqlite3.Error, OSError):
            _READY.discard(self.db_path)  # e.g. the database was deleted: set it up again
            return None
        if not row or not isinstance(row[0], str):
            return None
        digest, _, tag = row[0].partition(".")
        return digest if tag and tag == _mac(key, size, version, digest) else None

    def _remember(self, key: str, size: int, version: str, digest: str) -> None:
        tag = _mac(key, size, version, digest)
        if tag is None:
            return  # no key to sign the row with: nothing is remembered
        try:
            with closing(self._connect()) as db:
                db.execute("INSERT OR REPLACE INTO stat VALUES (?, ?, ?, ?)",
                           (key, size, version, f"{digest}.{tag}"))
        except (sqlite3.Error, OSError):
            _READY.discard(self.db_path)

    def _connect(self) -> sqlite3.Connection:
        os.makedirs(os.path.dirname(self.db_path), exist_ok=True)
        db = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)  # autocommit
        try:
            db.execute("PRAGMA synchronous=NORMAL")
            if self.db_path not in _READY:
                with _SETUP_LOCK:
                    _setup(db)
                    _READY.add(self.db_path)
        except BaseException:
            db.close()
            raise
        return db


def _mac(key: str, size: int, version: str, digest: str) -> str | None:
    return mac("\0".join((key, str(size), version, digest)).encode())


_READY: set[str] = set()  # databases set up by this process
_SETUP_LOCK = threading.Lock()


def _setup(db: sqlite3.Connection) -> None:
    """WAL mode and the table, retried: switching the journal mode does not wait for a
    concurrent first writer the way ordinary statements do."""
    for attempt in range(40):
        try:
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode=WAL")
            db.execute(_SCHEMA)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) and "busy" not in str(exc) or attempt == 39:
                raise
            time.sleep(0.01 * (attempt + 1))


_VERSION_KEYS = ("ETag", "etag", "md5Hash", "generation", "version_id", "mtime", "LastModified",
                 "last_modified", "updated", "modified")


def _remote_version(info: dict) -> str | None:
    for key in _VERSION_KEYS:
        if info.get(key) is not None:
            return f"{key}={info[key]}"
    return None


def _stream_digest(fs, path: str) -> str:
    with fs.open(path, "rb") as stream:
        return hashing.digest_stream(stream)
