"""Features: type-check one table transform and compute its output schema.

Order of operations (SPEC.md, "Features"): join (or the `from:` table), `where`,
`group_by`/`aggregate`, `columns` (in order), then `select` or `drop`.
A failed step leaves the schema unknown (None) so later steps stay quiet.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from . import expr as E
from . import ir
from . import types as T
from .diagnostics import suggest
from .functions import AGGREGATE
from .spec import Feature
from .typecheck import AGG, ROW

if TYPE_CHECKING:
    from .lower import Lowering

Schema = tuple[tuple[str, str], ...]


def lower_feature(lw: "Lowering", name: str, f: Feature, inputs: dict[str, Schema | None]):
    """(ops, output schema or None) for feature `name`; `inputs` maps roles to schemas."""
    base = ("features", name)
    ops: list = []
    if f.join is not None:
        schema = _join(lw, base, f, inputs["left"], inputs["right"], ops)
    else:
        schema = inputs["input"]
    if schema is None:
        return ops, None
    ok = True
    if f.where is not None:
        pred = lw.expr(base + ("where",), f.where, lw.scope(ROW, schema, name), boolean=True)
        ok = pred is not None
        if ok:
            ops.append(ir.Filter(predicate=pred))
    if f.aggregate is not None:
        schema = _aggregate(lw, base, name, f, schema, ops)
        if schema is None:
            return ops, None
    for column, text in (f.columns or {}).items():
        # a failed column stays in the schema untyped, so later uses of it stay quiet
        schema, good = _derive(lw, base + ("columns", column), name, column, text, schema, ops)
        ok = ok and good
    if any(t is None for _, t in schema):
        return ops, None
    if f.select is not None:
        schema = _select(lw, base + ("select",), name, f.select, schema, ops)
    elif f.drop is not None:
        schema = _drop(lw, base + ("drop",), name, f.drop, schema, ops)
    return ops, schema if ok else None


def _names(lw: "Lowering", path: tuple, table: str, names: list[str], schema: Schema) -> bool:
    """Check a list of column names exists once each; report every problem."""
    have, ok, seen = dict(schema), True, set()
    for i, col in enumerate(names):
        if col in seen:
            lw.diags.add("E0405", f"column '{col}' is listed twice", lw.doc.span(path + (i,)))
            ok = False
        elif col not in have:
            lw.diags.add("E0203", f"unknown column '{col}'", lw.doc.span(path + (i,)),
                         suggest(col, [c for c, _ in schema], f"columns of {table}"))
            ok = False
        seen.add(col)
    return ok


def _join(lw: "Lowering", base: tuple, f: Feature, left: Schema | None, right: Schema | None, ops: list):
    j = f.join
    if left is None or right is None:
        return None
    path = base + ("join", "on")
    lt, rt = dict(left), dict(right)
    ok = True
    for i, key in enumerate(j.on):
        span = lw.doc.span(path + (i,) if isinstance(lw.doc_value(path), list) else path)
        missing = [(side, types, table) for side, types, table in
                   (("left", lt, j.left), ("right", rt, j.right)) if key not in types]
        if missing:
            where = " or ".join(f"{table} ({side} side)" for side, _, table in missing)
            side, types, table = missing[0]
            lw.diags.add("E0203", f"join key '{key}' is not a column of {where}", span,
                         suggest(key, types, f"columns of {table}"))
            ok = False
        elif lt[key] != rt[key]:
            lw.diags.add("E0402", f"join key '{key}' is {lt[key]} in {j.left} but {rt[key]} in {j.right}",
                         span, f'cast one side upstream, e.g. cast({key}, "{lt[key]}")')
            ok = False
    if not ok:
        return None
    keys = set(j.on)
    out = [(k, lt[k]) for k in j.on]
    out += [(c, t) for c, t in left if c not in keys]
    clashes = [c for c, _ in right if c not in keys and c in lt]
    if clashes and j.suffixes is None:
        lw.diags.add("E0403", f"{j.left} and {j.right} both have column(s) {', '.join(clashes)}",
                     lw.doc.key_span(base + ("join",)),
                     "rename or drop them upstream, or set `suffixes: [_left, _right]`")
        return None
    if clashes:
        ls, rs = j.suffixes
        out = [(c + ls if c in clashes else c, t) for c, t in out]
        out += [(c + rs if c in clashes else c, t) for c, t in right if c not in keys]
        if len({c for c, _ in out}) != len(out):
            lw.diags.add("E0403", "the join suffixes still leave clashing column names",
                         lw.doc.span(base + ("join", "suffixes")))
            return None
    else:
        out += [(c, t) for c, t in right if c not in keys]
    ops.append(ir.Join(how=j.how, on=tuple(j.on), suffixes=tuple(j.suffixes) if j.suffixes else None))
    return tuple(out)


def _aggregate(lw: "Lowering", base: tuple, name: str, f: Feature, schema: Schema, ops: list):
    keys = list(f.group_by or [])
    if not _names(lw, base + ("group_by",), name, keys, schema):
        return None
    types = dict(schema)
    scope = lw.scope(AGG, schema, name, group_keys=frozenset(keys))
    out = [(k, types[k]) for k in keys]
    aggs, ok = [], True
    for column, text in f.aggregate.items():
        path = base + ("aggregate", column)
        if column in keys:
            lw.diags.add("E0405", f"aggregate '{column}' has the name of a group_by column",
                         lw.doc.key_span(path))
            ok = False
            continue
        typed = lw.expr(path, text, scope)
        if typed is None:
            ok = False
            continue
        if not _has_aggregate(typed):
            lw.diags.add("E0208", f"aggregate column '{column}' does not aggregate anything",
                         lw.doc.span(path), "use sum/mean/min/max/count/count_distinct/stddev")
            ok = False
            continue
        aggs.append((column, typed))
        out.append((column, typed.type if typed.type != T.NULL else T.INT64))
    if not ok:
        return None
    ops.append(ir.Aggregate(keys=tuple(keys), aggregates=tuple(aggs)))
    return tuple(out)


def _has_aggregate(e: E.Expr) -> bool:
    return any(isinstance(n, E.Call) and n.func in AGGREGATE for n in E.walk(e))


def _derive(lw: "Lowering", path: tuple, name: str, column: str, text: str, schema: Schema,
            ops: list) -> tuple[Schema, bool]:
    typed = lw.expr(path, text, lw.scope(ROW, schema, name))
    if typed is not None and typed.type == T.NULL:
        lw.diags.add("E0211", f"column '{column}' is always null and has no type", lw.doc.span(path),
                     'give it one: cast(null, "float64")')
        typed = None
    new_type = typed.type if typed is not None else None
    if typed is not None:
        ops.append(ir.Derive(column=column, expr=typed))
    if column in dict(schema):
        return tuple((c, new_type if c == column else t) for c, t in schema), typed is not None
    return schema + ((column, new_type),), typed is not None


def _select(lw: "Lowering", path: tuple, name: str, cols: list[str], schema: Schema, ops: list):
    if not _names(lw, path, name, cols, schema):
        return None
    if not cols:
        lw.diags.add("E0406", "`select:` is empty, which leaves no columns", lw.doc.span(path))
        return None
    types = dict(schema)
    ops.append(ir.Select(columns=tuple(cols)))
    return tuple((c, types[c]) for c in cols)


def _drop(lw: "Lowering", path: tuple, name: str, cols: list[str], schema: Schema, ops: list):
    if not _names(lw, path, name, cols, schema):
        return None
    kept = tuple((c, t) for c, t in schema if c not in set(cols))
    if not kept:
        lw.diags.add("E0406", "`drop:` removes every column", lw.doc.span(path))
        return None
    ops.append(ir.Select(columns=tuple(c for c, _ in kept)))
    return kept
