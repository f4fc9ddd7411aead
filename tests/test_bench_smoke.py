"""Every script in bench/ still runs: each at a tiny size, in a subprocess, exits 0 and prints
its table.  The numbers are not checked (tiny sizes measure nothing); what rots is the code a
benchmark calls, which no other test does."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 900  # seconds: generous, for a loaded 2-core machine


def case(script: str, args: list[str], expected: list[str], *marks: pytest.MarkDecorator):
    return pytest.param(script, args, expected, marks=marks, id=script.removesuffix(".py"))


# (script, tiny arguments, regexes its stdout must match); slow = over ~10 s alone on 2 cores
CASES = [
    case("bench_check.py", ["--sizes", "20", "50"],
         [r"features +IR nodes .* total s +us/node +growth", r"(?m)^ +20 +\d+ ", r"(?m)^ +50 +\d+ "]),
    case("bench_runtime.py", ["--tiny"],
         [r"\(a\) cached re-run: 20,000-row", r"(?m)^cached run +\d", r"\(b\) hashing", r"(?m)^blake3",
          r"\(c\) transforms on 20,000 rows", r"(?m)^left join +\d"], pytest.mark.slow),
    case("bench_ray.py", ["--sizes", "10", "--cpus", "2"],
         [r"Ray start-up: ", r"\| N \| raw \(s\) \|", r"\| 10 \| \d"], pytest.mark.ray, pytest.mark.slow),
    case("bench_airflow.py", ["--sizes", "10", "--repeat", "1"],
         [r"\| nodes \| compile \| DagBag parse", r"\| 10 \| \d"], pytest.mark.airflow),
    case("bench_kubeflow.py", ["--sizes", "10"], [r"nodes +target ms .* kfp ms", r"(?m)^ +10 +\d"],
         pytest.mark.kubeflow),
    case("fuzz_specs.py", ["-n", "30", "--targets"],
         [r"seed 0: 30 mutants checked \(warm\), 0 exceptions", r"time per check: median"]),
    case("tamper_store.py", ["--only", "cache entry", "--limit", "2"],
         [r"\| part \| damage \| `cache verify` noticed \|", r"\| cache entry \(", r"(?m)^2 cases: "],
         pytest.mark.slow),
]


@pytest.mark.parametrize("script, args, expected", CASES)
def test_each_benchmark_runs_at_a_tiny_size_and_prints_its_table(tmp_path, script, args, expected):
    # a fresh Airflow home: the Airflow tests point AIRFLOW_* at theirs in this process's environment
    env = {k: v for k, v in os.environ.items() if not k.startswith("AIRFLOW") and k != "RAY_ADDRESS"}
    env.update(NO_COLOR="1", RAY_USAGE_STATS_ENABLED="0", AIRFLOW_HOME=str(tmp_path / "airflow"),
               AIRFLOW__CORE__LOAD_EXAMPLES="False")
    done = subprocess.run([sys.executable, str(ROOT / "bench" / script), *args], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for pattern in expected:
        assert re.search(pattern, done.stdout), (pattern, done.stdout[-3000:])
