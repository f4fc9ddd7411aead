"""Benchmark: pipespec on Ray vs raw Ray tasks — per-node overhead (numbers, not tests).

For N = 100 and 1,000 tiny nodes (a generated spec: one 8-row CSV source and N-1
features, each `from:` the source or an earlier feature, overwriting one column), it
times, on one Ray started once (start-up reported separately):

* raw       the same DAG of no-op `@ray.remote` functions, each given its inputs' refs,
            submitted in topological order, then `ray.get` of all (best of 5, interleaved
            with the cached runs so both see the same machine)
* cold      `execute(..., schedule=RaySchedule())` into an empty store: every node reads
            its inputs, runs its op and writes its artifact and entry (best of 2)
* cached    the same run again: every task is one cache lookup (best of 5)
* local     the local executor, cold and cached, for reference (best of 2 / 3)

Ray's workers are warmed up (started, pipespec imported) before anything is timed.
Target (the issue): pipespec-on-Ray within 1.5x of raw Ray per node.

Usage (from the repository root)::

    python bench/bench_ray.py                   # N = 100, 1000 on all CPUs
    python bench/bench_ray.py --sizes 100 --cpus 2
    python bench/bench_ray.py --profile 1000    # cProfile of the driver during a cached run

Data and stores go to a temporary directory, removed at the end.  Not collected by pytest.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import logging
import os
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import ray
from pipespec.compiler.lower import compile_file
from pipespec.runtime.executor import RunOptions, execute
from pipespec.runtime.progress import Reporter
from pipespec.runtime.store import Store
from pipespec.targets.ray.executor import RaySchedule

DATA = "id,v,w\n" + "".join(f"{i},{i * 1.5},{i % 3}\n" for i in range(8))


def generate(n: int) -> str:
    """A valid spec with one source and n-1 features: node i reads the source (the first
    ten) or node i // 2, so the DAG is wide and about log2(n) deep."""
    lines = ["pipespec: 1", "pipeline: bench-ray", "sources:",
             "  src: {format: csv, path: d.csv, schema: {id: int64, v: float64, w: int64}}", "features:"]
    for i in range(1, n):
        parent = "src" if i <= 10 else f"f{i // 2}"
        lines += [f"  f{i}:", f"    from: {parent}", f"    columns: {{v: v + {i}}}"]
    return "\n".join(lines) + "\n"


def write_spec(folder: Path, n: int):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "d.csv").write_text(DATA)
    spec = folder / "p.yaml"
    spec.write_text(generate(n))
    result = compile_file(str(spec), [])
    assert result.ir is not None, result.diagnostics
    return result.ir


@ray.remote
def noop(*inputs):
    return {"status": "done"}


def raw(graph) -> float:
    began = time.perf_counter()
    refs: dict[str, object] = {}
    for node in graph.nodes:
        refs[node.id] = noop.remote(*[refs[p.node] for p in node.inputs])
    ray.get(list(refs.values()))
    return time.perf_counter() - began


def pipespec_run(graph, store: Path, root: Path, on_ray: bool) -> float:
    began = time.perf_counter()
    report = execute(graph, Store(str(store)), str(root), RunOptions(jobs=os.cpu_count() or 1),
                     Reporter(io.StringIO()), schedule=RaySchedule() if on_ray else None)
    assert report.exit_code == 0, [r.error for r in report.results if r.error]
    return time.perf_counter() - began


def best(times: list[float]) -> float:
    return min(times)


def measure(n: int, work: Path) -> dict[str, float]:
    folder = work / f"n{n}"
    graph = write_spec(folder, n)
    raw(graph)  # warm-up
    colds, lcolds = [], []
    for k in range(2):
        colds.append(pipespec_run(graph, folder / f"ray-{k}", folder, True))
        lcolds.append(pipespec_run(graph, folder / f"local-{k}", folder, False))
    raws, cached = [], []
    for _ in range(5):  # interleaved, so both see the same machine
        raws.append(raw(graph))
        cached.append(pipespec_run(graph, folder / "ray-0", folder, True))
    return {"raw": best(raws), "cold": best(colds), "cached": best(cached), "local cold": best(lcolds),
            "local cached": best([pipespec_run(graph, folder / "local-0", folder, False) for _ in range(3)])}


def warm_up(work: Path) -> None:
    """Start every worker and import pipespec in it (a cold then cached tiny run)."""
    graph = write_spec(work / "warm", 40)
    for _ in range(2):
        pipespec_run(graph, work / "warm" / "store", work / "warm", True)


def table(rows: dict[int, dict[str, float]]) -> str:
    cols = ["raw", "cold", "cached", "local cold", "local cached"]
    lines = ["| N | " + " | ".join(f"{c} (s)" for c in cols) + " | raw us/node | cold/raw | cached/raw |",
             "|---:|" + "---:|" * (len(cols) + 3)]
    for n, r in rows.items():
        lines.append(f"| {n:,} | " + " | ".join(f"{r[c]:.3f}" for c in cols)
                     + f" | {r['raw'] / n * 1e6:,.0f} | {r['cold'] / r['raw']:.2f}x | {r['cached'] / r['raw']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--profile", type=int, metavar="N", help="profile the driver of a cached run of N nodes")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="pipespec-bench-ray-"))
    try:
        began = time.perf_counter()
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, object_store_memory=256 * 2**20,
                 log_to_driver=False, logging_level=logging.ERROR)
        startup = time.perf_counter() - began
        began = time.perf_counter()
        warm_up(work)
        print(f"Ray start-up: {startup:.2f}s ({args.cpus} CPUs); worker warm-up: {time.perf_counter() - began:.2f}s")
        if args.profile:
            return profile(args.profile, work)
        print(table({n: measure(n, work) for n in args.sizes}))
    finally:
        began = time.perf_counter()
        ray.shutdown()
        print(f"Ray shutdown: {time.perf_counter() - began:.2f}s")
        shutil.rmtree(work, ignore_errors=True)


def profile(n: int, work: Path) -> None:
    graph = write_spec(work / "prof", n)
    pipespec_run(graph, work / "prof" / "store", work / "prof", True)
    prof = cProfile.Profile()
    prof.enable()
    pipespec_run(graph, work / "prof" / "store", work / "prof", True)
    prof.disable()
    stats = pstats.Stats(prof)
    stats.sort_stats("cumulative").print_stats(25)
    stats.sort_stats("tottime").print_stats(20)


if __name__ == "__main__":
    main()
