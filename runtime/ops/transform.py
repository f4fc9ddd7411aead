"""The Transform op: a feature's table operations, in order, vectorized on Arrow.

Row order is part of the output (it decides the artifact digest), so every
operation gives one deterministic order:

* Join: inner, left and outer joins list rows in left-table order; the rows one
  left row produces come in right-table order; the right rows that matched nothing
  (outer) follow, in right-table order.  A right join is the mirror image: right-table
  order first, then left-table order.
* Aggregate: one row per group, sorted by the group keys (ascending, nulls last);
  without group keys, exactly one row.
* Filter, Derive and Select keep the order of their input.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from pipespec.compiler import expr as E
from pipespec.compiler import ir
from pipespec.compiler import types as T
from pipespec.compiler.functions import AGGREGATE

from ..arrowtypes import arrow_type, conform
from ..expressions import cast, evaluate
from .base import Context, Output



def run(ctx: Context) -> Output:
    node = ctx.node
    roles = {i.role for i in node.inputs}
    table = ctx.load("input") if "input" in roles else None
    for op in node.ops:
        if isinstance(op, ir.Join):
            table = _join(op, ctx.load("left"), ctx.load("right"))
        else:
            table = _APPLY[type(op)](table, op)
    table = conform(table, node.output, f"the output of feature '{node.name}'")
    return Output(table, rows=table.num_rows)


# --- row-wise operations -------------------------------------------------------------


def _filter(table: pa.Table, op: ir.Filter) -> pa.Table:
    """Keep rows where the predicate is true (false and null both drop the row)."""
    p = op.predicate
    if isinstance(p, E.Literal) and p.value is True:
        return table
    return table.filter(evaluate(p, table))


def _derive(table: pa.Table, op: ir.Derive) -> pa.Table:
    """Replace a column in place, or append a new one at the end."""
    column = evaluate(op.expr, table)
    names = table.column_names
    if op.column in names:
        return table.set_column(names.index(op.column), op.column, column)
    return table.append_column(op.column, column)


def _select(table: pa.Table, op: ir.Select) -> pa.Table:
    return table.select(list(op.columns))


# --- join ----------------------------------------------------------------------------

_HOW = {"inner": "inner", "left": "left outer", "right": "right outer", "outer": "full outer"}


def _join(op: ir.Join, left: pa.Table, right: pa.Table) -> pa.Table:
    """Join on row numbers only, order the matched pairs, then gather the columns.

    Arrow's hash join gives no stable order, so it joins the key columns plus each
    side's row number; the row-number pairs are sorted (see the module docstring) and
    every output column is gathered once with `take`.  Null keys match nothing.  The
    join runs on one thread: its pairs then (in practice, not by contract) come out in
    order already, which saves the sort and the gather of every left column.
    """
    keys = list(op.on)
    lrow, rrow = _unused("__left_row", keys), _unused("__right_row", keys)
    narrow_l = left.select(keys).append_column(lrow, pa.array(np.arange(left.num_rows)))
    narrow_r = right.select(keys).append_column(rrow, pa.array(np.arange(right.num_rows)))
    pairs = narrow_l.join(narrow_r, keys, join_type=_HOW[op.how], coalesce_keys=True, use_threads=False)
    order, li, ri = _pair_order(pairs[lrow], pairs[rrow], left.num_rows, right.num_rows,
                                right_first=op.how == "right")
    columns = {k: _take(pairs[k], order) for k in keys}
    clashes = set(left.column_names) & set(right.column_names) - set(keys)
    ls, rs = op.suffixes or ("", "")
    for side, rows, suffix in ((left, li, ls), (right, ri, rs)):
        for name in side.column_names:
            if name not in keys:
                columns[name + suffix if name in clashes else name] = _take(side[name], rows)
    return pa.table(columns)


def _unused(name: str, taken: list[str]) -> str:
    while name in taken:
        name += "_"
    return name


def _pair_order(li: pa.ChunkedArray, ri: pa.ChunkedArray, nl: int, nr: int, right_first: bool):
    """(order of the joined rows, left row per output row, right row per output row).

    Row indices are None where they are the identity (nothing to gather)."""
    lf = pc.fill_null(li, nl).to_numpy()  # unmatched sorts after every real row
    rf = pc.fill_null(ri, nr).to_numpy()
    first, second, n2 = (rf, lf, nl) if right_first else (lf, rf, nr)
    if _ordered(first, second):
        return None, _rows(lf, nl), _rows(rf, nr)
    if (int(first.max(initial=0)) + 1) * (n2 + 1) < 2**62:
        order = np.argsort(first * (n2 + 1) + second, kind="stable")
    else:
        order = np.lexsort((second, first))
    return _indices(order, len(order)), _rows(lf[order], nl), _rows(rf[order], nr)


def _ordered(first: np.ndarray, second: np.ndarray) -> bool:
    """Whether the pairs are already sorted by (first, second): one pass, no sort (and
    only boolean temporaries: allocating large arrays costs more than comparing them)."""
    if not (first[1:] >= first[:-1]).all():
        return False
    ties = first[1:] == first[:-1]
    return not ties.any() or bool((second[1:][ties] >= second[:-1][ties]).all())


def _indices(idx: np.ndarray, n: int) -> pa.Array | None:
    return None if _is_identity(idx, n) else pa.array(idx)


def _rows(idx: np.ndarray, n: int) -> pa.Array | None:
    """Row numbers to gather from a side of `n` rows (`n` marks "no row": null)."""
    if _is_identity(idx, n):
        return None
    missing = idx == n
    return pa.array(idx, mask=missing) if missing.any() else pa.array(idx)


def _is_identity(idx: np.ndarray, n: int) -> bool:
    """Whether `idx` is 0, 1, …, n-1 (n integers from 0 to n-1 that strictly increase)."""
    return len(idx) == n and (n == 0 or bool(idx[0] == 0 and idx[-1] == n - 1
                                             and (idx[1:] > idx[:-1]).all()))


def _take(column: pa.ChunkedArray, rows: pa.Array | None) -> pa.ChunkedArray:
    return column if rows is None else column.take(rows)


# --- aggregate -----------------------------------------------------------------------

_ARROW_AGG = {"sum": "sum", "mean": "mean", "min": "min", "max": "max", "count": "count",
              "count_distinct": "count_distinct", "stddev": "stddev"}
_ONLY_VALID = pc.CountOptions(mode="only_valid")
_OPTIONS = {"count": _ONLY_VALID, "count_distinct": _ONLY_VALID,
            "stddev": pc.VarianceOptions(ddof=1), "sum": pc.ScalarAggregateOptions(min_count=1),
            "mean": pc.ScalarAggregateOptions(min_count=1)}


def _aggregate(table: pa.Table, op: ir.Aggregate) -> pa.Table:
    """Hash-aggregate every distinct aggregate call, then compute each output column over
    the per-group results (so `sum(x) / count()` and `round(mean(x), 2)` work)."""
    keys = list(op.keys)
    grouping = _Grouping(table, keys)
    specs, outputs = [], {}
    for call in _aggregate_calls(op):
        if call.args:
            column, fn = grouping.add(call), _ARROW_AGG[call.func]
            specs.append((column, fn, _OPTIONS.get(fn)))
            outputs[call] = f"{column}_{fn}"  # Arrow's name for the result
        else:
            specs.append(([], "count_all"))
            outputs[call] = "count_all"
    # one thread: threads merge partial sums in a varying order, so float sums and means
    # would differ in their last bits from run to run (and so the artifact's digest); one
    # thread is also faster on many groups (no merge of partial tables)
    grouped = grouping.table().group_by(grouping.key_names, use_threads=False).aggregate(specs)
    if keys:
        grouped = grouped.sort_by([(name, "ascending") for name in grouping.key_names])
    scope = {k: grouped[name] for k, name in zip(keys, grouping.key_names, strict=True)}
    names = {call: _unused(f"__agg{i}", keys) for i, call in enumerate(outputs)}
    scope.update({names[call]: grouped[out] for call, out in outputs.items()})
    per_group = pa.table(scope)
    columns = [per_group[k] for k in keys]
    columns += [evaluate(_substitute(e, names), per_group) for _, e in op.aggregates]
    return pa.Table.from_arrays(columns, names=keys + [name for name, _ in op.aggregates])


def _aggregate_calls(op: ir.Aggregate) -> list[E.Call]:
    """Every distinct aggregate call, in first-use order."""
    seen: dict[E.Call, None] = {}
    for _, e in op.aggregates:
        for node in E.walk(e):
            if isinstance(node, E.Call) and node.func in AGGREGATE:
                seen.setdefault(node, None)
    return list(seen)


class _Grouping:
    """The table Arrow groups: the keys plus one column per distinct aggregate argument,
    all under internal names (`__key0`, `__arg0`), so no user column name can clash with
    Arrow's result names (`__arg0_sum`, `count_all`)."""

    def __init__(self, table: pa.Table, keys: list[str]):
        self.source = table
        self.key_names = [f"__key{i}" for i in range(len(keys))]
        self.columns = {name: table[k] for name, k in zip(self.key_names, keys, strict=True)}
        self.args: dict[tuple[E.Expr, pa.DataType], str] = {}

    def add(self, call: E.Call) -> str:
        """The column holding the call's argument (computed once per argument and type)."""
        arg = call.args[0]
        want = _input_type(call.func, arg.type or T.NULL, call.type)
        name = self.args.get((arg, want))
        if name is None:
            column = evaluate(arg, self.source)
            name = self.args[(arg, want)] = f"__arg{len(self.args)}"
            self.columns[name] = column if column.type == want else cast(column, want)
        return name

    def table(self) -> pa.Table:
        return pa.table(self.columns) if self.columns else self.source.select([])


def _input_type(func: str, arg_type: str, result: str) -> pa.DataType:
    """The Arrow type an aggregate's input needs so Arrow returns the promised type."""
    if func == "sum":
        return arrow_type(result)  # int64 for integers and bool, float64 for floats
    if func in ("mean", "stddev") and arg_type not in (T.INT32, T.INT64, T.FLOAT64):
        return pa.float64()
    if func in ("min", "max"):
        return arrow_type(result)
    return arrow_type(arg_type)


def _substitute(e: E.Expr, names: dict[E.Call, str]) -> E.Expr:
    """`e` with each aggregate call replaced by the column holding its per-group result."""
    if e in names:
        return E.Column(name=names[e], type=e.type)
    if isinstance(e, (E.Unary, E.IsNull)):
        return E.evolve(e, operand=_substitute(e.operand, names))
    if isinstance(e, E.Binary):
        return E.evolve(e, left=_substitute(e.left, names), right=_substitute(e.right, names))
    if isinstance(e, E.InList):
        return E.evolve(e, operand=_substitute(e.operand, names))
    if isinstance(e, E.Call):
        return E.evolve(e, args=tuple(_substitute(a, names) for a in e.args))
    return e


_APPLY = {ir.Filter: _filter, ir.Derive: _derive, ir.Select: _select, ir.Aggregate: _aggregate}
