"""The surface spec: pydantic models of the YAML file, used at the boundary only.

They validate structure (keys, value types, ranges, mutually exclusive keys) and
generate the JSON Schema that editors use.  Everything semantic (references,
types of columns, expressions) is checked later by `lower`.  Validators raise
`PydanticCustomError` whose type is a diagnostic code, so `validate` can map
every pydantic error to one of our codes without guessing.
"""

from __future__ import annotations

import datetime
import re
from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator, model_validator
from pydantic_core import PydanticCustomError

from .ir import PIPELINE_RE, JoinHow, SourceFormat, Strategy
from .types import ColumnType

_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_MEMORY = re.compile(r"^(\d+(?:\.\d+)?)\s*(B|K|M|G|T|KB|MB|GB|TB|Ki|Mi|Gi|Ti|KiB|MiB|GiB|TiB)?$")
_MEMORY_UNITS = {"B": 1, "K": 10**3, "M": 10**6, "G": 10**9, "T": 10**12, "KB": 10**3, "MB": 10**6,
                 "GB": 10**9, "TB": 10**12, "Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40,
                 "KiB": 2**10, "MiB": 2**20, "GiB": 2**30, "TiB": 2**40}

MAX_MEMORY = 2**63  # bytes: what int64 fields (Kubernetes quantities, Ray) hold

SCHEDULE_PRESETS = frozenset({"@once", "@continuous", "@hourly", "@daily", "@weekly", "@monthly",
                              "@quarterly", "@yearly", "@annually"})
_MONTHS = "JAN FEB MAR APR MAY JUN JUL AUG SEP OCT NOV DEC".split()
_DAYS = "SUN MON TUE WED THU FRI SAT".split()
_CRON_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
                ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _DAYS))
_CRON_PART = re.compile(r"^(\*|[0-9A-Za-z]+(?:-[0-9A-Za-z]+)?)(?:/([0-9]+))?$")
_CRON_SPECIAL = {"day of month": re.compile(r"^(\?|L|LW|([1-9]|[12][0-9]|3[01])W)$"),
                 "day of week": re.compile(r"^(\?|L|L[0-7]|([0-7]|[A-Z]{3})#[1-5])$")}
SQL_SCHEMES = ("sqlite:///", "postgresql://", "postgresql+psycopg://", "postgres://")


def error(code: str, message: str) -> PydanticCustomError:
    return PydanticCustomError(code, message)


def parse_duration(text: str) -> int:
    """Seconds in a duration like `1h30m`; raises PydanticCustomError E0604."""
    m = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not m or not any(m.groups()):
        raise error("E0604", f"'{text}' is not a duration (e.g. 30s, 15m, 2h, 1d, 1h30m)")
    d, h, mi, s = (int(g or 0) for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def cron_problem(text: str) -> str | None:
    """What is wrong with a cron expression as Airflow (croniter) reads it, or None: 5 fields
    (minute hour day month weekday) and an optional 6th (seconds).  Each field: `*`, a value, a
    range `a-b`, each optionally `/step`, comma-separated; months and weekdays also by name
    (JAN, MON; weekday 7 is Sunday); `?` in day and weekday; `L`, `LW` and `nW` in day; `L`,
    `Ln` (the last weekday n of the month) and `n#k` in weekday."""
    fields = text.split()
    if len(fields) not in (5, 6):
        return f"{len(fields)} fields, expected 5: minute hour day month weekday (and seconds)"
    for value, (what, low, high, names) in zip(fields, _CRON_FIELDS + (("second", 0, 59, ()),)):
        for part in value.split(","):
            if not _cron_part_ok(part, what, low, high, names):
                return f"{what} {part!r} is not in {low}-{high}" + (f" or {names[0]}-{names[-1]}" if names else "")
    return None


def _cron_part_ok(part: str, what: str, low: int, high: int, names: list[str]) -> bool:
    special = _CRON_SPECIAL.get(what)
    if special and special.match(part.upper()):
        token = re.match(r"^L?(\d+|[A-Z]{3})", part.upper())  # the day in 15W, L5, MON#1
        value = _cron_value(token.group(1), names) if token else low
        return value is not None and low <= value <= high
    m = _CRON_PART.match(part)
    if not m:
        return False
    ends = [] if m.group(1) == "*" else m.group(1).split("-")
    numbers = [_cron_value(e, names) for e in ends]
    step_ok = m.group(2) is None or int(m.group(2)) > 0
    return step_ok and None not in numbers and all(low <= n <= high for n in numbers)


def _cron_value(text: str, names: list[str]) -> int | None:
    if text.isdigit():
        return int(text)
    upper = text.upper()
    if upper in names:
        return names.index(upper) + (1 if names is _MONTHS else 0)
    return None


def parse_memory(text: str) -> int:
    """Bytes in a memory size like `4GiB` or `512Mi`; raises PydanticCustomError E0104."""
    m = _MEMORY.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise error("E0104", f"'{text}' is not a memory size (e.g. 512MiB, 4GiB, 2G)")
    value = float(m.group(1)) * _MEMORY_UNITS[m.group(2) or "B"]
    if value <= 0:
        raise error("E0104", "memory must be positive")
    if value >= MAX_MEMORY:  # also infinity: float() of a 400-digit number
        shown = text if len(text) <= 30 else f"{text[:12]}… ({len(text):,} characters)"
        raise error("E0104", f"memory size {shown} is too large (at most 2^63 - 1 bytes)")
    return int(value)


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, populate_by_name=True)


def _expr_text(v: Any) -> Any:
    """Scalars are accepted as constant expressions: `flag: 1` means the literal 1."""
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    return v


ExprField = Field(None, description="a boolean expression (SPEC.md, Expressions)")

_STR_OR_LIST = {"anyOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]}
_SCALAR_EXPR = {"anyOf": [{"type": "string"}, {"type": "number"}, {"type": "boolean"}, {"type": "null"}]}
OneOrMany = Annotated[list[str], WithJsonSchema(_STR_OR_LIST)]
ExprMap = Annotated[dict[str, str], WithJsonSchema(
    {"type": "object", "additionalProperties": _SCALAR_EXPR})]
Memory = Annotated[str, WithJsonSchema({"anyOf": [{"type": "string"}, {"type": "integer"}]})]


class Resources(Strict):
    """Compute requested by a step; the targets map it to their own resource requests."""

    cpus: Optional[float] = Field(None, description="CPU cores (may be fractional)")
    memory: Optional[Memory] = Field(None, description="e.g. 512MiB, 4GiB, 2G, or a number of bytes")
    gpus: Optional[int] = Field(None, description="number of GPUs")

    @field_validator("cpus")
    @classmethod
    def _cpus(cls, v):
        if v is not None and v <= 0:
            raise error("E0104", "cpus must be a positive number")
        return v

    @field_validator("gpus")
    @classmethod
    def _gpus(cls, v):
        if v is not None and v < 0:
            raise error("E0104", "gpus must be 0 or more")
        return v

    @field_validator("memory", mode="before")
    @classmethod
    def _memory_bytes(cls, v):
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("memory")
    @classmethod
    def _memory(cls, v):
        if v is not None:
            parse_memory(v)
        return v


class Source(Strict):
    """A table read from a file, a URI, or a SQL query."""

    format: SourceFormat
    path: Optional[str] = Field(None, description="relative to the spec file, or an fsspec URI")
    uri: Optional[str] = Field(None, description="database URI for format: sql, e.g. sqlite:///x.db")
    query: Optional[str] = Field(None, description="SQL query for format: sql")
    schema_: Optional[dict[str, ColumnType]] = Field(None, alias="schema",
                                                     description="column -> type")
    description: Optional[str] = None

    @model_validator(mode="after")
    def _location(self):
        if self.format == "sql":
            if self.path is not None:
                raise error("E0106", "a sql source takes `uri:` and `query:`, not `path:`")
            if self.uri is None or self.query is None:
                raise error("E0106", "a sql source needs both `uri:` and `query:`")
            if not self.uri.startswith(SQL_SCHEMES):
                raise error("E0104", f"unsupported database URI '{self.uri.split(':')[0]}:'; "
                            f"use one of {', '.join(SQL_SCHEMES)}")
        else:
            if self.uri is not None or self.query is not None:
                raise error("E0106", f"a {self.format} source takes `path:`; `uri:`/`query:` are for sql")
            if self.path is None:
                raise error("E0102", f"a {self.format} source needs `path:`")
        return self


class Join(Strict):
    left: str
    right: str
    on: OneOrMany = Field(description="key column, or a list of key columns")
    how: JoinHow = "inner"
    suffixes: Optional[list[str]] = Field(
        None, min_length=2, max_length=2,
        description="[left_suffix, right_suffix] for clashing non-key columns")

    @field_validator("on", mode="before")
    @classmethod
    def _one_key(cls, v):
        return [v] if isinstance(v, str) else v


class Feature(Strict):
    """One table transform: where -> (join | group_by/aggregate) -> columns -> select/drop."""

    from_: Optional[str] = Field(None, alias="from", description="input table (source or feature)")
    join: Optional[Join] = None
    where: Optional[Annotated[str, WithJsonSchema(_SCALAR_EXPR)]] = ExprField
    group_by: Optional[list[str]] = None
    aggregate: Optional[ExprMap] = None
    columns: Optional[ExprMap] = None
    select: Optional[list[str]] = None
    drop: Optional[list[str]] = None
    resources: Optional[Resources] = None
    retries: Optional[int] = Field(None, ge=0)
    description: Optional[str] = None

    @field_validator("columns", "aggregate", mode="before")
    @classmethod
    def _scalars(cls, v):
        return {k: _expr_text(x) for k, x in v.items()} if isinstance(v, dict) else v

    @field_validator("where", mode="before")
    @classmethod
    def _where(cls, v):
        return _expr_text(v)

    @model_validator(mode="after")
    def _form(self):
        if (self.from_ is None) == (self.join is None):
            raise error("E0106", "a feature needs exactly one of `from:` or `join:`"
                        if self.from_ is None else "`from:` and `join:` exclude each other")
        if self.select is not None and self.drop is not None:
            raise error("E0106", "`select:` and `drop:` exclude each other")
        if self.group_by is not None and self.aggregate is None:
            raise error("E0106", "`group_by:` needs `aggregate:`")
        if self.join is not None and self.aggregate is not None:
            raise error("E0106", "aggregate in a separate feature that reads the join")
        return self


SEED_MAX = 2**32 - 1  # what NumPy's (and so scikit-learn's) random_state takes


class Split(Strict):
    test_size: float = 0.2
    stratify: bool = False
    seed: int = Field(0, ge=0, le=SEED_MAX)

    @field_validator("test_size")
    @classmethod
    def _size(cls, v):
        if not 0 < v < 1:
            raise error("E0506", f"test_size must be between 0 and 1 (exclusive), got {v}")
        return v


class CV(Strict):
    folds: int = 5
    seed: int = Field(0, ge=0, le=SEED_MAX)

    @field_validator("folds")
    @classmethod
    def _folds(cls, v):
        if v < 2:
            raise error("E0506", f"cv needs at least 2 folds, got {v}")
        return v


class Model(Strict):
    """A scikit-learn estimator trained on one table."""

    from_: str = Field(alias="from", description="training table")
    target: str
    features: Optional[list[str]] = Field(
        None, description="default: every column but the target and the keys")
    keys: list[str] = Field(default_factory=list, description="identifier columns, never features")
    estimator: str = Field(description="dotted scikit-learn class, e.g. "
                           "sklearn.ensemble.RandomForestClassifier")
    params: dict[str, Any] = Field(default_factory=dict, description="estimator constructor arguments")
    split: Optional[Split] = None
    cv: Optional[CV] = None
    metrics: list[str] = Field(min_length=1)
    resources: Optional[Resources] = None
    retries: Optional[int] = Field(None, ge=0)
    description: Optional[str] = None

    @model_validator(mode="after")
    def _evaluation(self):
        if self.split is not None and self.cv is not None:
            raise error("E0106", "`split:` and `cv:` exclude each other")
        return self


class Gate(Strict):
    """Checks that must all hold: over a model's metrics, or over a table's data."""

    model: Optional[str] = None
    table: Optional[str] = None
    require: OneOrMany = Field(min_length=1, description="boolean expressions")
    description: Optional[str] = None

    @field_validator("require", mode="before")
    @classmethod
    def _one(cls, v):
        return [v] if isinstance(v, str) else v

    @model_validator(mode="after")
    def _subject(self):
        if (self.model is None) == (self.table is None):
            raise error("E0106", "a gate needs exactly one of `model:` or `table:`")
        return self


class Step(Strict):
    traffic: float = Field(description="percent of traffic, 0 < traffic <= 100")
    hold: Optional[str] = Field(None, description="how long to observe, e.g. 30m, 2h")

    @field_validator("traffic")
    @classmethod
    def _traffic(cls, v):
        if not 0 < v <= 100:
            raise error("E0603", f"traffic must be in (0, 100], got {v}")
        return v

    @field_validator("hold")
    @classmethod
    def _hold(cls, v):
        if v is not None:
            parse_duration(v)
        return v


class Rollout(Strict):
    """How a trained model replaces the one in production."""

    model: str
    requires: OneOrMany = Field(default_factory=list, description="gates that must pass first")

    @field_validator("requires", mode="before")
    @classmethod
    def _one_gate(cls, v):
        return [v] if isinstance(v, str) else v
    strategy: Strategy = "canary"
    steps: list[Step] = Field(default_factory=list)
    rollback_if: Optional[str] = Field(None, description="boolean expression over serving metrics")
    replay: Optional[str] = Field(
        None, description="table (source or feature) whose rows the local rollout simulation "
        "replays as traffic; default: the model's held-out rows")
    description: Optional[str] = None


class AirflowOptions(Strict):
    dag_id: Optional[str] = Field(None, pattern=r"^[A-Za-z0-9_.-]{1,250}$")
    schedule: Optional[str] = Field(None, description="cron expression or @daily-style preset")
    start_date: Optional[str] = Field(None, pattern=r"^\d{4}-\d{2}-\d{2}$")
    catchup: bool = False
    tags: list[str] = Field(default_factory=list)
    owner: Optional[str] = None
    retries: Optional[int] = Field(None, ge=0)
    retry_delay: Optional[str] = None
    pool: Optional[str] = None
    operator: Literal["python", "bash", "kubernetes"] = "python"
    image: Optional[str] = None
    namespace: Optional[str] = None

    @field_validator("schedule")
    @classmethod
    def _schedule(cls, v):
        if v is not None and v not in SCHEDULE_PRESETS:
            why = cron_problem(v)
            if why:
                raise error("E0104", f"'{v}' is neither a cron expression ({why}) nor one of "
                                     + ", ".join(sorted(SCHEDULE_PRESETS)))
        return v

    @field_validator("start_date")
    @classmethod
    def _date(cls, v):
        if v is not None:
            try:
                datetime.date.fromisoformat(v)
            except ValueError as exc:
                raise error("E0104", f"'{v}' is not a date: {exc}") from None
        return v

    @field_validator("retry_delay")
    @classmethod
    def _delay(cls, v):
        if v is not None:
            parse_duration(v)
        return v


class KubeflowOptions(Strict):
    image: Optional[str] = None
    pipeline_root: Optional[str] = None
    namespace: Optional[str] = None
    service_account: Optional[str] = None
    caching: bool = True
    manifest: Literal["pipeline", "kubernetes"] = "pipeline"


class RayOptions(Strict):
    address: Optional[str] = None
    namespace: Optional[str] = None
    object_store_memory: Optional[Memory] = None

    @field_validator("object_store_memory", mode="before")
    @classmethod
    def _mem_bytes(cls, v):
        return str(v) if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("object_store_memory")
    @classmethod
    def _mem(cls, v):
        if v is not None:
            parse_memory(v)
        return v


class Targets(Strict):
    airflow: Optional[AirflowOptions] = None
    kubeflow: Optional[KubeflowOptions] = None
    ray: Optional[RayOptions] = None


Scalar = Any  # int | float | bool | str, checked by `lower` (E0701)


class SpecFile(Strict):
    """A pipespec file (language version 1)."""

    pipespec: int = Field(description="language version; must be 1")
    pipeline: str = Field(pattern=PIPELINE_RE, description="pipeline name")
    description: Optional[str] = None
    params: dict[str, Scalar] = Field(default_factory=dict,
                                      description="name -> default (int, float, bool or string)")
    sources: dict[str, Source] = Field(default_factory=dict)
    features: dict[str, Feature] = Field(default_factory=dict)
    models: dict[str, Model] = Field(default_factory=dict)
    gates: dict[str, Gate] = Field(default_factory=dict)
    rollout: Optional[Rollout | list[Rollout]] = Field(
        None, description="one rollout policy, or a list of them (at most one per model)")
    targets: Optional[Targets] = None

    @field_validator("pipespec")
    @classmethod
    def _version(cls, v):
        if v != 1:
            raise error("E0105", f"language version {v} is not supported (this release reads version 1)")
        return v


SECTIONS: dict[str, type[Strict]] = {"sources": Source, "features": Feature, "models": Model,
                                     "gates": Gate}
