"""Airflow target: DagBag parse time of the generated DAG against a hand-written DAG with
the same tasks and edges, and `compile --target airflow` time, for 10, 100 and 1,000 nodes.

    python bench/bench_airflow.py [--sizes 10,100,1000] [--repeat 5]

Both DAG files are parsed side by side in one process by a real `DagBag` (best of
--repeat), so the ratio is what the scheduler's parse loop would see.  The hand-written
DAG is what a careful person writes: one PythonOperator per node with its callable and
`>>` per edge, importing nothing heavy either."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AIRFLOW_HOME", tempfile.mkdtemp(prefix="bench-airflow-"))
os.environ.setdefault("AIRFLOW__CORE__LOAD_EXAMPLES", "False")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_ray import write_spec  # noqa: E402  (the same synthetic specs as the Ray benchmark)

from pipespec.targets import airflow as target  # noqa: E402

HAND = '''from airflow.sdk import DAG
from airflow.providers.standard.operators.python import PythonOperator


def run_node(node_id):
    from pipespec.targets.airflow import task
    return task.node("/opt/dags/p.ir.json", node_id, "/store", "/data")


with DAG(dag_id="hand_written", schedule=None) as dag:
'''


def hand_written(graph) -> str:
    lines = [HAND]
    for node in graph.nodes:
        tid = target.task_id(node.id)
        lines.append(f"    {tid} = PythonOperator(task_id={tid!r}, python_callable=run_node, "
                     f"op_args=[{node.id!r}])\n")
    for u, v, _ in graph.edges():
        lines.append(f"    {target.task_id(u)} >> {target.task_id(v)}\n")
    return "".join(lines)


def parse_seconds(folder: Path, repeat: int) -> float:
    from airflow.dag_processing.dagbag import DagBag

    best = float("inf")
    for _ in range(repeat):
        started = time.perf_counter()
        bag = DagBag(dag_folder=str(folder))
        best = min(best, time.perf_counter() - started)
        assert not bag.import_errors, bag.import_errors
    return best


def measure(n: int, work: Path, repeat: int) -> dict[str, float]:
    graph = write_spec(work / f"spec{n}", n)
    started = time.perf_counter()
    for _ in range(repeat):
        files = target.compile(graph, {}).files
    compile_s = (time.perf_counter() - started) / repeat
    gen, hand = work / f"gen{n}", work / f"hand{n}"
    gen.mkdir()
    hand.mkdir()
    for rel, data in files.items():
        (gen / rel).write_bytes(data)
    (hand / "hand.py").write_text(hand_written(graph))
    generated, written = parse_seconds(gen, repeat), parse_seconds(hand, repeat)
    return {"nodes": n, "compile_s": compile_s, "parse_s": generated, "hand_s": written,
            "ratio": generated / written,
            "dag_kib": sum(len(d) for n, d in files.items() if n.endswith(".py")) / 1024,
            "ir_kib": sum(len(d) for n, d in files.items() if n.endswith(".ir.json")) / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10,100,1000")
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        parse_seconds(Path(tmp), 1)  # import Airflow once, outside the measurements
        rows = [measure(int(n), Path(tmp), args.repeat) for n in args.sizes.split(",")]
    print("| nodes | compile | DagBag parse, generated | hand-written | generated ÷ hand | DAG file | IR |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['nodes']:,} | {r['compile_s'] * 1000:.1f} ms | {r['parse_s'] * 1000:.1f} ms | "
              f"{r['hand_s'] * 1000:.1f} ms | {r['ratio']:.2f}x | {r['dag_kib']:.0f} KiB | {r['ir_kib']:.0f} KiB |")


if __name__ == "__main__":
    main()
