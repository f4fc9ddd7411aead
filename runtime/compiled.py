"""The compile cache of `pipespec run` and `plan`: a spec's IR, reused while nothing the
compiler read has changed, so a fully cached run never imports the compiler (pydantic,
lark, the YAML loader, scikit-learn).

key = BLAKE3 of the spec's bytes and absolute path, the `--param` overrides (in the
order given: the last value of a repeated name wins), and what the compiler is: the
versions of pipespec, scikit-learn (estimator checks) and pyarrow (schema inference),
the IR schema version, and the size and mtime of the compiler's own source files.

The entry, `<store>/state/compiled/<key>.json` (a remote store's entries live in the
user cache directory), holds the canonical IR JSON, the warnings the compile printed,
the stat (size, mtime_ns, inode) of every local data file the compiler read (the files
of sources whose schema it inferred or compared with the declared one, W0404; None for
one that did not exist) and a MAC of all that under this user's key (localkey.py), so
damage that still parses, and an entry forged by another writer of the store, is a
miss: `run` never executes an IR that this user's compiler did not derive from the
spec.  A hit needs every stat to match.  Files modified
less than `RACY_SECONDS` before the compile began are not trusted to be identified by
their stat (see statcache.py), so such a compile is not cached.  A spec with errors
is never cached; an entry that cannot be read or does not match is a miss.
"""

from __future__ import annotations

import json
import os
import stat
from dataclasses import dataclass
from functools import lru_cache

from pipespec.compiler import ir
from pipespec.compiler.diagnostics import Diagnostic, Span

from . import hashing, keys
from .localkey import mac
from .statcache import RACY_SECONDS
from .store import write_atomic

FORMAT = 1
KEEP = 64  # entries kept per directory; older ones are removed when a new one is written


@dataclass
class Compiled:
    """A compile result from the cache: what `pipespec run` uses of `compiler.lower.Result`."""

    ir: ir.Graph
    diagnostics: list[Diagnostic]  # warnings only: a spec with errors is never cached
    file: str
    text: str

    ok = True
    errors: tuple = ()


def location(store) -> str:
    from .store import state_location
    return state_location(store, "compiled")


class CompileCache:
    def __init__(self, directory: str):
        self.directory = directory

    def get(self, spec: str, overrides) -> Compiled | None:
        """The cached compile of `spec` with `overrides`, or None (a miss)."""
        raw = _read(spec)
        if raw is None:
            return None
        key = spec_key(raw, spec, overrides)
        try:
            with open(self._path(key), "rb") as fh:
                entry = json.loads(fh.read())
            if entry.get("format") != FORMAT or entry.get("key") != key or not _intact(entry) \
                    or not _files_match(entry["files"]):
                return None
            return Compiled(ir.Graph.from_json(entry["ir"]), _diagnostics(entry, spec), spec,
                            raw.decode("utf-8-sig"))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None  # missing, damaged or from another version: compile again

    def put(self, spec: str, overrides, result, started_ns: int) -> bool:
        """Remember a successful compile that began at `started_ns` (time.time_ns());
        False when it is not safe to (errors, a spec or data file changed meanwhile)."""
        raw = _read(spec)
        if result.ir is None or raw is None or _decode(raw) != result.text:
            return False
        files = read_files(result.ir, os.path.dirname(os.path.abspath(spec)))
        signatures = [[path, _signature(path)] for path in files]
        if any(sig is not None and sig[1] > started_ns - RACY_SECONDS * 1e9 for _, sig in signatures):
            return False
        key = spec_key(raw, spec, overrides)
        entry = {"format": FORMAT, "key": key, "file": result.file, "ir": result.ir.to_json(),
                 "diagnostics": [d.to_json() for d in result.diagnostics], "files": signatures}
        entry["digest"] = _content_digest(entry)
        if entry["digest"] is None:
            return False  # no key to sign it with: the cache is off
        try:
            write_atomic(self._path(key), (hashing.canonical_json(entry) + "\n").encode())
            self._prune(keep=self._path(key))
        except OSError:
            return False  # the cache only saves time
        return True

    def damaged(self) -> list[tuple[str, str]]:
        """(path, why) of every entry that is not one this user wrote intact (cache verify)."""
        try:
            names = sorted(n for n in os.listdir(self.directory) if n.endswith(".json"))
        except OSError:
            return []
        found = []
        for name in names:
            path = os.path.join(self.directory, name)
            try:
                with open(path, "rb") as fh:
                    entry = json.loads(fh.read())
                ok = isinstance(entry, dict) and entry.get("key") == name[:-5] and _intact(entry)
            except (OSError, ValueError):
                ok = False
            if not ok:
                found.append((path, "damaged, or not written by this user's pipespec"))
        return found

    def _path(self, key: str) -> str:
        return os.path.join(self.directory, f"{key}.json")

    def _prune(self, keep: str) -> None:
        names = [n for n in os.listdir(self.directory) if n.endswith(".json")]
        if len(names) <= KEEP:
            return
        paths = sorted((os.path.join(self.directory, n) for n in names), key=_mtime)
        for path in paths[:len(paths) - KEEP]:
            if path != keep:
                try:
                    os.remove(path)
                except OSError:
                    pass


def spec_key(raw: bytes, spec: str, overrides) -> str:
    return hashing.digest_json({
        "format": FORMAT,
        "spec": hashing.digest_bytes(raw),
        "path": os.path.abspath(spec),
        "params": list(overrides),
        "schema_version": ir.SCHEMA_VERSION,
        "versions": {d: keys.dist_version(d) for d in ("pipespec", "scikit-learn", "pyarrow")},
        "compiler": _compiler_stamp(),
    })


def read_files(graph: ir.Graph, base_dir: str) -> list[str]:
    """The local data files compiling `graph` read (to infer a schema or compare it with
    the declared one), resolved as the compiler resolves them: against the spec's directory."""
    found = []
    for node in graph.nodes:
        path = getattr(node, "path", None) if node.kind == "Source" else None
        if not path or node.format == "sql" or "://" in path and not path.startswith("file://"):
            continue
        full = os.path.join(base_dir, path.removeprefix("file://"))
        if full not in found:
            found.append(full)
    return found


def _signature(path: str) -> list[int] | None:
    """[size, mtime_ns, inode] of a regular file; None when there is none (the compiler
    then read nothing, and a file appearing must invalidate the entry)."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return [st.st_size, st.st_mtime_ns, st.st_ino] if stat.S_ISREG(st.st_mode) else None


def _content_digest(entry: dict) -> str | None:
    return mac(hashing.canonical_json({k: v for k, v in entry.items() if k != "digest"}).encode())


def _intact(entry: dict) -> bool:
    """The entry is what this user wrote (not damaged in a way JSON still parses, not forged)."""
    digest = _content_digest(entry)
    return digest is not None and entry.get("digest") == digest


def _files_match(files: list) -> bool:
    return all(_signature(path) == sig for path, sig in files)


def _diagnostics(entry: dict, spec: str) -> list[Diagnostic]:
    """The stored warnings, their file shown as the spec is named this time."""
    out = []
    for d in entry["diagnostics"]:
        span = None
        if d["line"] is not None:
            file = spec if d["file"] == entry["file"] else d["file"]
            span = Span(file, d["line"], d["col"], d["end_line"], d["end_col"])
        out.append(Diagnostic(d["code"], d["message"], span, d["hint"], d["severity"]))
    return out


def _read(spec: str) -> bytes | None:
    try:
        with open(spec, "rb") as fh:
            return fh.read()
    except OSError:
        return None  # not found, a directory, ...: the compiler reports it


def _decode(raw: bytes) -> str | None:
    try:
        return raw.decode("utf-8-sig")  # as compiler.loader.decode_source does
    except UnicodeDecodeError:
        return None


@lru_cache(maxsize=1)
def _compiler_stamp() -> tuple:
    """(name, size, mtime_ns) of the compiler's source files: an edited compiler (in a
    development install, where the version stays the same) invalidates every entry."""
    directory = os.path.dirname(ir.__file__)
    return tuple((name, *_size_mtime(os.path.join(directory, name)))
                 for name in sorted(os.listdir(directory)) if name.endswith((".py", ".lark")))


def _size_mtime(path: str) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns


def _mtime(path: str) -> float:
    try:
        return os.stat(path).st_mtime
    except OSError:
        return 0.0
