"""Fitted estimators as deterministic, safely loadable skops files.

skops names zip members and objects after `id()` and stamps members with the
current time, so its bytes differ from run to run.  `dumps` renumbers both in
document order and re-packs the zip with fixed metadata, so the same fitted
model always has the same digest.  `loads` never unpickles and refuses any type
outside scikit-learn and numpy (E0805).
"""

from __future__ import annotations

import importlib
import io
import json
import zipfile
from typing import Any

import numpy as np
import skops.io as sio

from .errors import RunError

SCHEMA = "schema.json"
TRUSTED_PREFIXES = ("sklearn.", "numpy.")
_DATE = (1980, 1, 1, 0, 0, 0)


def dumps(estimator: Any) -> bytes:
    """The estimator as skops bytes that depend only on its fitted state."""
    with zipfile.ZipFile(io.BytesIO(sio.dumps(estimator)), "r") as raw:
        schema = json.loads(raw.read(SCHEMA))
        renames = _renumber(schema)
        members = {new: _zero_padding(raw.read(old)) if new.endswith(".npy") else raw.read(old)
                   for old, new in renames.items()}
    members[SCHEMA] = json.dumps(schema, indent=2).encode()
    return _pack(members)


def _renumber(schema: dict) -> dict[str, str]:
    """Replace object ids by 1, 2, ... and member names by `<n>.<ext>` in document order;
    return old -> new member names (ordered)."""
    ids: dict[Any, int] = {}
    files: dict[str, str] = {}
    stack = [schema]
    while stack:
        node = stack.pop()
        if isinstance(node, list):
            stack.extend(reversed(node))
            continue
        if not isinstance(node, dict):
            continue
        if "__id__" in node:
            node["__id__"] = ids.setdefault(_identity(node), len(ids) + 1)
        name = node.get("file")
        if isinstance(name, str):
            if name not in files:
                files[name] = f"{len(files) + 1}.{name.rpartition('.')[2]}"
            node["file"] = files[name]
        stack.extend(reversed(list(node.values())))
    return files


def _identity(node: dict) -> Any:
    """What makes two schema nodes one object: JSON primitives by value (their identity in
    the fitted model is an accident of CPython's caches), everything else by saved id."""
    if node.get("__loader__") == "JsonNode":
        return ("json", node.get("__module__"), node.get("__class__"), node.get("content"))
    return node["__id__"]


def _zero_padding(member: bytes) -> bytes:
    """Zero the padding bytes of a structured .npy (e.g. a tree's node records): np.save
    writes them from uninitialized memory, so they differ between two identical fits."""
    array = np.load(io.BytesIO(member), allow_pickle=False)
    used = _used_bytes(array.dtype)
    if used.all() or array.nbytes == 0:
        return member
    data = bytearray(member)
    body = np.frombuffer(data, dtype=np.uint8, offset=len(data) - array.nbytes)
    body.reshape(-1, array.dtype.itemsize)[:, ~used] = 0
    return bytes(data)


def _used_bytes(dtype: np.dtype) -> np.ndarray:
    """Which bytes of one item belong to a field (recursively); the rest is padding."""
    if dtype.subdtype is not None:
        base, shape = dtype.subdtype
        return np.tile(_used_bytes(base), int(np.prod(shape)))
    if dtype.fields is None:
        return np.ones(dtype.itemsize, dtype=bool)
    used = np.zeros(dtype.itemsize, dtype=bool)
    for field_dtype, offset, *_ in dtype.fields.values():
        used[offset:offset + field_dtype.itemsize] |= _used_bytes(field_dtype)
    return used


def _pack(members: dict[str, bytes]) -> bytes:
    """A zip with fixed dates, permissions and (no) compression: byte-stable across zlib builds."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as out:
        for name, data in members.items():
            info = zipfile.ZipInfo(name, date_time=_DATE)
            info.compress_type = zipfile.ZIP_STORED
            info.create_system = 3
            info.external_attr = 0o644 << 16
            out.writestr(info, data)
    return buffer.getvalue()


def loads(data: bytes) -> Any:
    """The estimator in `data`; E0805 if the file holds a type outside sklearn/numpy."""
    data = bytes(data)
    try:
        untrusted = sio.get_untrusted_types(data=data)
    except (zipfile.BadZipFile, KeyError, ValueError, TypeError) as exc:
        raise RunError("E0805", f"the model file is not a valid skops file ({exc})",
                       "run `pipespec cache verify --delete`; the next run retrains the model") from None
    refused = [name for name in untrusted if not _trusted(name)]
    if refused:
        raise RunError("E0805", "the model file contains untrusted types: " + ", ".join(refused),
                       "only scikit-learn and numpy classes are loaded; the file was not "
                       "written by pipespec or was tampered with")
    return sio.loads(data, trusted=untrusted)


def _trusted(name: str) -> bool:
    """A class (never a function) defined under scikit-learn or numpy."""
    if not name.startswith(TRUSTED_PREFIXES):
        return False
    module_name, _, attr = name.rpartition(".")
    try:
        obj = getattr(importlib.import_module(module_name), attr, None)
    except ImportError:
        return False
    return isinstance(obj, type) and obj.__module__.startswith(TRUSTED_PREFIXES)
