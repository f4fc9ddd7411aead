"""Generate the small synthetic retail data set used by examples/demand/pipeline.yaml.

Deterministic: a fixed seed, numpy + pyarrow only, and fixed writer settings,
so re-running it rewrites byte-identical files.

    python examples/demand/generate_data.py

Writes into examples/demand/data/:

  sales.parquet   daily units sold per store and product (2025-01-06 .. 2025-05-18)
  stores.csv      one row per store
  products.csv    one row per product
  holidays.csv    public holidays in the sales period

Demand has real structure: store size and format, product popularity, a
weekly cycle (weekend peaks, with a different shape for mall stores),
promotions (price cut + uplift), holidays, a mild upward trend, and
Poisson noise.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

SEED = 7031
START = dt.date(2025, 1, 6)  # a Monday
N_DAYS = 133                 # 19 weeks
OUT = Path(__file__).resolve().parent / "data"

# store_id, city, format, floor area (m2), opened, base demand multiplier
STORES = [
    (1, "Lyon", "mall", 1850.0, dt.date(2012, 3, 15), 1.45),
    (2, "Lyon", "street", 620.0, dt.date(2018, 9, 1), 0.80),
    (3, "Grenoble", "street", 540.0, dt.date(2020, 5, 20), 0.70),
    (4, "Annecy", "outlet", 980.0, dt.date(2016, 11, 2), 1.00),
    (5, "Saint-Etienne", "mall", 1420.0, dt.date(2023, 2, 10), 1.15),
]
# product_id, name, category, list price, base units per day
PRODUCTS = [
    (101, "Sparkling water 6x1.5L", "drinks", 3.49, 11.0),
    (102, "Coffee beans 1kg", "grocery", 14.90, 4.0),
    (103, "Sunscreen SPF50", "personal_care", 9.99, 2.5),
    (104, "Pasta 500g", "grocery", 1.29, 14.0),
]
HOLIDAYS = [
    (dt.date(2025, 1, 1), "New Year's Day"),
    (dt.date(2025, 4, 21), "Easter Monday"),
    (dt.date(2025, 5, 1), "Labour Day"),
    (dt.date(2025, 5, 8), "Victory in Europe Day"),
    (dt.date(2025, 5, 29), "Ascension Day"),
]
# weekly shape, Monday first
WEEKLY = {"street": [0.85, 0.90, 0.95, 1.00, 1.20, 1.35, 0.75],
          "mall": [0.75, 0.80, 0.85, 0.95, 1.20, 1.60, 1.25],
          "outlet": [0.70, 0.75, 0.80, 0.90, 1.15, 1.70, 1.30]}


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write(",".join(header) + "\n")
        for row in rows:
            f.write(",".join(_quote(v) for v in row) + "\n")


def _quote(v: str) -> str:
    return '"' + v.replace('"', '""') + '"' if any(ch in v for ch in ',"\n') else v


def main() -> None:
    rng = np.random.default_rng(SEED)
    OUT.mkdir(parents=True, exist_ok=True)

    write_csv(OUT / "stores.csv", ["store_id", "city", "store_format", "floor_area_m2", "opened"],
              [[str(s), c, f, f"{a:.1f}", o.isoformat()] for s, c, f, a, o, _ in STORES])
    write_csv(OUT / "products.csv", ["product_id", "product_name", "category", "list_price"],
              [[str(p), n, c, f"{lp:.2f}"] for p, n, c, lp, _ in PRODUCTS])
    write_csv(OUT / "holidays.csv", ["date", "holiday_name"],
              [[d.isoformat(), name] for d, name in HOLIDAYS])
    holiday = {d for d, _ in HOLIDAYS}

    cols = {k: [] for k in ("date", "store_id", "product_id", "price", "on_promo", "units")}
    days = [START + dt.timedelta(days=i) for i in range(N_DAYS)]
    for s_id, _, fmt, _, _, s_mult in STORES:
        for p_id, _, category, list_price, base in PRODUCTS:
            # promotions run in one- or two-week blocks, roughly one week in six
            promo_week = rng.random(N_DAYS // 7 + 1) < 0.17
            for i, day in enumerate(days):
                dow = day.weekday()
                promo = bool(promo_week[i // 7])
                price = round(list_price * (0.8 if promo else 1.0) * (0.97 if fmt == "outlet" else 1.0), 2)
                lam = base * s_mult * WEEKLY[fmt][dow]
                lam *= 1.0 + 0.0015 * i                        # slow growth
                lam *= 1.55 if promo else 1.0                  # promo uplift
                if day in holiday:
                    lam *= 0.45 if fmt == "street" else 1.35   # street shops quiet, malls busy
                if category == "personal_care":
                    lam *= 0.7 + 0.6 * i / N_DAYS              # sunscreen: spring ramp-up
                lam *= rng.lognormal(0, 0.08)                  # day-level shocks
                cols["date"].append(day)
                cols["store_id"].append(s_id)
                cols["product_id"].append(p_id)
                cols["price"].append(price)
                cols["on_promo"].append(promo)
                cols["units"].append(int(rng.poisson(lam)))

    sales = pa.table({
        "date": pa.array(cols["date"], pa.date32()),
        "store_id": pa.array(cols["store_id"], pa.int64()),
        "product_id": pa.array(cols["product_id"], pa.int64()),
        "price": pa.array(cols["price"], pa.float64()),
        "on_promo": pa.array(cols["on_promo"], pa.bool_()),
        "units": pa.array(cols["units"], pa.int64()),
    })
    pq.write_table(sales, OUT / "sales.parquet", compression="zstd", use_dictionary=False,
                   write_statistics=True, store_schema=False)

    print(f"sales.parquet: {sales.num_rows} rows")
    print(f"stores.csv: {len(STORES)} rows, products.csv: {len(PRODUCTS)} rows, "
          f"holidays.csv: {len(HOLIDAYS)} rows")


if __name__ == "__main__":
    main()
