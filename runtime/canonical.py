"""Canonical Arrow tables: equal tables (`Table.equals`) get equal IPC bytes, so digests
depend on content only.

Arrow leaves bytes it never reads undefined: values under null slots, bits past an
array's length, string data past the last offset, the offsets of a slice, the chunk
layout.  The IPC writer copies most of them as they are, so two runs of one pipeline
(a join then a `take`, another thread count) could store equal tables under different
digests.  `canonical_table` rebuilds each column as one chunk whose every written byte
is a function of the values: zero under nulls, zero bits past the end, zero-based
offsets, string data cut at the last offset, `+0.0` for `-0.0` and one NaN.  Columns
already in that form are kept without a copy.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

_CANONICAL_NAN = np.float64("nan")


def canonical_table(table: pa.Table) -> pa.Table:
    """`table` with no metadata and every column one canonical chunk (values unchanged)."""
    fields = [pa.field(f.name, f.type, f.nullable) for f in table.schema]
    columns = [canonical_array(_one_chunk(col)) for col in table.columns]
    return pa.Table.from_arrays(columns, schema=pa.schema(fields))


def _one_chunk(column: pa.ChunkedArray) -> pa.Array:
    if column.num_chunks == 1:
        return column.chunk(0)
    if column.num_chunks == 0:
        return pa.array([], type=column.type)
    return pa.concat_arrays(column.chunks)


def canonical_array(arr: pa.Array) -> pa.Array:
    t = arr.type
    if pa.types.is_boolean(t):
        return _boolean(arr)
    if pa.types.is_string(t) or pa.types.is_binary(t):
        return _binary(arr, np.int32)
    if pa.types.is_large_string(t) or pa.types.is_large_binary(t):
        return _binary(arr, np.int64)
    if _fixed_width(t):
        return _fixed(arr)
    if pa.types.is_null(t):
        return pa.nulls(len(arr))
    return _rebuilt(arr)


def _fixed_width(t: pa.DataType) -> bool:
    return (pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_temporal(t)
            or pa.types.is_decimal(t) or pa.types.is_fixed_size_binary(t))


def _validity(arr: pa.Array) -> tuple[pa.Buffer | None, np.ndarray | None]:
    """The validity bitmap rebuilt (trailing bits zero), and the validity as booleans."""
    if arr.null_count == 0:
        return None, None
    valid = arr.is_valid().to_numpy(zero_copy_only=False)
    return pa.py_buffer(np.packbits(valid, bitorder="little")), valid


def _fixed(arr: pa.Array) -> pa.Array:
    width = arr.type.bit_width // 8
    if len(arr) == 0:
        return pa.array([], type=arr.type)
    raw = np.frombuffer(arr.buffers()[1], dtype=np.uint8)[arr.offset * width:(arr.offset + len(arr)) * width]
    bitmap, valid = _validity(arr)
    values = _float_fixed(raw, arr.type)
    if valid is not None:
        values = (values if values is not raw else raw.copy()).reshape(len(arr), width)
        values[~valid] = 0
    if values is raw and bitmap is None:
        data = arr.buffers()[1]
        if arr.offset == 0 and arr.buffers()[0] is None and data.size == raw.size:
            return arr
        return pa.Array.from_buffers(arr.type, len(arr), [None, data.slice(arr.offset * width, raw.size)])
    return pa.Array.from_buffers(arr.type, len(arr), [bitmap, pa.py_buffer(np.ascontiguousarray(values))],
                                 null_count=arr.null_count)


def _float_fixed(raw: np.ndarray, t: pa.DataType) -> np.ndarray:
    """Raw bytes with -0.0 as +0.0 and every NaN the same NaN (floats only; else `raw` itself)."""
    if not pa.types.is_floating(t) or pa.types.is_float16(t):
        return raw
    values = raw.view(np.float64 if t.bit_width == 64 else np.float32)
    negative_zero = (values == 0) & np.signbit(values)
    nan = np.isnan(values)
    if not (negative_zero.any() or nan.any()):
        return raw
    fixed = values.copy()
    fixed[negative_zero] = 0.0
    fixed[nan] = _CANONICAL_NAN
    return fixed.view(np.uint8)


def _boolean(arr: pa.Array) -> pa.Array:
    bitmap, _ = _validity(arr)
    values = pc.fill_null(arr, False).to_numpy(zero_copy_only=False)
    data = pa.py_buffer(np.packbits(values, bitorder="little"))
    return pa.Array.from_buffers(arr.type, len(arr), [bitmap, data], null_count=arr.null_count)


def _binary(arr: pa.Array, offset_type: type) -> pa.Array:
    bitmap, _ = _validity(arr)
    dense = pc.fill_null(arr, pa.scalar(b"" if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type)
                                           else "", type=arr.type)) if bitmap is not None else arr
    offsets = np.frombuffer(dense.buffers()[1], dtype=offset_type)[dense.offset:dense.offset + len(dense) + 1]
    if len(offsets) == 0:
        offsets = np.zeros(1, dtype=offset_type)
    start, end = int(offsets[0]), int(offsets[-1])
    data = dense.buffers()[2]
    data = pa.py_buffer(b"") if data is None else data.slice(start, end - start)
    based = pa.py_buffer(offsets - offset_type(start)) if start else dense.buffers()[1].slice(
        dense.offset * offsets.itemsize, offsets.nbytes)
    return pa.Array.from_buffers(arr.type, len(arr), [bitmap, based, data], null_count=arr.null_count)


def _rebuilt(arr: pa.Array) -> pa.Array:
    """Types the IR never produces (dictionaries, nested): built anew from the values by an
    Arrow builder, which writes nothing but the values.  Slow, and only a fallback."""
    return pa.array(arr.to_pylist(), type=arr.type)
