"""Equal tables give equal artifact bytes, whatever Arrow left in the bytes it never reads."""

from __future__ import annotations

import datetime as dt
import os

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipespec.runtime.artifacts import decode_table, encode_table
from pipespec.runtime.canonical import canonical_table
from pipespec.runtime.hashing import digest_bytes

INTS = st.integers(-2**62, 2**62)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, width=64)
TEXT = st.text(max_size=6)
DATES = st.dates(dt.date(1900, 1, 1), dt.date(2200, 1, 1))
STAMPS = st.datetimes(dt.datetime(1900, 1, 1), dt.datetime(2200, 1, 1))

TYPES = {  # what the IR produces, plus dictionary and nested types (the fallback path)
    "int64": (pa.int64(), INTS),
    "int32": (pa.int32(), st.integers(-2**31, 2**31 - 1)),
    "float64": (pa.float64(), FLOATS),
    "float32": (pa.float32(), st.floats(width=32)),
    "bool": (pa.bool_(), st.booleans()),
    "string": (pa.string(), TEXT),
    "date": (pa.date32(), DATES),
    "timestamp": (pa.timestamp("us"), STAMPS),
    "dictionary": (pa.dictionary(pa.int32(), pa.string()), TEXT),
    "list": (pa.list_(pa.int64()), st.lists(INTS, max_size=3)),
}


@st.composite
def tables(draw):
    rows = draw(st.integers(0, 40))
    cols = []
    for _ in range(draw(st.integers(1, 4))):
        name = draw(st.sampled_from(sorted(TYPES)))
        arrow_type, values = TYPES[name]
        cols.append((name, arrow_type, draw(st.lists(st.none() | values, min_size=rows, max_size=rows))))
    return cols


def digest(table: pa.Table) -> str:
    return digest_bytes(encode_table(table))


def with_garbage(arr: pa.Array, rng: np.random.Generator) -> pa.Array:
    """The same values with random bytes under nulls, past the end and past the last offset."""
    if arr.null_count == 0 and not (pa.types.is_string(arr.type) or pa.types.is_integer(arr.type)):
        return arr
    if pa.types.is_string(arr.type):
        return _string_with_garbage(arr, rng)
    if pa.types.is_integer(arr.type) or pa.types.is_floating(arr.type) or pa.types.is_temporal(arr.type):
        width = arr.type.bit_width // 8
        data = bytearray(arr.buffers()[1].to_pybytes()[arr.offset * width:(arr.offset + len(arr)) * width])
        valid = arr.is_valid().to_numpy(zero_copy_only=False)
        for i in np.flatnonzero(~valid):
            data[i * width:(i + 1) * width] = rng.bytes(width)
        data += rng.bytes(16)
        bitmap = _bitmap_with_trailing_garbage(valid, rng) if arr.null_count else None
        return pa.Array.from_buffers(arr.type, len(arr), [bitmap, pa.py_buffer(bytes(data))],
                                     null_count=arr.null_count)
    return arr


def _bitmap_with_trailing_garbage(valid: np.ndarray, rng) -> pa.Buffer:
    bits = np.concatenate([valid, rng.integers(0, 2, 16).astype(bool)])
    return pa.py_buffer(np.packbits(bits, bitorder="little").tobytes())


def _string_with_garbage(arr: pa.Array, rng) -> pa.Array:
    values = arr.to_pylist()
    offsets, data = [0], bytearray()
    for v in values:
        data += (v.encode() if v is not None else rng.bytes(int(rng.integers(0, 4))))
        offsets.append(len(data))
    data += rng.bytes(64)
    valid = np.array([v is not None for v in values], dtype=bool)
    bitmap = _bitmap_with_trailing_garbage(valid, rng) if arr.null_count else None
    return pa.Array.from_buffers(pa.string(), len(values),
                                 [bitmap, pa.py_buffer(np.array(offsets, np.int32).tobytes()),
                                  pa.py_buffer(bytes(data))], null_count=arr.null_count)


def relayout(column: pa.ChunkedArray, cuts: list[int], pad: int, rng) -> pa.ChunkedArray:
    """Equal values: padded and sliced (non-zero offsets), split into chunks at `cuts`."""
    arr = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    if pad and not isinstance(arr.type, pa.DictionaryType):
        padded = pa.concat_arrays([pa.array([None] * pad, type=arr.type), arr])
        arr = padded.slice(pad)
    pieces, start = [], 0
    for cut in sorted(c % (len(arr) + 1) for c in cuts) + [len(arr)]:
        pieces.append(with_garbage(arr.slice(start, cut - start), rng))
        start = cut
    return pa.chunked_array(pieces, type=arr.type)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables(), st.lists(st.integers(0, 40), max_size=3),
       st.integers(0, 9), st.integers(0, 2**32 - 1))
def test_equal_tables_give_equal_bytes(cols, cuts, pad, seed):
    rng = np.random.default_rng(seed)
    arrays = [pa.array(data, type=arrow_type) for _, arrow_type, data in cols]
    names = [f"c{i}_{name}" for i, (name, _, _) in enumerate(cols)]
    plain = pa.table(dict(zip(names, arrays)))
    messy = pa.table({n: relayout(plain[n], cuts, pad, rng) for n in names})
    assert same_values(messy, plain)
    assert digest(messy) == digest(plain)
    back = decode_table(bytes(encode_table(messy)))
    assert same_values(back, plain) and back.schema == plain.schema


def same_values(a: pa.Table, b: pa.Table) -> bool:
    """`Table.equals`, with NaN equal to NaN (so tables holding NaN compare too)."""
    return a.equals(b) or _plain(a) == _plain(b)


def _plain(table: pa.Table) -> str:
    rows = [{k: (repr(v + 0.0) if isinstance(v, float) else v) for k, v in row.items()} for row in table.to_pylist()]
    return repr(rows)


def test_signed_zero_and_nan_payloads_are_one_value():
    neg = pa.table({"x": pa.array([-0.0, 1.0])})
    pos = pa.table({"x": pa.array([0.0, 1.0])})
    assert neg.equals(pos) and digest(neg) == digest(pos)
    quiet = np.array([np.nan], np.float64)
    payload = np.array([0x7FF8000000000123], np.uint64).view(np.float64)
    a = pa.table({"x": pa.array(quiet)})
    b = pa.table({"x": pa.array(payload)})
    assert digest(a) == digest(b)


def test_metadata_and_chunking_do_not_matter():
    t = pa.table({"a": pa.array(range(10))})
    chunked = pa.concat_tables([t.slice(0, 3), t.slice(3, 4), t.slice(7)])
    tagged = t.replace_schema_metadata({"pandas": "{}"})
    assert digest(t) == digest(chunked) == digest(tagged)


def test_canonical_table_keeps_a_canonical_column_without_copying():
    arr = pa.array(np.arange(1000, dtype=np.int64))
    out = canonical_table(pa.table({"a": arr}))
    assert out["a"].chunk(0).buffers()[1].address == arr.buffers()[1].address


@pytest.mark.parametrize("slack", [bytes(64), os.urandom(64)], ids=["zeros", "random"])
def test_string_slack_is_not_written(slack):
    offsets = np.array([0, 2, 5, 5, 6], np.int32).tobytes()
    name = pa.Array.from_buffers(pa.string(), 4, [None, pa.py_buffer(offsets), pa.py_buffer(b"abcdef" + slack)])
    clean = pa.table({"id": [1, 2, 3, 4], "name": ["ab", "cde", "", "f"]})
    assert digest(pa.table({"id": [1, 2, 3, 4], "name": name})) == digest(clean)


SPEC = """pipespec: 1
pipeline: slack
sources:
  t:
    format: arrow
    path: {path}
    schema: {{id: int64, name: string}}
features:
  f:
    from: t
    columns:
      n2: length(name)
"""


def _write_arrow(path, slack: bytes) -> None:
    offsets = np.array([0, 2, 5, 5, 6], np.int32).tobytes()
    name = pa.Array.from_buffers(pa.string(), 4, [None, pa.py_buffer(offsets), pa.py_buffer(b"abcdef" + slack)])
    table = pa.table({"id": pa.array([1, 2, 3, 4], pa.int64()), "name": name})
    with pa.ipc.new_file(str(path), table.schema) as writer:
        writer.write_table(table)


def test_cli_equal_sources_with_other_slack_get_equal_digests(tmp_path):
    """The issue's reproduction: 64 random bytes past the last offset vs zeros."""
    import json

    from click.testing import CliRunner

    from pipespec.cli import main

    digests = []
    for label, slack in (("random", os.urandom(64)), ("zeros", bytes(64))):
        folder = tmp_path / label
        folder.mkdir()
        _write_arrow(folder / "t.arrow", slack)
        (folder / "pipeline.yaml").write_text(SPEC.format(path="t.arrow"))
        result = CliRunner().invoke(main, ["run", str(folder / "pipeline.yaml"),
                                           "--format", "json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.output[result.output.index("{"):])
        digests.append({n["id"]: n["digest"] for n in report["nodes"]})
    assert digests[0] == digests[1]
    assert set(digests[0]) == {"source.t", "feature.f"}
