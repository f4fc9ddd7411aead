"""The Source op: read a file or a query into a table with exactly the declared schema.

Reading enforces the schema (SPEC §5): declared columns are selected in declared
order, extra columns dropped, and a missing column or a value that does not fit
its declared type is E0802 naming the column and the file.  How text formats are
typed:

* CSV: each declared column is parsed straight into its declared type by Arrow's
  reader.  An unquoted empty field is null (for every type, strings included); a
  quoted empty field `""` is the empty string.  Timestamps are ISO 8601; when a
  column's values all carry a zone offset they are read as their UTC time.
* JSON Lines: values are read with the declared types; dates are ISO strings.
* SQL (sqlite only, locally): rows are fetched and converted column by column.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import sqlite3
from contextlib import closing
from typing import Callable
from urllib.parse import quote

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv
import pyarrow.json as pjson
import pyarrow.parquet as pq

from pipespec.compiler import ir
from pipespec.compiler.infer import arrow_type_name

from ..arrowtypes import conform, schema_of
from ..errors import RunError
from ..keyextra import SQL_MEMO, Location, locate
from ..keyextra import source_key as key_extra  # noqa: F401  (the op's key inputs, kept light)
from .base import Context, Output, Sample


_SQLITE = "sqlite:///"


def run(ctx: Context) -> Output:
    node: ir.Source = ctx.node
    if node.format == "sql":
        table = ctx.memo.pop(SQL_MEMO, None)
        table = _query(node, ctx.root) if table is None else table
    else:
        table = _read_file(node, locate(node.path, ctx.root))
    table = sample(table, ctx.sample)
    return Output(table, rows=table.num_rows)


def sample(table: pa.Table, spec: Sample | None) -> pa.Table:
    """At most `spec.rows` rows drawn without replacement by `seed`, in their original order."""
    if spec is None or table.num_rows <= spec.rows:
        return table
    rows = np.random.default_rng(spec.seed).choice(table.num_rows, spec.rows, replace=False)
    rows.sort()
    return table.take(pa.array(rows))


# --- files ---------------------------------------------------------------------------


def _read_file(node: ir.Source, where: Location) -> pa.Table:
    where.check_exists()
    schema = schema_of(node.output)
    try:
        return _READERS[node.format](where, schema)
    except (pa.ArrowException, OSError) as exc:  # a file Arrow cannot parse at all
        raise RunError("E0801", f"cannot read {where.shown} as {node.format}: {_first_line(exc)}") \
            from None


def _read_parquet(where: Location, schema: pa.Schema) -> pa.Table:
    with where.source() as source:
        parquet = pq.ParquetFile(source)
        present = set(parquet.schema_arrow.names)
        table = parquet.read(columns=[f.name for f in schema if f.name in present])
    return conform(table, schema, where.shown)


def _read_arrow(where: Location, schema: pa.Schema) -> pa.Table:
    with where.open() as f:
        is_file = f.read(6) == b"ARROW1"  # the IPC file format's magic; else a stream
        f.seek(0)
        reader = pa.ipc.open_file(f) if is_file else pa.ipc.open_stream(f)
        table = reader.read_all()
    return conform(table.select([f.name for f in schema if f.name in table.column_names]),
                   schema, where.shown)


def _read_csv(where: Location, schema: pa.Schema) -> pa.Table:
    header = set(_csv_header(where))
    present = [f for f in schema if f.name in header]
    try:
        table = _csv_with_types(where, present, {f.name: f.type for f in present})
    except pa.ArrowInvalid:  # a value does not parse: read text, so conform names the column
        table = _csv_with_types(where, present, {f.name: pa.string() for f in present})
    return conform(table, schema, where.shown, exact=False)


def _csv_with_types(where: Location, present: list[pa.Field], types: dict) -> pa.Table:
    options = pcsv.ConvertOptions(column_types=types, include_columns=[f.name for f in present],
                                  null_values=[""], strings_can_be_null=True,
                                  quoted_strings_can_be_null=False)
    with where.source(decompress=True) as source:
        return pcsv.read_csv(source, convert_options=options)


def _csv_header(where: Location) -> list[str]:
    with where.open(decompress=True) as f:
        text = io.TextIOWrapper(f, encoding="utf-8-sig", newline="")
        return next(csv.reader(text), [])


def _read_jsonl(where: Location, schema: pa.Schema) -> pa.Table:
    with where.open(decompress=True) as f:
        data = f.read()
    if not data.strip():
        return schema.empty_table()
    # dates are ISO strings in JSON; Arrow's reader wants numbers for date32, so parse after
    wanted = pa.schema([pa.field(f.name, pa.string() if pa.types.is_date(f.type) else f.type)
                        for f in schema])
    try:
        table = _json_with_schema(data, wanted)
    except pa.ArrowInvalid:
        _raise_json_column_error(data, wanted, schema, where.shown)
        raise
    _check_json_keys(table, data, where.shown)
    return conform(table, schema, where.shown, exact=False)


def _json_with_schema(data: bytes, schema: pa.Schema) -> pa.Table:
    options = pjson.ParseOptions(explicit_schema=schema, unexpected_field_behavior="ignore")
    return pjson.read_json(pa.BufferReader(data), parse_options=options)


def _raise_json_column_error(data: bytes, wanted: pa.Schema, schema: pa.Schema, shown: str) -> None:
    """Find the column whose values do not fit its type (read one column at a time)."""
    for field, declared in zip(wanted, schema, strict=True):
        try:
            _json_with_schema(data, pa.schema([field]))
        except pa.ArrowInvalid as exc:
            raise RunError("E0802", f"column '{field.name}' of {shown} cannot be read as "
                           f"{arrow_type_name(declared.type)}: {_first_line(exc)}") from None


def _check_json_keys(table: pa.Table, data: bytes, shown: str) -> None:
    """A declared column that is null in every row is missing when its key never appears."""
    for name in table.column_names:
        column = table[name]
        if column.null_count == len(column) and not _json_key(name).search(data):
            raise RunError("E0802", f"column '{name}' is missing from {shown}",
                           "check the spelling in `schema:` against the data")


def _json_key(name: str) -> re.Pattern:
    return re.compile(re.escape(json.dumps(name, ensure_ascii=False).encode()) + rb"\s*:")


_READERS: dict[str, Callable[[Location, pa.Schema], pa.Table]] = {
    "parquet": _read_parquet, "arrow": _read_arrow, "csv": _read_csv, "jsonl": _read_jsonl,
}


# --- SQL -----------------------------------------------------------------------------


def _query(node: ir.Source, root: str) -> pa.Table:
    """Run the query on a sqlite database (read-only) and convert the rows column-wise."""
    path = _sqlite_path(node.uri, root)
    what = f"the result of the query on {node.uri}"
    try:
        with closing(sqlite3.connect(f"file:{quote(path)}?mode=ro", uri=True)) as db:
            cursor = db.execute(node.query)
            names = [d[0] for d in cursor.description or ()]
            rows = cursor.fetchall()
    except sqlite3.Error as exc:
        raise RunError("E0801", f"query on {node.uri} failed: {exc}") from None
    schema = schema_of(node.output)
    columns = {}
    for i, name in enumerate(names):
        if schema.get_field_index(name) >= 0 and name not in columns:
            columns[name] = _sql_column([r[i] for r in rows], name, what)
    return conform(pa.table(columns), schema, what, exact=False)


def _sql_column(values: list, name: str, what: str) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError) as exc:
        raise RunError("E0802", f"column '{name}' of {what} has values of mixed or unsupported "
                       f"types: {_first_line(exc)}") from None


def _sqlite_path(uri: str, root: str) -> str:
    if not uri.startswith(_SQLITE):
        scheme = uri.split("://", 1)[0]
        raise RunError("E0801", f"{scheme} sources are not supported by the local runtime; "
                       "only sqlite:/// databases are", "run on a target that reaches the database")
    where = locate(uri[len(_SQLITE):], root)
    if not where.remote and os.path.isdir(where.path):
        raise RunError("E0801", f"sqlite database {uri} is a directory, not a file (resolved to {where.path})")
    if where.remote or not os.path.isfile(where.path):
        raise RunError("E0801", f"sqlite database {uri} does not exist (resolved to {where.path})")
    return where.path


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
