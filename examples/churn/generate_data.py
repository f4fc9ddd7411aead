"""Generate the small synthetic telecom data set used by examples/churn/pipeline.yaml.

Deterministic: a fixed seed, numpy + pyarrow only, and fixed writer settings,
so re-running it rewrites byte-identical files.

    python examples/churn/generate_data.py

Writes into examples/churn/data/:

  customers.csv   one row per customer (a few are internal test accounts)
  plans.csv       the tariff catalogue
  usage.parquet   one row per customer and billing month (Jan-Apr 2025)

The churn label has real signal: customers churn more on month-to-month
contracts, in their first year, after support complaints, with dropped calls,
overage fees and expensive plans; long-tenure customers on two-year contracts
rarely leave.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 20250430
N_CUSTOMERS = 800
SNAPSHOT = dt.date(2025, 4, 30)  # the day the churn label is observed
MONTHS = [dt.date(2025, m, 1) for m in (1, 2, 3, 4)]
OUT = Path(__file__).resolve().parent / "data"

# plan_id, name, monthly fee, data allowance (GB), roaming included
PLANS = [
    ("basic", "Basic 5", 19.99, 5, False),
    ("plus", "Plus 20", 34.99, 20, False),
    ("pro", "Pro 50", 54.99, 50, True),
    ("unlimited", "Unlimited", 79.99, 200, True),
]
REGIONS = ["metro", "suburban", "rural"]
CONTRACTS = ["month_to_month", "one_year", "two_year"]


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(row) + "\n")


def fmt_bool(b) -> str:
    return "true" if b else "false"


def main() -> None:
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)

    # --- plans -------------------------------------------------------------
    write_csv(OUT / "plans.csv", ["plan_id", "plan_name", "monthly_fee", "data_allowance_gb", "roaming"],
              [[p, n, f"{fee:.2f}", str(gb), fmt_bool(r)] for p, n, fee, gb, r in PLANS])
    plan_fee = {p: fee for p, _, fee, _, _ in PLANS}
    plan_gb = {p: gb for p, _, _, gb, _ in PLANS}

    # --- customers -----------------------------------------------------------
    n = N_CUSTOMERS
    customer_id = np.arange(100001, 100001 + n, dtype=np.int64)
    tenure_days = np.clip(rng.gamma(1.6, 420, n).astype(np.int64) + 5, 5, 3000)
    signup = [SNAPSHOT - dt.timedelta(days=int(t)) for t in tenure_days]
    plan = rng.choice([p[0] for p in PLANS], n, p=[0.35, 0.33, 0.22, 0.10])
    region = rng.choice(REGIONS, n, p=[0.5, 0.32, 0.18])
    # long-tenure customers are more often on long contracts
    p_long = np.clip(0.15 + tenure_days / 2500, 0, 0.8)
    u = rng.random(n)
    contract = np.where(u < 1 - p_long, "month_to_month",
                        np.where(u < 1 - p_long / 2.5, "one_year", "two_year"))
    paperless = rng.random(n) < 0.62
    autopay = rng.random(n) < np.where(paperless, 0.7, 0.35)
    age = np.clip(rng.normal(44, 14, n).round(), 18, 90).astype(np.int64)
    support_tickets = rng.poisson(0.6 + 0.9 * (region == "rural") + 0.4 * (plan == "basic"), n).astype(np.int64)
    is_test = np.zeros(n, dtype=bool)
    is_test[rng.choice(n, 12, replace=False)] = True
    fee = np.array([plan_fee[p] for p in plan])
    # some customers have a loyalty discount
    discount = np.where(rng.random(n) < 0.2, rng.choice([5.0, 10.0], n), 0.0)
    monthly_charge = np.round(fee - discount, 2)

    # --- usage (one row per billing month the customer was active) --------------
    rows = {k: [] for k in ("customer_id", "month", "minutes", "data_gb", "dropped_calls",
                            "intl_calls", "overage_fee")}
    heavy = rng.lognormal(0, 0.45, n)           # per-customer usage intensity
    network_issue = rng.gamma(1.0, 1.0, n) * np.where(region == "rural", 2.2, 0.8)
    no_usage = rng.random(n) < 0.04              # never used the line (SIM in a drawer)
    cust_dropped = np.zeros(n)
    cust_overage = np.zeros(n)
    for i in range(n):
        if no_usage[i]:
            continue
        for m in MONTHS:
            if m < signup[i].replace(day=1):
                continue
            minutes = max(0.0, rng.normal(310, 90) * heavy[i])
            data = max(0.0, rng.gamma(2.0, plan_gb[plan[i]] / 3.2) * heavy[i])
            over = max(0.0, data - plan_gb[plan[i]]) * 4.5
            dropped = int(rng.poisson(network_issue[i] * minutes / 300))
            rows["customer_id"].append(customer_id[i])
            rows["month"].append(m)
            rows["minutes"].append(round(minutes, 1))
            rows["data_gb"].append(round(data, 2))
            rows["dropped_calls"].append(dropped)
            rows["intl_calls"].append(int(rng.poisson(0.8 * heavy[i])))
            rows["overage_fee"].append(round(over, 2))
            cust_dropped[i] += dropped
            cust_overage[i] += over

    # --- the label ---------------------------------------------------------------
    years = tenure_days / 365.0
    logit = (-2.3
             + 2.0 * (contract == "month_to_month") - 1.2 * (contract == "two_year")
             - 0.75 * np.minimum(years, 4)
             + 0.7 * support_tickets
             + 0.15 * np.minimum(cust_dropped, 15)
             + 0.025 * np.minimum(cust_overage, 60)
             + 0.03 * (monthly_charge - 35)
             - 0.6 * autopay
             + 1.0 * no_usage
             + 0.3 * (age < 30)
             + rng.normal(0, 0.3, n))
    churned = rng.random(n) < 1 / (1 + np.exp(-logit))

    cust_rows = []
    for i in range(n):
        cust_rows.append([str(customer_id[i]), signup[i].isoformat(), str(plan[i]), str(region[i]),
                          str(contract[i]), str(age[i]), fmt_bool(paperless[i]), fmt_bool(autopay[i]),
                          f"{monthly_charge[i]:.2f}", str(support_tickets[i]), fmt_bool(is_test[i]),
                          fmt_bool(churned[i])])
    write_csv(OUT / "customers.csv",
              ["customer_id", "signup_date", "plan_id", "region", "contract", "age", "paperless_billing",
               "autopay", "monthly_charge", "support_tickets", "is_test", "churned"], cust_rows)

    usage = pa.table({
        "customer_id": pa.array(rows["customer_id"], pa.int64()),
        "month": pa.array(rows["month"], pa.date32()),
        "minutes": pa.array(rows["minutes"], pa.float64()),
        "data_gb": pa.array(rows["data_gb"], pa.float64()),
        "dropped_calls": pa.array(rows["dropped_calls"], pa.int64()),
        "intl_calls": pa.array(rows["intl_calls"], pa.int64()),
        "overage_fee": pa.array(rows["overage_fee"], pa.float64()),
    })
    pq.write_table(usage, OUT / "usage.parquet", compression="zstd", use_dictionary=False,
                   write_statistics=True, store_schema=False)

    print(f"customers.csv: {n} rows ({int(churned.sum())} churned, {int(is_test.sum())} test accounts)")
    print(f"plans.csv: {len(PLANS)} rows")
    print(f"usage.parquet: {usage.num_rows} rows")


if __name__ == "__main__":
    main()
