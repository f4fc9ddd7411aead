"""The table of diagnostic codes.  Codes are stable: never renumber, only add.

`pipespec explain CODE` prints the long text; SPEC.md lists every code and a
test checks that each one has an example in specs/invalid/.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Code:
    title: str
    explanation: str


def _c(title: str, explanation: str) -> Code:
    return Code(title, " ".join(explanation.split()))


CODES: dict[str, Code] = {
    # E00xx: reading the file
    "E0001": _c("cannot read spec file", """The spec path does not exist, is a directory or
        another file that is not a regular file (a FIFO, a device: refused without reading, so
        a pipe never blocks the check), is not readable, or is not UTF-8 text (binary files are
        rejected)."""),
    "E0002": _c("YAML syntax error", """The file is not valid YAML. The position points at where the
        YAML parser gave up; the real mistake is often just before it (a missing colon, bad
        indentation, an unclosed quote or bracket). Inside flow mappings `{...}` a value that
        starts with `$` or contains `:` must be quoted."""),
    "E0003": _c("spec root is not a mapping", """A spec file must be a single YAML document whose
        top level is a mapping (`pipespec: 1`, `pipeline: name`, ...). Empty files, lists and
        multi-document streams are rejected."""),
    "E0004": _c("duplicate key", """The same key appears twice in one YAML mapping. YAML loaders
        usually keep the last one silently; pipespec rejects it because the first definition
        would be lost without warning."""),
    "E0005": _c("spec too large or too deeply nested", """The file exceeds a safety limit: file
        size (16 MiB), nesting depth (64), total YAML nodes after alias expansion (1,000,000), or
        expression length (10,000 characters) and nesting depth (200). These limits stop alias
        bombs and pathological input from exhausting memory or the stack."""),
    "E0006": _c("unsupported YAML feature", """Anchors/aliases used as mapping keys, merge keys
        (`<<`), non-string mapping keys and custom tags (`!!python/...`) are not part of the
        spec language."""),
    # E01xx: structure
    "E0101": _c("unknown key", """A mapping contains a key the spec language does not define at
        that place. Check the spelling (the hint suggests the closest valid key) or the
        indentation (the key may belong to a different level)."""),
    "E0102": _c("missing required key", """A required key is absent, e.g. `pipeline:` at the top
        level, `format:` on a source or `estimator:` on a model."""),
    "E0103": _c("wrong value type", """A value has the wrong YAML type, e.g. a list where a mapping
        is expected or a string where a number is expected. YAML quoting matters: `"5"` is a
        string, `5` a number."""),
    "E0104": _c("invalid value", """A value has the right type but is not allowed: a name that does
        not match its pattern, an unknown enum choice, a number out of range, a malformed
        memory size (or one of 2^63 bytes or more), an integer outside 64 bits (-2^63 to
        2^63 - 1), or a non-finite number (`.inf`, `.nan`), which no spec value accepts."""),
    "E0105": _c("unsupported language version", """`pipespec:` gives the language version of the
        file. This release understands version 1."""),
    "E0106": _c("conflicting or incomplete keys", """Keys that exclude each other are both present
        (`from` and `join`, `select` and `drop`, `split` and `cv`, a gate's `model` and `table`,
        `join` with `aggregate`, a sql source's `path`), or a key requires another that is missing
        (`group_by` without `aggregate`, a sql source's `uri` and `query`)."""),
    # E02xx: expressions
    "E0201": _c("expression syntax error", """An expression could not be parsed. Expressions use
        Python-like syntax: `and or not`, `== != < <= > >=`, `+ - * / %`, `x in [..]`,
        `x is null`, function calls, and backquotes for odd column names. Comparisons do not
        chain (`a < b < c`): write `a < b and b < c`."""),
    "E0202": _c("unknown function", """The expression calls a function that is not in pipespec's
        function library (in a table gate: neither a data check nor a scalar function). An
        aggregate in the wrong place is E0208 (E0601 in a table gate). See SPEC.md, "Functions"."""),
    "E0203": _c("unknown column", """The expression (or a `select`, `drop`, `group_by`, join key,
        model target or feature list) names a column that the input table does not have at that
        point. Columns defined under `columns:` are visible to later columns of the same feature,
        and aggregated columns replace the input columns."""),
    "E0204": _c("wrong number of arguments", """A function was called with too few or too many
        arguments."""),
    "E0205": _c("argument type mismatch", """A function argument has a type the function does not
        accept, e.g. `sqrt("x")`, `year(amount)`, or a non-literal where a literal is needed
        (`cast(x, "type")`, `round(x, digits)`)."""),
    "E0206": _c("operator type mismatch", """An operator is applied to types it does not support:
        arithmetic on strings or booleans, comparing a date with a number, `and`/`or`/`not` on
        non-booleans, `in` lists whose items do not match the left side."""),
    "E0207": _c("expression must be boolean", """`where:`, gate `require:` entries and
        `rollback_if:` must be boolean expressions."""),
    "E0208": _c("misplaced aggregate", """Aggregate functions (`sum mean min max count
        count_distinct stddev`) are only legal in `aggregate:`; there, every column must be
        inside an aggregate or be a `group_by` column, and aggregates do not nest."""),
    "E0209": _c("unknown parameter", """An expression or `${params.x}` reference names a parameter
        that is not declared under `params:`."""),
    "E0210": _c("unknown metric", """A gate or rollback condition names a metric that is not
        available: model gates may use the metrics the model declares under `metrics:` (and
        `production.<metric>` for the same metrics); `rollback_if` may use the serving metrics
        `error_rate latency_p50_ms latency_p99_ms prediction_drift`."""),
    "E0211": _c("invalid literal", """A literal is malformed: `date("...")` needs an ISO date
        `YYYY-MM-DD`, `timestamp("...")` an ISO timestamp, `cast(x, "type")` one of the column
        types; an integer literal must fit in 64 bits and a number literal must be finite (`1e999`
        is out of range); a derived column cannot be just `null`."""),
    # E03xx: references and the graph
    "E0301": _c("unknown table", """`from:`, `join.left`, `join.right`, a model's `from:` or a table
        gate names a table that is neither a source nor a feature."""),
    "E0302": _c("unknown model", """A gate or rollout names a model that is not declared under
        `models:`."""),
    "E0303": _c("unknown gate", """`rollout.requires` names a gate that is not declared under
        `gates:`."""),
    "E0304": _c("dependency cycle", """Features refer to each other in a loop. The message lists
        every table on the loop in order; break it by reading from a source instead."""),
    "E0305": _c("duplicate name", """A source and a feature share a name. Sources and features
        form one namespace because `from:` can name either."""),
    # E04xx: tables and schemas
    "E0401": _c("unknown column type", """A source `schema:` names a type that is not one of
        `int64 int32 float64 float32 bool string date timestamp` (an unknown type in
        `cast(x, "type")` is E0211)."""),
    "E0402": _c("join key type mismatch", """The join key columns have different types on the two
        sides. Cast one side in an upstream feature so both match exactly."""),
    "E0403": _c("join column clash", """Both sides of a join have a non-key column with the same
        name. Rename one upstream, drop it, or set `suffixes: [left_suffix, right_suffix]`."""),
    "E0404": _c("cannot type source", """A source has no `schema:` and its file could not be
        read to infer one (missing, unreachable, a SQL source, or a column of a type pipespec
        cannot represent). Declare `schema:` so the
        columns that use it can be type-checked before any data is read."""),
    "W0404": _c("declared schema differs from the file", """Warning. The source's file is
        reachable at check time and its columns do not match `schema:`: a declared column is
        missing from the file, or (for Parquet and Arrow files, whose types are exact) has
        another type. The run would fail when it enforces the schema on read."""),
    "E0405": _c("duplicate column", """A column appears twice: in `select`, `drop`, `group_by`, a
        model's `features` or `keys`, or as an aggregate named like a group_by column."""),
    "E0406": _c("empty table", """A transform would produce a table with no columns (for example
        `drop:` removes every column)."""),
    # E05xx: models
    "E0501": _c("invalid estimator", """`estimator:` must be the dotted path of a scikit-learn
        estimator class (`sklearn.<module>.<Class>`) that is a classifier or a regressor.
        Arbitrary imports are not allowed, so a spec cannot run foreign code."""),
    "E0502": _c("invalid estimator parameter", """A key under a model's `params:` is not an
        argument of the estimator's constructor, or its value is rejected by scikit-learn's
        own parameter validation."""),
    "E0503": _c("invalid metric", """A metric is unknown, or does not fit the model's task
        (classification metrics such as `roc_auc` need a classifier; `r2`, `mae`, `rmse` a
        regressor)."""),
    "E0504": _c("invalid target column", """The model's `target:` does not have a usable type:
        a classifier target must be bool, integer or string; a regressor's must be numeric.
        The target must not also be listed as a feature or key."""),
    "E0505": _c("invalid feature column", """A model feature has a type scikit-learn estimators
        cannot consume directly (string, date, timestamp). Derive a numeric column in a feature
        (`if_else`, `year(...)`, `days_between(...)`) or drop it."""),
    "E0506": _c("invalid split", """`split.test_size` must be in (0, 1); `cv.folds` at least 2;
        `stratify` only applies to classifiers."""),
    # E06xx: gates and rollout
    "E0601": _c("invalid data check", """A table gate's `require:` uses a data check wrongly: the
        checks are `row_count() null_fraction(col) distinct_count(col) min(col) max(col)
        mean(col)`, their arguments must be column names, and bare columns outside a check are
        not allowed."""),
    "E0602": _c("duplicate rollout", """A model has more than one rollout policy."""),
    "E0603": _c("invalid rollout steps", """Canary steps must have strictly increasing traffic in
        (0, 100] ending at 100; `direct` takes no steps; `blue_green` at most one step with
        traffic 100; shadow traffic is a mirrored share in (0, 100]."""),
    "E0604": _c("invalid duration", """Durations are a number and a unit, optionally repeated:
        `30s`, `15m`, `2h`, `1d`, `1h30m`."""),
    "E0605": _c("rollout gate mismatch", """A rollout requires a model gate that checks a
        different model than the one being rolled out."""),
    # E07xx: params
    "E0701": _c("invalid parameter default", """A `params:` default must be a scalar: int, float,
        bool or string (not null, a list or a mapping)."""),
    "E0702": _c("invalid parameter override", """A `--param name=value` override names an unknown
        parameter, is not of the form `name=value`, or its value cannot be read as the type of
        the parameter's default."""),
    "E0703": _c("parameter type mismatch", """A value that is exactly `${params.x}` takes the
        parameter's type, which does not fit where it is used (e.g. a string parameter where
        a number is required)."""),
    # E08xx: running (pipespec run / plan / step); reported at the node's YAML position
    "E0801": _c("source data not found", """A source's file does not exist or cannot be opened
        (relative paths resolve against the directory of the spec, or `--root` for `pipespec
        step`), a remote URL's protocol has no fsspec driver installed, or a `sql` source's
        database cannot be opened (the local runtime reads `sqlite:///` URIs)."""),
    "E0802": _c("data does not match the schema", """The data read for a source lacks a declared
        column or holds values that cannot be read as the declared type, or a table operation
        failed on the actual data. The message names the column and the file."""),
    "E0803": _c("estimator failed", """scikit-learn raised while fitting, predicting or scoring a
        model: often missing values (NaN) given to an estimator that does not accept them, or
        too few rows for the split. Fill or drop nulls in a feature, or pick an estimator that
        handles them (HistGradientBoosting*). Also reported before fitting, naming the column,
        for data no estimator can learn from: a classifier target with a single class, or a
        feature that is null in every row, in the table or in the training rows of the split
        or of a cv fold."""),
    "E0804": _c("store error", """The store could not be read or written: permissions, no space
        left on device, an unreachable remote store, a missing object, a path that would leave
        the store, or a run or registry record that is damaged (the message names the file;
        `pipespec cache verify --delete` removes it). Nothing half-written is ever visible; free
        the resource and run again."""),
    "E0805": _c("corrupt or untrusted artifact", """An artifact read from the store does not hash
        to its name (it was modified or damaged on disk), or a model file contains a type
        outside scikit-learn and NumPy. A run first recomputes a corrupt input by re-running its
        producer; E0805 means that did not help, or the artifact has no producer in this
        pipeline (a production model of an earlier run). Run `pipespec cache verify --delete`:
        it removes corrupt files (and archives a registry version whose model is lost); the
        next run recomputes what it needs."""),
    "E0806": _c("unexpected failure", """An operation failed in a way pipespec does not classify
        (including running out of memory). The message carries the original error."""),
    "E0807": _c("upstream result missing", """`pipespec step` (or `show`) needs the output of a
        node that has not run for the current inputs: run the upstream node first, or the
        whole pipeline."""),
    "E0808": _c("unknown node", """A node named on the command line (`--only`, `--force`,
        `show`, `step --node`, or a `step --rollout-step` the rollout does not have) is not in
        the pipeline. Nodes are named by id
        (`feature.churn_features`) or, when unambiguous, by name (`churn_features`)."""),
}


def explain(code: str) -> str | None:
    c = CODES.get(code.upper())
    return f"{code.upper()}: {c.title}\n\n{c.explanation}" if c else None
