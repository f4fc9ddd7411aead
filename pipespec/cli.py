"""The `pipespec` command line.  Thin: parse options, call the library, print, exit.

Exit codes: 0 success; 1 the spec has errors; 2 usage error (bad option,
unknown target or code).
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import click

EXIT_OK, EXIT_SPEC_ERROR, EXIT_USAGE = 0, 1, 2

_PARAM = click.option("--param", "-p", "params", multiple=True, metavar="NAME=VALUE",
                      help="Override a param default (repeatable); type-checked against the default.")
_FORMAT = click.option("--format", "fmt", type=click.Choice(["text", "json"]), default="text",
                       show_default=True, help="How to print diagnostics.")
_SPEC = click.argument("spec", type=click.Path(dir_okay=True, path_type=str))


def _compile(spec: str, params, fmt: str, embed_json: bool = False):
    """Compile a spec, print its diagnostics; exit 1 if it has errors.

    With --format json, stdout carries exactly one JSON document: the diagnostics on
    failure; on success warnings go to stderr, or are left to the caller (`embed_json`).
    """
    from pipespec.compiler.diagnostics import render_json, render_text
    from pipespec.compiler.lower import compile_file

    result = compile_file(spec, list(params))
    if result.diagnostics:
        if fmt == "json":
            if result.ir is None:
                click.echo(render_json(result.diagnostics))
            elif not embed_json:
                click.echo(render_json(result.diagnostics), err=True)
        else:
            color = sys.stderr.isatty() and "NO_COLOR" not in os.environ
            click.echo(render_text(result.diagnostics, {result.file: result.text or ""}, color), err=True)
    if result.ir is None:
        if fmt == "text":
            n = len(result.errors)
            click.echo(f"{spec}: {n} error{'s' if n != 1 else ''}", err=True)
        sys.exit(EXIT_SPEC_ERROR)
    return result


class _TargetType(click.ParamType):
    """A target name from the registry; unknown names get a did-you-mean and the list."""

    name = "target"

    def convert(self, value, param, ctx):
        from pipespec.compiler.diagnostics import did_you_mean
        from pipespec.targets.registry import TARGETS

        if value in TARGETS:
            return value
        best = did_you_mean(value, TARGETS)
        self.fail(f"unknown target {value!r}." + (f" Did you mean {best!r}?" if best else "")
                  + f" Available targets: {', '.join(sorted(TARGETS))}.", param, ctx)

    def get_metavar(self, param, ctx=None):
        from pipespec.targets.registry import TARGETS
        return "[" + "|".join(sorted(TARGETS)) + "]"


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(version=None, package_name="pipespec", prog_name="pipespec",
                      message="%(prog)s %(version)s")
def main() -> None:
    """pipespec: compile one YAML ML pipeline spec to Ray, Airflow and Kubeflow.

    Exit codes: 0 success, 1 the spec has errors (or a node failed), 2 usage error,
    3 a gate failed, 4 a rollout was rolled back.
    """


@main.command()
@_SPEC
@_PARAM
@_FORMAT
def check(spec, params, fmt):
    """Parse, resolve and type-check SPEC; print a summary or diagnostics."""
    result = _compile(spec, params, fmt, embed_json=True)
    graph = result.ir
    kinds = Counter(n.kind for n in graph.nodes)
    if fmt == "json":
        import json
        click.echo(json.dumps({"ok": True, "pipeline": graph.pipeline, "nodes": dict(sorted(kinds.items())),
                               "tables": {t: len(s) for t, s in sorted(result.tables.items())},
                               "diagnostics": [d.to_json() for d in result.diagnostics]},
                              indent=2, sort_keys=True))
        return
    order = ["Source", "Transform", "Train", "Evaluate", "Gate", "Rollout"]
    summary = ", ".join(f"{kinds[k]} {k.lower()}" for k in order if kinds[k])
    click.echo(f"ok: pipeline {graph.pipeline}: {len(graph.nodes)} nodes ({summary})")
    width = max((len(t) for t in result.tables), default=0)
    for node in graph.nodes:
        if node.kind in ("Source", "Transform"):
            cols = node.output.columns
            click.echo(f"  {node.name:<{width}}  {node.kind.lower():<9}  {len(cols)} columns")


@main.command("compile")
@_SPEC
@click.option("--target", "-t", type=_TargetType(), required=True, help="What to compile to.")
@click.option("--out", "-o", "out", type=click.Path(file_okay=False, path_type=str), required=True,
              help="Output directory (created if missing).")
@click.option("--option", "options", multiple=True, metavar="KEY=VALUE",
              help="Target option (repeatable); an unknown key lists the target's options "
                   "(SPEC.md §18).")
@_PARAM
@_FORMAT
def compile_cmd(spec, target, out, options, params, fmt):
    """Compile SPEC for a target and write the files into OUT."""
    from pipespec.targets.base import UnsupportedError
    from pipespec.targets.registry import TARGETS

    result = _compile(spec, params, fmt)
    opts = {}
    for item in options:
        key, sep, value = item.partition("=")
        if not sep:
            raise click.BadParameter(f"expected KEY=VALUE, got {item!r}", param_hint="--option")
        opts[key.strip()] = value
    try:
        artifact = TARGETS[target].compile(result.ir, opts)
    except UnsupportedError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(EXIT_SPEC_ERROR)
    os.makedirs(out, exist_ok=True)
    for rel, data in sorted(artifact.files.items()):
        _write_atomic(os.path.join(out, rel), data)
        click.echo(os.path.join(out, rel))
    for warning in artifact.warnings:
        click.echo(warning, err=True)


def _write_atomic(path: str, data: bytes) -> None:
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


@main.command()
@_SPEC
@click.option("--format", "fmt", type=click.Choice(["mermaid", "dot"]), default="mermaid",
              show_default=True, help="Diagram language.")
@_PARAM
def graph(spec, fmt, params):
    """Print the IR graph of SPEC as Mermaid or Graphviz DOT."""
    from pipespec.compiler.render import FORMATS

    result = _compile(spec, params, "text")
    click.echo(FORMATS[fmt](result.ir), nl=False)


@main.command()
def schema():
    """Print the JSON Schema of spec files (for editor validation and completion)."""
    from pipespec.compiler.schema import json_schema_text

    click.echo(json_schema_text(), nl=False)


@main.command()
@click.argument("code")
def explain(code):
    """Print the long description of diagnostic CODE (e.g. E0203)."""
    from pipespec.compiler.codes import CODES, explain as explain_code
    from pipespec.compiler.diagnostics import did_you_mean

    text = explain_code(code)
    if text is None:
        best = did_you_mean(code.upper(), CODES)
        click.echo(f"error: unknown diagnostic code {code!r}" + (f"; did you mean {best}?" if best else "")
                   + " (codes are listed in SPEC.md)", err=True)
        sys.exit(EXIT_USAGE)
    click.echo(text)


from pipespec import cli_run  # noqa: E402,F401  (registers run, plan, step, runs, show, cache)

if __name__ == "__main__":  # pragma: no cover
    main()
