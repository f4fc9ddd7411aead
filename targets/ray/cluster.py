"""Connecting to Ray (or starting it for one run), and what the cluster can provide.

Ray waits forever for a task whose resources no node has, so every node's request
is checked against the cluster before anything is submitted.  On a Ray started for
this run (sized by `-j`, like the local executor's slots) requests are capped at what
the machine has instead, so a spec runs on Ray wherever it runs locally.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass, field

from pipespec.compiler import ir
from pipespec.runtime.errors import RunError

CODE = "E0806"  # no code of its own yet: an unexpected failure of the run, before any node
DEFAULT_OBJECT_STORE = 256 * 2**20   # tasks pass only small results; the data is in the store
CONNECT_TIMEOUT = 60.0
_AUTH_ENV = "RAY_AUTH_MODE"          # Ray 2.59+ turns token auth on for a local ray.init()


@dataclass
class Session:
    """The Ray connection of one run: `started` when this run started (and will stop) Ray."""

    address: str | None = None
    namespace: str | None = None
    num_cpus: int = 1
    object_store_memory: int | None = None
    timeout: float = CONNECT_TIMEOUT
    started: bool = False
    owned: bool = False
    seconds: float = 0.0
    _auth_env: str | None = field(default=None, repr=False)

    def __enter__(self) -> Session:
        import ray
        if ray.is_initialized():  # embedded (a notebook, tests): use it, leave it running
            return self
        began = time.perf_counter()
        self._auth_env = os.environ.get(_AUTH_ENV)
        address = self.address or os.environ.get("RAY_ADDRESS") or None  # Ray's own convention
        try:
            if address and address != "local":
                _connect(address, self.namespace, self.timeout)
            else:
                _start(self.num_cpus, self.object_store_memory or DEFAULT_OBJECT_STORE, self.namespace)
                self.started = True
        except RunError:
            self._restore_auth_env()
            raise
        self.owned, self.seconds = True, time.perf_counter() - began
        return self

    def __exit__(self, *exc) -> None:
        if not self.owned:
            return
        import ray
        ray.shutdown()
        self._restore_auth_env()

    def _restore_auth_env(self) -> None:
        if self._auth_env is None:  # ray.init() set it for this process only; do not leak it
            os.environ.pop(_AUTH_ENV, None)


def _init_kwargs(namespace: str | None) -> dict:
    return {"namespace": namespace, "log_to_driver": False, "logging_level": logging.ERROR,
            "ignore_reinit_error": False}


def _start(num_cpus: int, object_store_memory: int, namespace: str | None) -> None:
    """address="local": a new Ray even when `ray start` left a cluster that ray.init() would join.

    Ray that does not come up (on a loaded machine its processes miss their start-up
    deadlines) is a RunError with the cause and what raises those deadlines."""
    import ray
    try:
        ray.init(address="local", num_cpus=num_cpus, include_dashboard=False,
                 object_store_memory=object_store_memory, **_init_kwargs(namespace))
    except Exception as exc:  # noqa: BLE001 - Ray raises bare Exception, RuntimeError, ConnectionError...
        with contextlib.suppress(Exception):
            ray.shutdown()  # whatever half started
        raise RunError(CODE, f"could not start a local Ray for the run: {type(exc).__name__}: "
                             f"{_first_line(exc)}", _START_HINT) from None


# Ray 2.60's start-up deadlines and the environment variables that set them (ray/_private/
# node.py and ray_constants.py read the first and last; the raylet, a C++ RayConfig, the others).
# The driver's own wait for the node to register (30 s, node.py) has no variable.
START_TIMEOUTS = ("RAY_gcs_server_port_wait_time_s", "RAY_raylet_start_wait_time_s",
                  "RAY_agent_register_timeout_ms", "RAY_gcs_server_request_timeout_seconds")
_START_HINT = ("on a loaded machine Ray's processes can miss their start-up deadlines: raise them in the "
               "environment and run again, e.g. RAY_gcs_server_port_wait_time_s=120 (the wait for the GCS, "
               "default 30), RAY_raylet_start_wait_time_s=120 (the raylet's), RAY_agent_register_timeout_ms="
               "120000 (the raylet's wait for its agent), RAY_gcs_server_request_timeout_seconds=120 (each GCS "
               "request, default 60); or start Ray once (`ray start --head`) and pass --address auto; "
               "Ray's logs are in /tmp/ray/session_latest/logs")


def _connect(address: str, namespace: str | None, timeout: float) -> None:
    """ray.init(address) retries for minutes when nothing answers: give up after `timeout`."""
    import ray
    _probe(address)
    outcome: dict = {}

    def connect() -> None:
        try:
            with _explicit(address):
                ray.init(address=address, **_init_kwargs(namespace))
            outcome["ok"] = True
        except Exception as exc:  # noqa: BLE001 - reported below, with the address
            outcome["error"] = exc

    thread = threading.Thread(target=connect, name="pipespec-ray-connect", daemon=True)
    thread.start()
    thread.join(timeout)
    if "ok" in outcome:
        return
    why = f"{type(outcome['error']).__name__}: {_first_line(outcome['error'])}" if "error" in outcome \
        else f"no answer within {timeout:g}s"
    raise RunError(CODE, f"cannot connect to the Ray cluster at {address}: {why}", _CONNECT_HINT)


_CONNECT_HINT = ("check the address (`ray status` on the head node prints it; `auto` finds a cluster started "
                 "on this machine), that the cluster's Ray version matches this one, and RAY_AUTH_MODE / "
                 "RAY_AUTH_TOKEN when the cluster uses token authentication; without --address a local "
                 "Ray is started for the run")


@contextlib.contextmanager
def _explicit(address: str):
    """Ray prefers RAY_ADDRESS to the address it is given; an explicit address should win."""
    env = os.environ.pop("RAY_ADDRESS", None) if address != "auto" else None
    try:
        yield
    finally:
        if env is not None:
            os.environ["RAY_ADDRESS"] = env


def _probe(address: str) -> None:
    """A HOST:PORT nobody listens on fails now rather than after the timeout."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not port.isdigit():
        return
    try:
        socket.create_connection((host, int(port)), timeout=5).close()
    except OSError as exc:
        raise RunError(CODE, f"cannot connect to the Ray cluster at {address}: {exc.strerror or exc}",
                       _CONNECT_HINT) from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


# --- resources ---------------------------------------------------------------------


@dataclass(frozen=True)
class Capacity:
    """The resources of every alive node of the cluster, and their totals."""

    nodes: tuple[dict[str, float], ...]

    def largest(self, name: str) -> float:
        return max((n.get(name, 0.0) for n in self.nodes), default=0.0)

    def total(self, name: str) -> float:
        return sum(n.get(name, 0.0) for n in self.nodes)

    def fits(self, request: dict[str, float]) -> bool:
        """Whether one node has all of `request` (a task runs on one node)."""
        return any(all(n.get(k, 0.0) >= v for k, v in request.items()) for n in self.nodes)


def capacity() -> Capacity:
    import ray
    return Capacity(tuple(dict(n["Resources"]) for n in ray.nodes() if n.get("Alive")))


def request(node: ir.Node) -> dict[str, float]:
    """A node's resources in Ray's names; one CPU unless it asks for more (or less)."""
    r = node.resources
    out = {"CPU": float(r.cpus) if r and r.cpus else 1.0}
    if r and r.memory_bytes:
        out["memory"] = float(r.memory_bytes)
    if r and r.gpus:
        out["GPU"] = float(r.gpus)
    return out


def fitted(req: dict[str, float], cap: Capacity) -> dict[str, float]:
    """A request capped at the largest node (what the local executor does with `-j` slots)."""
    return {k: min(v, cap.largest(k)) for k, v in req.items() if min(v, cap.largest(k)) > 0}


def task_options(graph: ir.Graph, order: list[str], cap: Capacity, fit: bool) -> dict[str, dict]:
    """node id -> Ray task options; one RunError listing every node no Ray node can run."""
    options, problems = {}, []
    for node_id in order:
        node = graph.node(node_id)
        req = fitted(request(node), cap) if fit else request(node)
        if not cap.fits(req):
            problems.append(_impossible(node, req, cap))
        options[node_id] = _options(node, req)
    if problems:
        raise RunError(CODE, f"the Ray cluster cannot run {len(problems)} node{'s' if len(problems) > 1 else ''} "
                             "(Ray would wait for them forever): " + "; ".join(problems),
                       "lower `resources` in the spec or add larger nodes to the cluster; without --address, "
                       "pipespec starts a local Ray and caps requests at this machine")
    return options


def _options(node: ir.Node, req: dict[str, float]) -> dict:
    """Ray retries a task only when its worker dies; `Runner.run` retries failed ops itself."""
    opts = {"num_cpus": _quantity(req.get("CPU", 0.0)), "max_retries": node.retries or 0,
            "retry_exceptions": False, "name": node.id}
    if "memory" in req:
        opts["memory"] = int(req["memory"])
    if "GPU" in req:
        opts["num_gpus"] = _quantity(req["GPU"])
    return opts


def _quantity(value: float) -> float | int:
    return int(value) if float(value).is_integer() else value


def _impossible(node: ir.Node, req: dict[str, float], cap: Capacity) -> str:
    where = f" ({node.span.file}:{node.span.line}:{node.span.col})" if node.span else ""
    short = [f"{_amount(k, v)} (largest node: {_amount(k, cap.largest(k))}, cluster: {_amount(k, cap.total(k))})"
             for k, v in req.items() if cap.largest(k) < v]
    asks = ", ".join(short) or ", ".join(_amount(k, v) for k, v in req.items()) + " on one node"
    return f"{node.kind.lower()} {node.name}{where} asks for {asks}"


def _amount(name: str, value: float) -> str:
    if name == "memory":
        return f"{value / 2**30:.3g} GiB memory"
    unit = {"CPU": "CPU", "GPU": "GPU"}.get(name, name)
    shown = int(value) if float(value).is_integer() else round(value, 4)
    return f"{shown} {unit}{'s' if shown != 1 else ''}"
