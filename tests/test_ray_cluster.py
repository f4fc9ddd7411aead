"""Ray outside the test process: a real head started with `ray start` (token auth, loopback,
its own temp dir; stopped by signalling only its own processes), a job submitted with
`ray job submit`, an S3 store served by moto, and an address nobody listens on."""

from __future__ import annotations

import io
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pytest
from pipespec.compiler.lower import compile_file
from pipespec.runtime import records
from pipespec.runtime.executor import RunOptions, execute
from pipespec.runtime.progress import Reporter
from pipespec.runtime.store import Store
from pipespec.targets.ray import jobs

pytestmark = [pytest.mark.ray, pytest.mark.slow]  # every test starts a Ray (6-27 s)
pytest.importorskip("ray")
ROOT = Path(__file__).resolve().parent.parent
RUN_IR = "import sys; from pipespec.targets.ray.executor import run_ir; sys.exit(run_ir(*sys.argv[1:4], " \
         "address=sys.argv[4] or None, jobs=2))"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Examples:
    """Copies of the examples, each run once locally: the keys and digests Ray must match."""

    def __init__(self, base: Path):
        self.base, self.runs = base, {}

    def __call__(self, name: str) -> tuple[Path, Path, dict]:
        if name not in self.runs:
            base = self.base / name
            shutil.copytree(ROOT / "examples" / name, base / name, ignore=shutil.ignore_patterns(".pipespec"))
            spec = base / name / "pipeline.yaml"
            result = compile_file(str(spec), [])
            report = execute(result.ir, Store(str(base / "local")), str(spec.parent), RunOptions(jobs=2),
                             Reporter(io.StringIO()))
            (base / "ir.json").write_text(result.ir.to_json())
            self.runs[name] = spec, base, {r.id: (r.key, r.digest) for r in report.results}
        return self.runs[name]


@pytest.fixture(scope="module")
def examples(tmp_path_factory) -> Examples:
    return Examples(tmp_path_factory.mktemp("examples"))


def latest_outputs(store: Store, pipeline: str) -> dict[str, tuple]:
    (record,) = records.latest(store, pipeline, 1)
    return {n["id"]: (n["key"], n["digest"]) for n in record["nodes"]}


def run_ir(ir_json: Path, store: str, root: Path, address: str, env: dict, timeout: float = 240):
    return subprocess.run([sys.executable, "-c", RUN_IR, str(ir_json), store, str(root), address],
                          env=env, capture_output=True, text=True, timeout=timeout, check=False)


# --- no head -------------------------------------------------------------------------


def test_an_address_nobody_listens_on_is_a_quick_clear_error(examples):
    spec, base, _ = examples("demand")
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    began = time.monotonic()
    done = run_ir(base / "ir.json", str(base / "never"), spec.parent, f"127.0.0.1:{free_port()}", env, timeout=120)
    assert done.returncode == 1 and time.monotonic() - began < 60
    assert "error[E0806]: cannot connect to the Ray cluster at 127.0.0.1:" in done.stderr
    assert "hint:" in done.stderr and "Traceback" not in done.stderr


def test_a_ray_started_for_the_run_caps_requests_at_the_machine_then_stops(tmp_path):
    """A model asking for 64 CPUs runs on a Ray started for the run, as it does locally."""
    (tmp_path / "d.csv").write_text("a,y\n" + "".join(f"{i},{'true' if i % 3 else 'false'}\n" for i in range(40)))
    (tmp_path / "p.yaml").write_text(TINY)
    result = compile_file(str(tmp_path / "p.yaml"), [])
    (tmp_path / "ir.json").write_text(result.ir.to_json())
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = run_ir(tmp_path / "ir.json", str(tmp_path / "store"), tmp_path, "", env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "ray: started a local Ray with 2 CPUs" in done.stderr
    assert done.stdout.splitlines()[0].endswith(": 4 done")


TINY = """pipespec: 1
pipeline: tiny
sources:
  d: {format: csv, path: d.csv, schema: {a: int64, y: bool}}
features:
  f: {from: d, columns: {b: a * 2}}
models:
  big:
    from: f
    target: y
    estimator: sklearn.linear_model.LogisticRegression
    metrics: [accuracy]
    resources: {cpus: 64}
"""


@pytest.fixture
def s3():
    """An S3-compatible server on loopback (moto), a bucket, and fake credentials."""
    moto_server = pytest.importorskip("moto.server")
    pytest.importorskip("s3fs")
    boto3 = pytest.importorskip("boto3")
    port = free_port()
    server = moto_server.ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1",
           "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        boto3.client("s3").create_bucket(Bucket="pipespec-test")
        _xfail_unless_remote_puts_work()
        yield env
    finally:
        for k, v in saved.items():
            os.environ.pop(k, None)
            if v is not None:
                os.environ[k] = v
        server.stop()


def _xfail_unless_remote_puts_work() -> None:
    """Artifacts are encoded as memoryviews, which botocore refuses as a PUT body: until
    runtime/store.py passes bytes to remote filesystems, no run can cache into S3."""
    try:
        Store("s3://pipespec-test/probe").put(memoryview(b"probe"))
    except Exception as exc:  # noqa: BLE001 - botocore's ParamValidationError, unmapped
        pytest.xfail(f"runtime/store.py cannot write a memoryview to a remote store: {type(exc).__name__}")


def test_a_ray_run_started_for_the_run_caches_into_an_s3_store(examples, s3):
    spec, base, local = examples("demand")  # asks for 4 CPUs: capped on a Ray started for the run
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    url = "s3://pipespec-test/stores/demand"
    done = run_ir(base / "ir.json", url, spec.parent, "local", env)  # not the spec's ray:// address
    assert done.returncode == 0, done.stderr[-3000:]
    assert "started a local Ray with 2 CPUs" in done.stderr
    store = Store(url)
    assert latest_outputs(store, "retail-demand") == local
    assert all(store.has(digest) for _, digest in local.values())
    assert store.read_bytes("cards/retail-demand/demand_gbm.md")
    again = run_ir(base / "ir.json", url, spec.parent, "local", env)
    assert again.returncode == 0 and latest_outputs(store, "retail-demand") == local
    assert again.stdout.splitlines()[0].endswith(f": {len(local)} cached")


# --- a head started with `ray start` -------------------------------------------------


@dataclass
class Head:
    address: str
    dashboard: str
    env: dict


@pytest.fixture(scope="module")
def head():
    """A one-node cluster on loopback with the job server; Ray 2.60 enables token auth for
    `ray start` only when a token exists, so the test brings its own (in a temp file)."""
    pytest.importorskip("aiohttp", reason="the job server needs ray[default]")
    base = Path(tempfile.mkdtemp(prefix="psray-", dir="/tmp"))  # short: Ray's socket paths are limited
    token = base / "token"
    token.write_text(secrets.token_hex(32))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env.update(RAY_AUTH_MODE="token", RAY_AUTH_TOKEN_PATH=str(token), RAY_USAGE_STATS_ENABLED="0",
               RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S="0")
    port, dashboard = free_port(), free_port()
    cmd = ["ray", "start", "--head", "--block", "--port", str(port), "--node-ip-address", "127.0.0.1",
           "--num-cpus", "2", "--include-dashboard", "true", "--dashboard-host", "127.0.0.1",
           "--dashboard-port", str(dashboard), "--ray-client-server-port", str(free_port()),
           "--dashboard-agent-listen-port", str(free_port()), "--temp-dir", str(base / "ray"),
           "--disable-usage-stats"]
    with open(base / "head.log", "wb") as log:
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{dashboard}"
        _wait_for_job_server(url, token.read_text(), proc, base / "head.log")
        yield Head(f"127.0.0.1:{port}", url, env)
    finally:
        _stop(proc)
        shutil.rmtree(base, ignore_errors=True)


def _wait_for_job_server(url: str, token: str, proc, log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    request = urllib.request.Request(f"{url}/api/jobs/", headers={"Authorization": f"Bearer {token}"})
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"ray start exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(request, timeout=5) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        time.sleep(1)
    pytest.fail(f"the Ray job server did not come up in {timeout}s:\n{log.read_text()[-3000:]}")


def _stop(proc) -> None:
    """SIGTERM to our `ray start --block` (it tears its node down), then SIGKILL to what is
    left of its process group: only processes this test started."""
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.wait(timeout=30)


def test_a_run_connected_to_a_ray_start_head_matches_the_local_run(head, examples):
    spec, base, local = examples("churn")
    done = run_ir(base / "ir.json", str(base / "on-head"), spec.parent, head.address, head.env)
    assert done.returncode == 0, done.stderr[-3000:]
    assert "succeeded" in done.stdout and "started a local Ray" not in done.stderr
    assert latest_outputs(Store(str(base / "on-head")), "telecom-churn") == local


def test_the_compiled_jobs_package_runs_unchanged_with_ray_job_submit(head, examples, tmp_path):
    spec, _, local = examples("churn")
    package = tmp_path / "package"
    for rel, data in jobs.compile(compile_file(str(spec), []).ir, {}).files.items():
        (package / rel).parent.mkdir(parents=True, exist_ok=True)
        (package / rel).write_bytes(data)
    store = tmp_path / "store"
    done = subprocess.run(["ray", "job", "submit", "--address", head.dashboard, "--working-dir", str(package),
                           "--", "python", "run_pipeline.py", "--store", str(store), "--root", str(spec.parent)],
                          env=head.env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    assert "succeeded" in done.stdout
    assert latest_outputs(Store(str(store)), "telecom-churn") == local
