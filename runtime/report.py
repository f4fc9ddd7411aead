"""Text for the terminal: run summaries, plans, run lists.  Data in, strings out."""

from __future__ import annotations


_EXIT_WORDS = {0: "succeeded", 1: "FAILED", 3: "stopped by a failed gate", 4: "rolled back",
               130: "INTERRUPTED"}


def run_summary(report, sources: dict[str, str] | None = None) -> str:
    """The end-of-run summary: counts, failures with their YAML position, gates, rollouts."""
    from pipespec.compiler.diagnostics import render_one

    counts: dict[str, int] = {}
    for r in report.results:
        counts[r.status] = counts.get(r.status, 0) + 1
    label = "sample run" if report.sample else "run"
    sample = f" on a sample of {report.sample.rows:,} rows per source (seed {report.sample.seed})" \
        if report.sample else ""
    lines = [f"{label} {report.run_id} {_EXIT_WORDS[report.exit_code]}{sample} in {report.seconds:.2f}s: "
             + ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))]
    for r in report.results:
        if r.error is not None:
            source = (sources or {}).get(r.error.span.file) if r.error.span else None
            lines.append(render_one(r.error, source))
        elif r.summary.get("passed") is False:
            lines.append(f"gate {r.id} failed:")
            lines.extend(f"  {c}" for c in _check_lines(r.summary))
        elif r.summary.get("outcome"):
            when = "simulated" + (", cached from an earlier run" if r.status == "cached" else "")
            lines.append(f"{r.id}: {r.summary['outcome']} ({when})"
                         + (f": {r.summary['reason']}" if r.summary.get("reason") else ""))
            if r.status == "done" and r.summary.get("registry"):  # what this run did to the registry
                lines.append(f"  {r.summary['registry']}")
        elif r.status == "blocked":
            lines.append(f"{r.id}: not run: {r.reason}")
    if report.sample:
        lines.append("sample run: results are cached in their own namespace; the registry was not changed")
    if report.record_path:
        lines.append(f"run record: {report.record_path}")
    return "\n".join(lines)


def _check_lines(summary: dict) -> list[str]:
    checks = summary.get("checks")
    if not checks:
        return [f"FAIL {text}" for text in summary.get("failed", [])]
    out = []
    for c in checks:
        verdict = "pass" if c.get("passed") else "FAIL"
        value = f"value {c['value']!r}" if "value" in c else ""
        threshold = f", threshold {c['threshold']!r}" if c.get("threshold") is not None else ""
        note = f" ({c['note']})" if c.get("note") else ""
        out.append(f"{verdict} {c['text']}: {value}{threshold}{note}")
    return out


def plan_text(pipeline: str, items, sample=None) -> str:
    width = max((len(i.id) for i in items), default=0)
    lines = [f"plan for {pipeline}" + (f" (sample of {sample.rows:,} rows, seed {sample.seed})" if sample else "")]
    for i in items:
        action = {"cached": "cached", "run": "will run", "blocked": "blocked", "error": "error"}[i.action]
        estimate = f" (~{_seconds(i.estimate)} last time)" if i.action == "run" and i.estimate else ""
        why = "" if i.action == "cached" else f" — {i.reason}"
        lines.append(f"  {i.id:<{width}}  {action}{why}{estimate}")
    runs = [i for i in items if i.action == "run"]
    total = sum(i.estimate or 0 for i in runs)
    if not runs:
        lines.append("everything is cached: a run would only reuse results")
    else:
        unknown = sum(1 for i in runs if i.estimate is None)
        lines.append(f"{len(runs)} of {len(items)} nodes would run; estimated {_seconds(total)} of compute"
                     + (f" ({unknown} never ran before)" if unknown else ""))
    return "\n".join(lines)


def runs_text(records: list[dict]) -> str:
    if not records:
        return "no runs yet"
    lines = []
    for r in records:
        metrics = "; ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                            for k, v in sorted(_metrics(r).items()))
        kind = " sample" if r.get("sample") else ""
        lines.append(f"{r['run_id']}{kind}  {r['status']:<11} {r['seconds']:>8.2f}s  "
                     f"{_count(r, 'done')} ran, {_count(r, 'cached')} cached  {metrics}")
    return "\n".join(lines)


def _metrics(record: dict) -> dict:
    found = {}
    for node in record.get("nodes", []):
        for name, value in (node.get("summary") or {}).get("metrics", {}).items():
            found[f"{node['id'].split('.', 1)[1]}.{name}"] = value
    return found


def _count(record: dict, status: str) -> int:
    return sum(1 for n in record.get("nodes", []) if n.get("status") == status)


def _seconds(value: float) -> str:
    return f"{value:.1f}s" if value < 120 else f"{value / 60:.1f}min"

