"""Column-level lineage from the IR (compiler/lineage.py)."""

from pathlib import Path

import pytest

from pipespec.compiler.lineage import Lineage, Tracer, column_lineage, model_lineage
from pipespec.compiler.lower import compile_file, compile_text

ROOT = Path(__file__).resolve().parent.parent
CUSTOMERS, PLANS, USAGE = "source.customers", "source.plans", "source.usage"
# the `where:` filters on the way to churn_features: is_test (customer_plans) and
# tenure_days >= ... (churn_features), tenure_days being derived from signup_date
CUSTOMER_FILTERS = {(CUSTOMERS, "is_test"), (CUSTOMERS, "signup_date")}


@pytest.fixture(scope="module")
def churn():
    result = compile_file(str(ROOT / "examples" / "churn" / "pipeline.yaml"))
    assert result.ok, result.diagnostics
    return result.ir


def test_source_column_is_its_own_lineage(churn):
    assert column_lineage(churn, CUSTOMERS, "age") == Lineage(frozenset({(CUSTOMERS, "age")}), frozenset())


def test_join_key_comes_from_both_sides(churn):
    lin = column_lineage(churn, "feature.customer_plans", "plan_id")
    assert lin.columns == {(CUSTOMERS, "plan_id"), (PLANS, "plan_id")}
    assert lin.filters == {(CUSTOMERS, "is_test")}


def test_derive_reads_both_join_sides(churn):
    lin = column_lineage(churn, "feature.customer_plans", "discount")  # monthly_fee - monthly_charge
    assert lin.columns == {(PLANS, "monthly_fee"), (CUSTOMERS, "monthly_charge")}


def test_aggregate_and_its_where(churn):
    lin = column_lineage(churn, "feature.usage_recent", "avg_data_gb")
    assert lin == Lineage(frozenset({(USAGE, "data_gb")}), frozenset({(USAGE, "month")}))
    key = column_lineage(churn, "feature.usage_recent", "customer_id")  # a group key maps through
    assert key.columns == {(USAGE, "customer_id")}


def test_count_derives_from_the_group_keys(churn):
    assert column_lineage(churn, "feature.usage_recent", "months_active").columns == {(USAGE, "customer_id")}


def test_model_lineage_of_the_churn_example(churn):
    lineage = model_lineage(churn, "train.churn_gbm")
    train = churn.node("train.churn_gbm")
    assert list(lineage) == [*train.features, "churned"]
    assert lineage["churned"] == Lineage(frozenset({(CUSTOMERS, "churned")}), frozenset(CUSTOMER_FILTERS))
    # a derived column overwriting itself (fill_null) after a left join with an aggregate
    assert lineage["avg_minutes"].columns == {(USAGE, "minutes")}
    assert lineage["avg_minutes"].filters == CUSTOMER_FILTERS | {(USAGE, "month")}
    # if_else(months_active > 0, avg_data_gb / data_allowance_gb, 0.0): months_active is count()
    assert lineage["data_utilisation"].columns == {(PLANS, "data_allowance_gb"), (USAGE, "data_gb"),
                                                   (USAGE, "customer_id")}
    assert lineage["tickets_per_year"].columns == {(CUSTOMERS, "support_tickets"), (CUSTOMERS, "signup_date")}
    assert lineage["month_to_month"].columns == {(CUSTOMERS, "contract")}
    # a derived column reading an earlier derived column of the same feature
    assert lineage["no_usage"].columns == {(USAGE, "customer_id")}


SUFFIXES = """
pipespec: 1
pipeline: sfx
sources:
  a: {format: csv, path: a.csv, schema: {k: int64, v: float64, w: float64}}
  b: {format: csv, path: b.csv, schema: {k: int64, v: float64, z: bool}}
features:
  j:
    join: {left: a, right: b, on: k, how: left, suffixes: [_a, _b]}
    where: z
    columns:
      diff: v_a - v_b
    select: [k, v_a, v_b, diff, w]
"""


def test_suffixed_join_columns_come_from_their_side():
    graph = compile_text(SUFFIXES).ir
    assert column_lineage(graph, "feature.j", "v_a").columns == {("source.a", "v")}
    assert column_lineage(graph, "feature.j", "v_b").columns == {("source.b", "v")}
    assert column_lineage(graph, "feature.j", "diff").columns == {("source.a", "v"), ("source.b", "v")}
    assert column_lineage(graph, "feature.j", "w") == Lineage(frozenset({("source.a", "w")}),
                                                              frozenset({("source.b", "z")}))


def test_errors_name_the_problem(churn):
    with pytest.raises(ValueError, match="no column 'nope'"):
        column_lineage(churn, "feature.churn_features", "nope")
    with pytest.raises(ValueError, match="not a Train node"):
        model_lineage(churn, CUSTOMERS)
    with pytest.raises(ValueError, match="lineage is for table nodes"):
        column_lineage(churn, "train.churn_gbm", "age")


def test_memoized_per_node_and_column(churn):
    tracer = Tracer(churn)
    first = tracer.lineage("feature.churn_features", "discount")
    assert ("feature.customer_plans", "discount") in tracer.memo
    assert tracer.lineage("feature.churn_features", "discount") is first


def test_long_feature_chain_does_not_recurse():
    lines = ["pipespec: 1", "pipeline: chain", "sources:",
             "  s: {format: csv, path: s.csv, schema: {x: float64}}", "features:",
             "  f0: {from: s, columns: {x: x + 1}}"]
    lines += [f"  f{i}: {{from: f{i - 1}, columns: {{x: x + 1}}}}" for i in range(1, 1500)]
    graph = compile_text("\n".join(lines)).ir
    assert column_lineage(graph, "feature.f1499", "x").columns == {("source.s", "x")}
