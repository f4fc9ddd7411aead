"""Benchmark: how long `pipespec check` takes on large specs (front end only, one process).

Generates specs with N = 100, 1,000 and 10,000 feature nodes and times, separately:

* load      YAML text -> data with positions (loader.load_text)
* validate  params + pydantic structural validation (params.resolve/substitute, validate)
* lower     reference resolution, cycle check, type-checking, IR build (Lowering.run)
* json      IR serialization (Graph.to_json)
* total     compile_text(...) + to_json, end to end

The generated specs are a realistic mix: a few sources with schemas; chains of
features with `where`, `columns` and `select` reading earlier features; every
10th feature a `group_by` aggregate and every 10th a join of a chain table with
the latest aggregate; at the end a model, a model gate, a table gate and a
canary rollout.  Generation is deterministic (fixed seed).

Usage (from the repository root)::

    python bench/bench_check.py                 # N = 100, 1000, 10000
    python bench/bench_check.py --sizes 100 1000
    python bench/bench_check.py --profile 10000 # cProfile of the whole compile, top 25
    python bench/bench_check.py --write /tmp/big.yaml --sizes 10000   # also save the spec

Timing: time.perf_counter, best of 3 runs for N < 10,000 and best of 2 for
10,000.  Target (the issue): 10,000 nodes type-checked and compiled in < 2 s on
one core.  The "us/node" column divides by the number of feature nodes; the
"growth" column is the ratio of per-node total times between consecutive sizes
(about 1.0 means linear scaling).
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import pstats
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipespec.compiler import exprparse, loader
from pipespec.compiler import params as P
from pipespec.compiler.diagnostics import Diagnostics
from pipespec.compiler.ir import gc_paused
from pipespec.compiler.lower import Lowering, compile_text
from pipespec.compiler.validate import validate

BASE = "{id: int64, k: int32, a: float64, b: float64, c: int64, s: string, d: date, flag: bool}"
BASE_COLS = "[id, k, a, b, c, s, d, flag]"


def generate(n: int, seed: int = 0) -> str:
    """A valid spec with exactly `n` features."""
    rnd = random.Random(seed)
    n_sources = max(3, n // 200)
    out = ["pipespec: 1", f"pipeline: bench-{n}", "params:", "  threshold: 0.5", "  scale: 3",
           "  seed: 42", "sources:"]
    for i in range(n_sources):
        out += [f"  src_{i}:", "    format: parquet", f"    path: data/src_{i}.parquet", f"    schema: {BASE}"]
    out.append("features:")
    base_tables = [f"src_{i}" for i in range(n_sources)]  # tables with the BASE schema
    last_agg = None
    for i in range(n):
        name = f"f_{i:05d}"
        pick = rnd.choice(base_tables[-50:])
        kind = i % 10
        if kind == 3:  # aggregate
            out += [f"  {name}:", f"    from: {pick}", "    group_by: [id]", "    aggregate:",
                    f"      n_{i}: count()", f"      sa_{i}: sum(a)", f"      mb_{i}: mean(b)",
                    f"      mx_{i}: max(d)"]
            last_agg = (name, i)
        elif kind == 7 and last_agg:  # join with the latest aggregate
            agg, j = last_agg
            out += [f"  {name}:", f"    join: {{left: {pick}, right: {agg}, on: id, how: left}}",
                    f"    where: n_{j} > 0 and mx_{j} >= date(\"2025-01-01\")",
                    "    columns:", f"      a: coalesce(a + sa_{j} / n_{j}, 0.0)",
                    f"      b: if_else(mb_{j} is null, b, mb_{j})",
                    f"    select: {BASE_COLS}"]
            base_tables.append(name)
        else:  # chain step
            out += [f"  {name}:", f"    from: {pick}",
                    f"    where: a > params.threshold * {i % 7} or (flag and s in [\"x\", \"y\", \"z\"])",
                    "    columns:", f"      x_{i}: a * b + cast(c, \"float64\") / params.scale",
                    f"      a: round(x_{i} - abs(b), 2)",
                    f"      c: c + year(d) - {i % 5}",
                    "      flag: flag or lower(s) == \"vip\" and k % 2 == 0",
                    f"    select: {BASE_COLS}"]
            base_tables.append(name)
    last = base_tables[-1]
    out += ["  train_table:", f"    from: {last}", "    select: [id, k, a, b, c, flag]",
            "models:", "  m:", "    from: train_table", "    target: flag", "    keys: [id]",
            "    estimator: sklearn.linear_model.LogisticRegression",
            "    params: {C: 1.0, random_state: \"${params.seed}\"}",
            "    split: {test_size: 0.2, seed: \"${params.seed}\"}", "    metrics: [roc_auc, accuracy]",
            "gates:", "  quality:", "    model: m", "    require: [roc_auc >= 0.7, accuracy >= production.accuracy - 0.02]",
            "  rows:", "    table: train_table", "    require: [row_count() > 1000, null_fraction(a) < 0.1]",
            "rollout:", "  model: m", "  requires: [quality]", "  strategy: canary",
            "  steps: [{traffic: 10, hold: 30m}, {traffic: 100}]",
            "  rollback_if: error_rate > 0.02 or latency_p99_ms > 250"]
    return "\n".join(out) + "\n"


def phases(text: str) -> dict[str, float]:
    """One compile, phase by phase (mirrors compile_text, GC paused as it does)."""
    with gc_paused():
        return _phases(text)


def _phases(text: str) -> dict[str, float]:
    t = {}
    diags = Diagnostics()
    t0 = time.perf_counter()
    doc = loader.load_text(text, "bench.yaml", diags)
    t1 = time.perf_counter()
    if doc is None:
        raise SystemExit(f"generated spec does not load: {[(d.code, d.message) for d in diags.items]}")
    params = P.resolve(doc, [], diags)
    data, exact = P.substitute(doc, params, diags)
    validated = validate(doc, data, exact, diags, params)
    t2 = time.perf_counter()
    graph = Lowering(doc, data, validated, params, ".", diags, exact).run()
    t3 = time.perf_counter()
    js = graph.to_json()
    t4 = time.perf_counter()
    errors = [d for d in diags.items if d.severity == "error"]
    if errors:
        raise SystemExit(f"generated spec has errors: {[(d.code, d.message) for d in errors[:5]]}")
    t.update(load=t1 - t0, validate=t2 - t1, lower=t3 - t2, json=t4 - t3, nodes=len(graph.nodes), bytes=len(js))
    return t


def total(text: str) -> float:
    t0 = time.perf_counter()
    r = compile_text(text, "bench.yaml")
    r.ir.to_json()
    return time.perf_counter() - t0


def best(fn, repeat: int):
    results = []
    for _ in range(repeat):
        gc.collect()
        exprparse.parse.cache_clear()  # every run starts cold, as a real `pipespec check` does
        results.append(fn())
    return results


def bench(sizes: list[int], write: str | None = None) -> None:
    total(generate(20))  # warm up: imports (sklearn), grammar, caches
    rows = []
    for n in sizes:
        text = generate(n)
        if write:
            Path(write).write_text(text)
        repeat = 3 if n < 10_000 else 2
        runs = best(lambda text=text: phases(text), repeat)
        ph = {k: min(r[k] for r in runs) for k in ("load", "validate", "lower", "json")}
        tot = min(best(lambda text=text: total(text), repeat))
        rows.append((n, runs[0]["nodes"], len(text), ph, tot))
    print(f"python {sys.version.split()[0]}, single process; best of 3 (best of 2 for N >= 10,000)")
    print()
    hdr = (f"{'features':>9} {'IR nodes':>9} {'spec KiB':>9} {'load s':>8} {'valid s':>8} {'lower s':>8} "
           f"{'json s':>8} {'total s':>8} {'us/node':>8} {'growth':>7}")
    print(hdr)
    print("-" * len(hdr))
    prev = None
    for n, nodes, size, ph, tot in rows:
        per = tot / n * 1e6
        growth = f"{per / prev:7.2f}" if prev else f"{'-':>7}"
        print(f"{n:>9,} {nodes:>9,} {size / 1024:>9.0f} {ph['load']:>8.3f} {ph['validate']:>8.3f} "
              f"{ph['lower']:>8.3f} {ph['json']:>8.3f} {tot:>8.3f} {per:>8.1f} {growth}")
        prev = per
    big = [r for r in rows if r[0] >= 10_000]
    if big:
        n, _, _, _, tot = big[-1]
        verdict = "MET" if tot < 2.0 else "NOT MET"
        print(f"\ntarget: {n:,} features compiled in < 2 s -> {tot:.2f} s ({verdict})")


def profile(n: int, top: int = 25) -> None:
    text = generate(n)
    total(generate(20))
    prof = cProfile.Profile()
    prof.enable()
    total(text)
    prof.disable()
    buf = io.StringIO()
    stats = pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("cumulative")
    stats.print_stats(top)
    print(buf.getvalue())
    buf = io.StringIO()
    pstats.Stats(prof, stream=buf).strip_dirs().sort_stats("tottime").print_stats(top)
    print(buf.getvalue())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", type=int, nargs="+", default=[100, 1_000, 10_000])
    ap.add_argument("--profile", type=int, metavar="N", help="profile one compile of N features instead")
    ap.add_argument("--write", metavar="PATH", help="also write the (last) generated spec to PATH")
    args = ap.parse_args()
    if args.profile:
        profile(args.profile)
    else:
        bench(args.sizes, args.write)


if __name__ == "__main__":
    main()
