"""`pipespec run --on ray` when Ray does not start: a diagnostic with the cause and the
environment variables that raise Ray's start-up deadlines, not a traceback.

Ray really fails here: RAY_gcs_server_port_wait_time_s=0 gives the GCS no time to come up,
which is what a loaded machine does with the default 30 s.  It runs in a subprocess, so what
the failed start leaves behind ends with it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.ray
pytest.importorskip("ray")

from pipespec.targets.ray import cluster  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent


def test_a_local_ray_that_does_not_start_is_a_diagnostic_naming_the_timeouts(tmp_path):
    shutil.copytree(ROOT / "examples" / "churn", tmp_path / "churn", ignore=shutil.ignore_patterns(".pipespec"))
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    env.update(RAY_gcs_server_port_wait_time_s="0", RAY_USAGE_STATS_ENABLED="0", NO_COLOR="1")
    done = subprocess.run([sys.executable, "-m", "pipespec", "run", str(tmp_path / "churn" / "pipeline.yaml"),
                           "--on", "ray", "--no-progress"], capture_output=True, text=True, env=env,
                          timeout=300)
    assert done.returncode == 1, done.stderr[-2000:]
    assert "Traceback" not in done.stderr
    assert re.search(r"error\[E0806\]: could not start a local Ray for the run: \w+: .*gcs_server_port",
                     done.stderr), done.stderr[-2000:]
    for name in cluster.START_TIMEOUTS:
        assert name in done.stderr


def test_the_timeout_variables_named_are_the_ones_the_installed_ray_reads():
    import ray

    package = Path(ray.__file__).parent
    python = (package / "_private" / "node.py").read_text() + (package / "_private" / "ray_constants.py").read_text()
    raylet = (package / "core" / "src" / "ray" / "raylet" / "raylet").read_bytes()
    for name in cluster.START_TIMEOUTS:
        config = name.removeprefix("RAY_")
        assert f'"{name}"' in python or b"\x00" + config.encode() + b"\x00" in raylet, name
