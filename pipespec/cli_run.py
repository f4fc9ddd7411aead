"""The runtime commands: run, plan, step, runs, show, cache.  Thin like cli.py.

Exit codes (documented in SPEC.md §16): 0 success, 1 spec errors or a node
failed, 2 usage error, 3 a gate failed (its dependents did not run),
4 a rollout was rolled back.
"""

from __future__ import annotations

import json
import os
import sys

import click

from pipespec.cli import _FORMAT, _PARAM, _SPEC, EXIT_SPEC_ERROR, EXIT_USAGE, _compile, main

_STORE = click.option("--store", "store_url", metavar="DIR|URL",
                      help="Store location: a directory or an fsspec URL (s3://bucket/prefix). "
                           "Default: .pipespec/ beside the spec.")
_ONLY = click.option("--only", multiple=True, metavar="NODE[+]",
                     help="Run only NODE (an id like feature.x, or a name) and what it reads; "
                          "NODE+ adds its descendants, +NODE its ancestors. Repeatable.")
_FORCE = click.option("--force", multiple=True, metavar="NODE", help="Ignore the cache for NODE. Repeatable.")
_SAMPLE = click.option("--sample", type=click.IntRange(min=1), metavar="N",
                       help="Dry-run execution on a deterministic sample of N rows per source, in its own "
                            "namespace of the store; the registry is not changed.")
_SEED = click.option("--seed", type=int, default=0, show_default=True, help="Seed of the --sample draw.")


_VERIFY = click.option("--verify", is_flag=True,
                       help="Re-hash every cached output before reusing it (a corrupt one is recomputed); "
                            "without it only sizes are checked. For a store you do not fully trust.")
_NO_COMPILE_CACHE = click.option("--no-compile-cache", "no_cache", is_flag=True,
                                 help="Compile SPEC even when the compile cache has it (see `pipespec check`, "
                                      "which always compiles).")


def _open(spec: str, params, fmt: str, store_url: str | None, cache: bool = True):
    """The compiled spec (from the compile cache when allowed), the store and the spec's directory."""
    from pipespec.runtime.errors import RunError
    from pipespec.runtime.store import Store
    root = os.path.dirname(os.path.abspath(spec))
    try:
        store = Store(store_url or os.path.join(root, ".pipespec"))
    except RunError as exc:
        _compile(spec, params, fmt)  # the spec's own errors first
        _fail(exc, fmt)
    result = _compile_cached(spec, params, fmt, store) if cache else _compile(spec, params, fmt)
    return result, store, root


def _compile_cached(spec: str, params, fmt: str, store):
    """`_compile` through the compile cache: a hit prints the stored warnings exactly as the
    compile did and imports none of the compiler's front end."""
    import time

    from pipespec.runtime.compiled import CompileCache, location
    if not os.path.isfile(spec):  # missing, a directory, a FIFO: never opened here (a FIFO would
        return _compile(spec, params, fmt)  # block), the compiler reports it (E0001)
    cache = CompileCache(location(store))
    hit = cache.get(spec, params)
    if hit is None:
        started = time.time_ns()
        result = _compile(spec, params, fmt)
        cache.put(spec, params, result, started)
        return result
    if hit.diagnostics:
        from pipespec.compiler.diagnostics import render_json, render_text
        if fmt == "json":
            click.echo(render_json(hit.diagnostics), err=True)
        else:
            color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
            click.echo(render_text(hit.diagnostics, {hit.file: hit.text}, color), err=True)
    return hit


def _options(jobs=0, only=(), force=(), sample=None, seed=0, hold=False, verify=False):
    from pipespec.runtime.executor import RunOptions
    from pipespec.runtime.ops.base import Sample
    return RunOptions(jobs=jobs, only=tuple(only), force=tuple(force), hold=hold, verify=verify,
                      sample=Sample(sample, seed) if sample else None)


def _fail(exc, fmt: str) -> None:
    """A RunError raised before any node ran (bad --only name, unusable store)."""
    if fmt == "json":
        click.echo(json.dumps({"error": {"code": exc.code, "message": exc.message, "hint": exc.hint}}))
    else:
        click.echo(f"error[{exc.code}]: {exc.message}" + (f"\n  = hint: {exc.hint}" if exc.hint else ""),
                   err=True)
    sys.exit(EXIT_USAGE if exc.code == "E0808" else EXIT_SPEC_ERROR)


@main.command()
@_SPEC
@_PARAM
@_STORE
@click.option("--jobs", "-j", type=click.IntRange(min=1), help="Nodes run at once (default: CPU count).")
@_ONLY
@_FORCE
@_SAMPLE
@_SEED
@click.option("--hold/--no-hold", default=False, show_default=True,
              help="Wait out each rollout step's `hold` in real time (default: the replay stands in).")
@click.option("--on", "on", type=click.Choice(["local", "ray"]), default="local", show_default=True,
              help="Where nodes run: threads in this process, or one Ray task per node.")
@click.option("--address", metavar="ADDR",
              help="With --on ray: the Ray cluster (auto, HOST:PORT, ray://HOST:PORT, or local for a Ray "
                   "started for this run). Default: RAY_ADDRESS, then targets.ray.address, then local.")
@click.option("--progress/--no-progress", default=None,
              help="Live progress table (default: when stderr is a terminal).")
@_VERIFY
@_NO_COMPILE_CACHE
@_FORMAT
def run(spec, params, store_url, jobs, only, force, sample, seed, hold, on, address, progress, verify, no_cache,
        fmt):
    """Run SPEC (locally, or on Ray with --on ray): every node cached by content hash.

    Exit codes: 0 success, 1 a node failed, 3 a gate failed, 4 a rollout rolled back,
    130 interrupted.
    """
    from pipespec.runtime.errors import RunError
    from pipespec.runtime.executor import execute
    from pipespec.runtime.progress import reporter_for
    from pipespec.runtime.report import run_summary

    result, store, root = _open(spec, params, fmt, store_url, cache=not no_cache)
    options = _options(jobs or 0, only, force, sample, seed, hold, verify)
    reporter = reporter_for(sys.stderr, progress if fmt == "text" else False)
    if address and on != "ray":
        raise click.UsageError("--address needs --on ray")
    schedule = None
    if on == "ray":
        from pipespec.targets.ray.executor import schedule_for
        schedule = schedule_for(result.ir, address)
    try:
        report = execute(result.ir, store, root, options, reporter, schedule=schedule)
    except RunError as exc:
        _fail(exc, fmt)
    if fmt == "json":
        click.echo(json.dumps({"run_id": report.run_id, "status": report.status, "exit_code": report.exit_code,
                               "record": report.record_path, "nodes": [r.to_json() for r in report.results]},
                              sort_keys=True, indent=2))
    else:
        click.echo(run_summary(report, {result.ir.source_file or result.file: result.text or ""}))
    sys.exit(report.exit_code)


@main.command()
@_SPEC
@_PARAM
@_STORE
@_ONLY
@_FORCE
@_SAMPLE
@_SEED
@_VERIFY
@_NO_COMPILE_CACHE
@_FORMAT
def plan(spec, params, store_url, only, force, sample, seed, verify, no_cache, fmt):
    """Show what `run` would do and why, without running anything (reads only source file stats and hashes)."""
    from pipespec.runtime.errors import RunError
    from pipespec.runtime.plan import plan as make_plan
    from pipespec.runtime.report import plan_text

    result, store, root = _open(spec, params, fmt, store_url, cache=not no_cache)
    options = _options(only=only, force=force, sample=sample, seed=seed, verify=verify)
    try:
        items = make_plan(result.ir, store, root, options)
    except RunError as exc:
        _fail(exc, fmt)
    if fmt == "json":
        click.echo(json.dumps({"pipeline": result.ir.pipeline, "nodes": [i.to_json() for i in items],
                               "will_run": sum(i.action == "run" for i in items)}, sort_keys=True, indent=2))
    else:
        click.echo(plan_text(result.ir.pipeline, items, options.sample))


@main.command()
@click.argument("ir_json", metavar="IR_JSON")
@click.option("--node", "node_id", required=True, help="The IR node id to run, e.g. feature.churn_features.")
@click.option("--store", "store_url", required=True, metavar="DIR|URL", help="The shared store.")
@click.option("--root", type=str, help="Directory (or URL) relative source paths resolve against "
                                       "(default: the directory of IR_JSON).")
@_SAMPLE
@_SEED
@click.option("--hold/--no-hold", default=False, help="Wait out rollout holds in real time.")
@click.option("--rollout-step", type=click.IntRange(min=1), metavar="K",
              help="Run only step K of a rollout node (its report is kept for the decision).")
@click.option("--no-retries", is_flag=True,
              help="One attempt, ignoring the node's `retries` (the orchestrator retries instead).")
@click.option("--result-file", type=click.Path(dir_okay=False, path_type=str), metavar="PATH",
              help="Also write the JSON result line to PATH.")
@click.option("--passed-file", type=click.Path(dir_okay=False, path_type=str), metavar="PATH",
              help="For a gate: write its verdict, `true` or `false`, to PATH.")
@click.option("--digest-file", type=click.Path(dir_okay=False, path_type=str), metavar="PATH",
              help="Write the output's digest to PATH (what an orchestrator's own cache can key on).")
@click.option("--ir-sha256", metavar="HEX",
              help="Refuse to run unless IR_JSON's SHA-256 is HEX (the IR the DAG was compiled with).")
def step(ir_json, node_id, store_url, root, sample, seed, hold, rollout_step, no_retries, result_file,
         passed_file, digest_file, ir_sha256):
    """Run exactly one node of an IR in this process (the entry point orchestrators call).

    IR_JSON is a file or an fsspec URL.  Upstream results are found in the store by their
    cache keys.  Idempotent: a node whose entry exists is not run again.  Prints one JSON
    line (key, digest, status).  Exit codes: 0 done or cached, 1 failed, 3 blocked by a
    failed gate, 4 the rollout was rolled back (at this step, with --rollout-step), 5 (with
    --rollout-step) the rollout was already decided by an earlier run.
    """
    from pipespec.runtime.stepcli import line, run_step, verdict

    graph = _read_ir(ir_json, ir_sha256)
    if passed_file and any(n.id == node_id and n.kind != "Gate" for n in graph.nodes):
        raise click.BadParameter(f"{node_id} is not a gate", param_hint="--passed-file")
    code, data = run_step(graph, node_id, store_url, root or _ir_dir(ir_json), sample, seed, hold,
                          retries=not no_retries, rollout_step=rollout_step)
    text = line(data)
    for path, content in ((result_file, text + "\n"), (passed_file, verdict(data)),
                          (digest_file, data.get("digest"))):
        if path and content is not None:
            _write_small(path, content)
    why = data.get("reason") or data.get("error")
    if why:
        click.echo(f"{node_id}: {data.get('status')}: {why}", err=True)
    click.echo(text)
    sys.exit(code)


def _read_ir(ir_json: str, sha256: str | None = None):
    """The IR from a file or fsspec URL; exit 1 with one line when it is not a pipespec IR, or
    not the one expected."""
    import hashlib

    from pipespec.compiler.ir import Graph

    try:
        if "://" in ir_json:
            import fsspec
            with fsspec.open(ir_json, "rb") as fh:
                raw = fh.read()
        else:
            with open(ir_json, "rb") as fh:
                raw = fh.read()
    except (OSError, ValueError, ImportError) as exc:
        click.echo(f"error: cannot read {ir_json}: {exc}", err=True)
        sys.exit(EXIT_SPEC_ERROR)
    if sha256 and hashlib.sha256(raw).hexdigest() != sha256.lower():
        click.echo(f"error: {ir_json} is not the IR this task was compiled with (SHA-256 "
                   f"{hashlib.sha256(raw).hexdigest()[:12]}…, expected {sha256[:12]}…): deploy the IR "
                   "that `pipespec compile` wrote beside it", err=True)
        sys.exit(EXIT_SPEC_ERROR)
    try:
        return Graph.from_json(raw)
    except (ValueError, KeyError, TypeError) as exc:
        click.echo(f"error: {ir_json} is not a pipespec IR file: {exc}", err=True)
        sys.exit(EXIT_SPEC_ERROR)


def _ir_dir(ir_json: str) -> str:
    return ir_json.rsplit("/", 1)[0] if "://" in ir_json else os.path.dirname(os.path.abspath(ir_json))


def _write_small(path: str, text: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path, "w", encoding="utf-8") as fh:
        fh.write(text)


@main.command()
@_SPEC
@_STORE
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@_FORMAT
def runs(spec, store_url, limit, fmt):
    """List the past runs of SPEC's pipeline, newest first, with status and metrics."""
    from pipespec.runtime import records
    from pipespec.runtime.errors import RunError
    from pipespec.runtime.report import runs_text

    result, store, _ = _open(spec, (), fmt, store_url)
    try:
        found = records.latest(store, result.ir.pipeline, limit)
    except RunError as exc:
        _fail(exc, fmt)
    if fmt == "json":
        click.echo(json.dumps(found, sort_keys=True, indent=2))
    else:
        click.echo(runs_text(found))


@main.command()
@_SPEC
@click.argument("node")
@_STORE
@click.option("--rows", type=click.IntRange(min=0), default=10, show_default=True, help="Table rows to print.")
@_FORMAT
def show(spec, node, store_url, rows, fmt):
    """Show NODE's output from the latest run: a table's schema and head, metrics, a decision, a model card."""
    from pipespec.runtime.errors import RunError
    from pipespec.runtime.show import show_node

    result, store, _ = _open(spec, (), fmt, store_url)
    try:
        click.echo(show_node(result.ir, store, node, rows, fmt))
    except RunError as exc:
        _fail(exc, fmt)


@main.group()
def cache():
    """Inspect, verify and clean a store."""


_CACHE_STORE = click.option("--store", "store_url", default=".pipespec", show_default=True, metavar="DIR|URL")


@cache.command("ls")
@_CACHE_STORE
def cache_ls(store_url):
    """Summarize what the store holds."""
    from pipespec.runtime.maintenance import usage
    from pipespec.runtime.store import Store
    u = usage(Store(store_url))
    click.echo(f"{store_url}: {u.entries} cache entries, {u.objects} objects ({u.bytes:,} bytes), "
               f"{u.models} registered model versions")
    for pipeline, n in sorted(u.runs.items()):
        click.echo(f"  {pipeline}: {n} runs")


@cache.command("verify")
@_CACHE_STORE
@click.option("--delete", is_flag=True,
              help="Remove what is damaged (a registry version whose model is lost is archived instead), "
                   "so that the next run recomputes it.")
def cache_verify(store_url, delete):
    """Check every part of the store: objects (re-hashed), cache entries, run and step records,
    the registry and its model files, rollout step reports, the compile and stat caches.
    Exit 1 when something is wrong (0 with --delete once it is repaired)."""
    from pipespec.runtime.store import Store
    from pipespec.runtime.verify import verify
    problems = verify(Store(store_url), delete=delete)
    for p in problems:
        done = " (archived)" if p.repair else " (removed)"
        click.echo(f"{p.what}: {p.detail}" + (done if delete else ""))
    click.echo(f"{len(problems)} problem{'s' if len(problems) != 1 else ''} found")
    sys.exit(1 if problems and not delete else 0)


@cache.command("gc")
@_CACHE_STORE
@click.option("--keep", type=click.IntRange(min=1), default=3, show_default=True,
              help="Keep what the newest KEEP runs of each pipeline reference.")
@click.option("--grace", type=click.FloatRange(min=0), default=3600, show_default=True,
              help="Never remove anything younger than this many seconds (protects runs in progress).")
@click.option("--dry-run", is_flag=True, help="Only say what would be removed.")
def cache_gc(store_url, keep, grace, dry_run):
    """Remove entries and objects no recent run or registered model references."""
    from pipespec.runtime.errors import RunError
    from pipespec.runtime.maintenance import gc
    from pipespec.runtime.store import Store
    try:
        out = gc(Store(store_url), keep_runs=keep, grace_seconds=grace, dry_run=dry_run)
    except RunError as exc:  # a damaged run record: gc cannot tell what it keeps
        _fail(exc, "text")
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {len(out.entries)} entries, {len(out.objects)} objects ({out.bytes:,} bytes), "
               f"{len(out.temp_files)} stale temp files")


__all__ = ["run", "plan", "step", "runs", "show", "cache", "EXIT_USAGE"]
