"""This user's secret key for the local bookkeeping a run trusts without re-deriving it.

The compile cache (spec -> IR) and the source stat cache (file stat -> digest) live in
the store, where anyone who can write the store could forge them: an IR other than the
spec's, or the digest of an older version of a data file.  Their entries carry a keyed
BLAKE3 MAC under a key that only this user can read (`<user cache dir>/pipespec/local.key`,
mode 0600), so a forged or damaged entry is a miss.  Without a usable key, neither
cache is used.
"""

from __future__ import annotations

import os
import secrets
from functools import lru_cache

import blake3

from .store import state_location


def local_key() -> bytes | None:
    """The 32-byte key (created on first use), or None when it cannot be read or made."""
    return _key_at(state_location(None, "local.key"))


@lru_cache(maxsize=4)
def _key_at(path: str) -> bytes | None:
    """Read once per process and location (the location follows XDG_CACHE_HOME)."""
    try:
        with open(path, "rb") as fh:
            key = fh.read()
        if len(key) == 32:
            return key
    except OSError:
        pass
    return _create(path)


def _create(path: str) -> bytes | None:
    key = secrets.token_bytes(32)
    try:
        os.makedirs(os.path.dirname(path), exist_ok=True)
        tmp = f"{path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            fh.write(key)
        try:
            os.link(tmp, path)  # first writer wins; a concurrent creator reads the winner's key
        except FileExistsError:
            pass
        finally:
            os.remove(tmp)
        with open(path, "rb") as fh:
            key = fh.read()
    except OSError:
        return None
    return key if len(key) == 32 else None


def mac(data: bytes) -> str | None:
    """The keyed digest of `data`, or None without a key."""
    key = local_key()
    return None if key is None else blake3.blake3(data, key=key).hexdigest()
