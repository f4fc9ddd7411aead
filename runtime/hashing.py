"""Content digests: BLAKE3 everywhere (artifacts, cache keys, source files).

Digests are 64 lowercase hex characters.  Large inputs use BLAKE3's own threads.
"""

from __future__ import annotations

import json
from typing import Any

import blake3

_THREADED_FROM = 1 << 20  # below 1 MiB the thread pool costs more than it saves
CHUNK = 8 << 20


def digest_bytes(data: bytes | memoryview) -> str:
    threads = blake3.blake3.AUTO if len(data) >= _THREADED_FROM else 1
    return blake3.blake3(data, max_threads=threads).hexdigest()


def digest_file(path: str) -> str:
    """Digest of a local file, memory-mapped and hashed on all cores."""
    return blake3.blake3(max_threads=blake3.blake3.AUTO).update_mmap(path).hexdigest()


def digest_stream(stream) -> str:
    """Digest of a file-like object (remote files), read in 8 MiB chunks."""
    h = blake3.blake3(max_threads=blake3.blake3.AUTO)
    while chunk := stream.read(CHUNK):
        h.update(chunk)
    return h.hexdigest()


def canonical_json(data: Any) -> str:
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def digest_json(data: Any) -> str:
    return digest_bytes(canonical_json(data).encode())


def short(digest) -> str:
    """The first 8 hex digits, as messages show a digest (other values as themselves)."""
    return digest[:8] if isinstance(digest, str) else str(digest)
