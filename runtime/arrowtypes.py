"""pipespec column types as Arrow types, and making a table match a declared schema.

Every table the runtime hands on has exactly the schema `schema_of(node.output)`:
the declared columns in declared order, these Arrow types, no schema metadata.
That is what makes artifact bytes (and so digests) the same whichever file
format or reader produced the table.
"""

from __future__ import annotations

import pyarrow as pa
import pyarrow.compute as pc

from pipespec.compiler import ir
from pipespec.compiler import types as T
from pipespec.compiler.infer import arrow_type_name

from .errors import RunError

ARROW_TYPES: dict[str, pa.DataType] = {
    T.INT64: pa.int64(),
    T.INT32: pa.int32(),
    T.FLOAT64: pa.float64(),
    T.FLOAT32: pa.float32(),
    T.BOOL: pa.bool_(),
    T.STRING: pa.string(),
    T.DATE: pa.date32(),
    T.TIMESTAMP: pa.timestamp("us"),  # naive; zoned values are kept as their UTC time
}


def arrow_type(name: str) -> pa.DataType:
    """The Arrow type of a pipespec type; `null` (a bare null literal) is int64, as in SPEC §8."""
    return ARROW_TYPES.get(name, pa.int64())


def schema_of(table_type: ir.TableType) -> pa.Schema:
    return pa.schema([pa.field(name, ARROW_TYPES[t]) for name, t in table_type.columns])


def schema_from(types: dict[str, str]) -> pa.Schema:
    return pa.schema([pa.field(name, ARROW_TYPES[t]) for name, t in types.items()])


def conform(table: pa.Table, table_type: ir.TableType | pa.Schema, what: str,
            exact: bool = True) -> pa.Table:
    """`table` with exactly the declared columns, order and types (extra columns dropped).

    `exact=True` (Parquet, Arrow files, transform outputs) only converts between Arrow
    types that mean the same pipespec type (uint8 -> int32, large_string -> string,
    timestamp[ns, tz] -> timestamp[us]); `exact=False` (text formats, SQL) also
    parses and converts values (string -> date, int -> bool), failing on bad values.
    """
    schema = table_type if isinstance(table_type, pa.Schema) else schema_of(table_type)
    if table.schema.equals(schema, check_metadata=True):
        return table
    have = set(table.column_names)
    columns = []
    for field in schema:
        if field.name not in have:
            raise RunError("E0802", f"column '{field.name}' is missing from {what}",
                           "check the spelling in `schema:` against the data")
        columns.append(_conform_column(table[field.name], field, what, exact))
    return pa.Table.from_arrays(columns, schema=schema)


def _conform_column(column: pa.ChunkedArray, field: pa.Field, what: str, exact: bool):
    actual, target = column.type, field.type
    if actual == target:
        return column
    declared = arrow_type_name(target)
    if exact and not pa.types.is_null(actual) and arrow_type_name(actual) != declared:
        found = arrow_type_name(actual) or str(actual)
        raise RunError("E0802", f"column '{field.name}' of {what} is {found}, declared {declared}",
                       f"declare it as {found}, or cast it upstream")
    try:
        return _cast(column, target)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, pa.ArrowTypeError) as exc:
        raise RunError("E0802", f"column '{field.name}' of {what} cannot be read as {declared}: "
                       f"{_first_line(exc)}") from None


def _cast(column: pa.ChunkedArray, target: pa.DataType):
    """Cast with the conversions a reader needs: timestamps to microseconds (dropping finer
    digits) and zoned timestamps to their UTC time; everything else is a checked cast."""
    actual = column.type
    if pa.types.is_timestamp(target) and pa.types.is_timestamp(actual):
        return pc.cast(column, options=pc.CastOptions(target, allow_time_truncate=True))
    if pa.types.is_timestamp(target) and pa.types.is_string(actual):
        return _parse_timestamps(column, target)
    return pc.cast(column, target)


def _parse_timestamps(column: pa.ChunkedArray, target: pa.DataType):
    """ISO timestamps without a zone; when they all carry one (`Z`, `+02:00`), their UTC time."""
    try:
        return pc.cast(column, target)
    except pa.ArrowInvalid:
        zoned = pc.cast(column, pa.timestamp(target.unit, "UTC"))
        return pc.cast(zoned, target)


def _first_line(exc: BaseException) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
