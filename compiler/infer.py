"""Schema inference for sources without `schema:`, from the file's own metadata.

Reads only schemas (Parquet/Arrow footers, the first CSV block), never whole
tables, except JSON Lines, whose types need a read of the file.
"""

from __future__ import annotations

import os

from . import types as T


class InferError(Exception):
    pass


class NotAFile(InferError):
    """The path exists but is a directory: the run cannot read it either."""


def arrow_type_name(t) -> str | None:
    import pyarrow as pa
    import pyarrow.types as pat

    if pat.is_boolean(t):
        return T.BOOL
    if pat.is_int8(t) or pat.is_int16(t) or pat.is_int32(t) or pat.is_uint8(t) or pat.is_uint16(t):
        return T.INT32
    if pat.is_int64(t) or pat.is_uint32(t):
        return T.INT64
    if pat.is_float16(t) or pat.is_float32(t):
        return T.FLOAT32
    if pat.is_float64(t):
        return T.FLOAT64
    if pat.is_string(t) or pat.is_large_string(t) or pat.is_dictionary(t) and pa.types.is_string(t.value_type):
        return T.STRING
    if pat.is_date(t):
        return T.DATE
    if pat.is_timestamp(t):
        return T.TIMESTAMP
    return None


def infer(fmt: str, path: str, base_dir: str) -> tuple[tuple[str, str], ...]:
    """The schema of a local file; raises InferError with a reason."""
    columns = []
    for name, arrow_type, ours in file_columns(fmt, path, base_dir):
        if ours is None:
            raise InferError(f"column '{name}' of {path} has type {arrow_type}, which pipespec "
                             "cannot represent")
        columns.append((name, ours))
    return tuple(columns)


def file_columns(fmt: str, path: str, base_dir: str) -> list[tuple[str, object, str | None]]:
    """(name, arrow type, pipespec type or None) of each column of a local file."""
    if fmt == "sql":
        raise InferError("SQL sources need a declared schema")
    if "://" in path and not path.startswith("file://"):
        raise InferError(f"{path} is remote; declare `schema:` to type-check without reading it")
    full = os.path.join(base_dir, path.removeprefix("file://"))
    if os.path.isdir(full):
        raise NotAFile(f"{path} is a directory, not a {fmt} file")
    if not os.path.isfile(full):
        raise InferError(f"file not found: {path}")
    try:
        schema = _read_schema(fmt, full)
    except Exception as exc:  # pyarrow raises many kinds; all mean "cannot read"
        raise InferError(f"cannot read {path}: {' '.join(str(exc).split())[:200]}") from None
    return [(f.name, f.type, arrow_type_name(f.type)) for f in schema]


def compare(fmt: str, path: str, base_dir: str,
            declared: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """(column, problem) where a declared schema and a reachable local file differ."""
    try:
        actual = {name: ours or str(arrow_type) for name, arrow_type, ours in
                  file_columns(fmt, path, base_dir)}
    except NotAFile as exc:  # not about one column: reported at `schema:` itself
        return [("", f"{exc}: the run would fail reading it")]
    except InferError:
        return []
    problems = []
    for column, declared_type in declared:
        if column not in actual:
            problems.append((column, f"column '{column}' is not in {path}"))
        elif fmt in ("parquet", "arrow") and actual[column] != declared_type:
            problems.append((column, f"column '{column}' is {actual[column]} in {path}, "
                                     f"declared {declared_type}"))
    return problems


def _read_schema(fmt: str, full: str):
    import pyarrow as pa

    if fmt == "parquet":
        import pyarrow.parquet as pq
        return pq.read_schema(full)
    if fmt == "arrow":
        with pa.memory_map(full) as src:
            try:
                return pa.ipc.open_file(src).schema
            except pa.ArrowInvalid:
                src.seek(0)
                return pa.ipc.open_stream(src).schema
    if fmt == "csv":
        import pyarrow.csv as pcsv
        with pcsv.open_csv(full) as reader:
            return reader.schema
    import pyarrow.json as pjson
    return pjson.read_json(full).schema
