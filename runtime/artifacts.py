"""How each kind of node output is stored: tables as Arrow IPC (zstd), models with
skops, metrics and decisions as canonical JSON.  Encoding is deterministic, so the
same value gives the same digest on every target."""

from __future__ import annotations

import json
from typing import Any

import pyarrow as pa

from pipespec.compiler import ir

from .hashing import canonical_json

TABLE, MODEL, JSON = "arrow", "skops", "json"


def format_for(output_type: Any) -> str:
    if isinstance(output_type, ir.TableType):
        return TABLE
    if isinstance(output_type, ir.ModelType):
        return MODEL
    return JSON


def encode(fmt: str, value: Any) -> bytes | memoryview:
    if fmt == TABLE:
        return encode_table(value)
    if fmt == MODEL:
        from .modelio import dumps
        return dumps(value)
    return (canonical_json(value) + "\n").encode()


def decode(fmt: str, data: bytes) -> Any:
    if fmt == TABLE:
        return decode_table(data)
    if fmt == MODEL:
        from .modelio import loads
        return loads(data)
    return json.loads(data)


_IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression="zstd")


def encode_table(table: pa.Table) -> memoryview:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_file(sink, table.schema, options=_IPC_OPTIONS) as writer:
        writer.write_table(table, max_chunksize=1 << 20)
    return memoryview(sink.getvalue())


def decode_table(data: bytes) -> pa.Table:
    return pa.ipc.open_file(pa.py_buffer(data)).read_all()
