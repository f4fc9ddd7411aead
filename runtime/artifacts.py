"""How each kind of node output is stored: tables as Arrow IPC (zstd), models with
skops, metrics and decisions as canonical JSON.  Encoding is deterministic, so the
same value gives the same digest on every target.

pyarrow is imported only to encode or decode a table: a fully cached run reads
JSON artifacts at most, and pyarrow costs ~0.1 s to import."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

from pipespec.compiler import ir

from .hashing import canonical_json

if TYPE_CHECKING:
    import pyarrow as pa

TABLE, MODEL, JSON = "arrow", "skops", "json"
# the format of each node kind's output (what `format_for` gives for its output type)
KIND_FORMATS = {"Source": TABLE, "Transform": TABLE, "Train": MODEL, "Evaluate": JSON, "Gate": JSON,
                "Rollout": JSON}


def sniff(data: bytes) -> str | None:
    """The format an artifact's bytes are in (by their magic; JSON by parsing), or None."""
    if data[:6] == b"ARROW1":
        return TABLE
    if data[:4] == b"PK\x03\x04":
        return MODEL
    try:
        json.loads(data)
    except ValueError:
        return None
    return JSON


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


def encode_table(table: pa.Table) -> memoryview:
    """Arrow IPC of the canonical form of `table`: equal tables give equal bytes."""
    import pyarrow as pa

    from .canonical import canonical_table
    table = canonical_table(table)
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_file(sink, table.schema, options=options) as writer:
        writer.write_table(table, max_chunksize=1 << 20)
    return memoryview(sink.getvalue())


def decode_table(data: bytes) -> pa.Table:
    import pyarrow as pa
    return pa.ipc.open_file(pa.py_buffer(data)).read_all()
