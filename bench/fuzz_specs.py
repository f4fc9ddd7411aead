"""Fuzz `pipespec check` with mutated corpus specs: it must only ever give diagnostics.

Every mutant starts from a spec of the corpus (specs/valid/*.yaml, examples/*/pipeline.yaml)
and is changed at the text level (lines deleted or duplicated, characters swapped, special
tokens inserted: huge integers, `.inf`, `~`, `[]`, `{}`, anchors and aliases, tabs, unicode,
deep nesting) or at the data level (the YAML loaded, random values replaced by values of
random types, keys deleted, renamed or added, and dumped again).  Each mutant is checked
in-process exactly as `pipespec check` does (decode, `compile_text` with the spec's
directory as the base, render the diagnostics, serialize the IR when there is one) and
timed, warm.  Anything raised other than our diagnostics is a finding, and so is a check
that takes longer than `--slow` seconds.

Usage (from the repository root)::

    python bench/fuzz_specs.py                    # 10,000 mutants, seed 0
    python bench/fuzz_specs.py -n 50000 --seed 7  # more, other mutants
    python bench/fuzz_specs.py --show 1234        # print mutant 1234 (of --seed) and check it
    python bench/fuzz_specs.py --save /tmp/fz     # keep the findings as files

Mutant i of seed s is a pure function of (s, i), so every finding can be replayed with
`--show`.  A check stuck in native code is caught by faulthandler: the process prints
every thread's stack and exits after `--hang` seconds, having written the mutant it was
on to `<save>/current.yaml` first when `--save` is given.  tests/test_fuzz_specs.py runs
the same mutators under hypothesis, a few hundred examples per test run.
"""

from __future__ import annotations

import argparse
import copy
import faulthandler
import os
import random
import re
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from pipespec.compiler.diagnostics import Diagnostics, render_json, render_text  # noqa: E402
from pipespec.compiler.loader import decode_source  # noqa: E402
from pipespec.compiler.lower import Result, compile_text  # noqa: E402

FILE = "mutant.yaml"

# raw YAML text put in place of a value, a line, or anywhere in a line
HUGE = ["9" * 5000, "-" + "9" * 4301, "9" * 401, "1" + "0" * 400 + ".5", "0x" + "f" * 4000,
        "1e999", "-1e999", "1e-999", "9" * 20 + "GiB", "9" * 401 + "TiB", "18446744073709551617"]
TOKENS = HUGE + [
    ".inf", "-.inf", ".nan", ".NaN", "~", "null", "[]", "{}", "[~]", "{a: }", "''", '""', "&a",
    "*a", "&a x", "*b", "&a [1, 2]", "<<: *a", "!!int x", "!!str 5", "!!float", "!!python/name:os.system",
    "!custom x", "? complex", "- item", "---", "...", "|", ">-", "'", '"', "#", "\t", "\t- x",
    "é", "🚀", "需要", "\u2028", "\u0085", "\ufeff", "\u200b", "\x7f", "${params.", "${params.seed}",
    "${params.nope}", "$${", "`", "``", "%", "@", "0", "-1", "-0.0", "1.5", "2147483648", "true",
    "no", "on", "2026-02-30", "0o777", "1_000", "NaN", "Infinity", "x" * 20000,
    "[" * 100 + "]" * 100, "{a: " * 70 + "1" + "}" * 70, "[" * 70, "(" * 300 + "x" + ")" * 300,
    "a" + " and a" * 3000, "not " * 400 + "x", "f(" * 250 + ")" * 250, "x == 1 == 2",
    "sum(sum(x))", "cast(x, \"int64\")", "date(\"2026-13-45\")", "1 / 0", "`a``b`",
    "sklearn.ensemble.RandomForestClassifier", "sklearn.os.system", "sklearn", "os.system",
    "data/", ".", "/", "/dev/zero", "/dev/stdin", "/proc/self/mem", "../../../../etc/passwd",
    "s3://bucket/x.csv", "file:///dev/zero", "sqlite:///:memory:",
]
_SIMPLE = [0, 1, -1, 2, 100, -(2**63), 2**64, 0.0, -0.5, 0.25, 1e300, True, False, None, "", "x",
           "0", "1.5", "2h", "1GiB", "csv", "parquet", "sql", "canary", "direct", "inner", "@daily",
           "* * * * *", "x > 0", "true", "accuracy", "roc_auc", "r2", "feature", "model", "gate"]


# --- text-level mutations -------------------------------------------------------------


def _lines(text: str) -> list[str]:
    return text.split("\n")


def delete_lines(text: str, rng: random.Random) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    del lines[i:i + rng.choice([1, 1, 1, 2, 5])]
    return "\n".join(lines)


def duplicate_line(text: str, rng: random.Random) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines.insert(rng.randrange(len(lines) + 1), lines[i])
    return "\n".join(lines)


def swap_chars(text: str, rng: random.Random) -> str:
    if len(text) < 2:
        return text
    i = rng.randrange(len(text) - 1)
    return text[:i] + text[i + 1] + text[i] + text[i + 2:]


def delete_span(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + text[i + rng.randint(1, 12):]


def insert_token(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text) + 1)
    return text[:i] + rng.choice(TOKENS) + text[i:]


def replace_value(text: str, rng: random.Random) -> str:
    """`key: value` -> `key: TOKEN` on a random line that has a value."""
    lines = _lines(text)
    candidates = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]
    if not candidates:
        return insert_token(text, rng)
    i = rng.choice(candidates)
    key = lines[i].split(": ", 1)[0]
    lines[i] = f"{key}: {rng.choice(TOKENS)}"
    return "\n".join(lines)


def replace_line(text: str, rng: random.Random) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    indent = len(lines[i]) - len(lines[i].lstrip(" "))
    lines[i] = " " * indent + rng.choice(TOKENS)
    return "\n".join(lines)


def reindent(text: str, rng: random.Random) -> str:
    lines = _lines(text)
    i = rng.randrange(len(lines))
    lines[i] = (" " * rng.choice([1, 2, 4]) + lines[i]) if rng.random() < 0.5 else lines[i].lstrip(" ")
    return "\n".join(lines)


def random_char(text: str, rng: random.Random) -> str:
    i = rng.randrange(len(text) + 1)
    char = rng.choice(":-[]{},&*!|>'\"%@`#?\t\n\r ~$()=<.") if rng.random() < 0.7 else chr(rng.randrange(1, 0x3000))
    return text[:i] + char + text[i + rng.choice([0, 1]):]


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*")
VOCABULARY = ("int64", "int32", "float64", "float32", "bool", "string", "date", "timestamp", "null",
              "true", "x", "id", "label", "production", "params", "sum", "mean", "count", "stddev",
              "if_else", "coalesce", "cast", "date", "year", "round", "sqrt", "abs", "lower", "row_count",
              "null_fraction", "min", "max", "and", "or", "not", "in", "is", "accuracy", "roc_auc", "r2",
              "rmse", "log_loss", "error_rate", "latency_p99_ms", "n_estimators", "max_depth", "C",
              "random_state", "probability", "sklearn.svm.SVC", "sklearn.cluster.KMeans",
              "sklearn.dummy.DummyClassifier", "sklearn.linear_model.LinearRegression",
              "sklearn.ensemble.HistGradientBoostingRegressor", "sklearn.pipeline.Pipeline",
              "canary", "shadow", "blue_green", "direct", "left", "right", "outer", "cross")
EXPR_TOKENS = (" + ", " - ", " * ", " / ", " % ", " and ", " or ", " not ", " == ", " != ", " < ", " >= ",
               " in [1, 2]", " is null", " is not null", "(", ")", "[", "]", ",", "null", "1e999", "-1",
               "9" * 30, "9" * 5000, "0.5", '"x"', "''", "`odd col`", "date(\"2026-02-30\")",
               "timestamp(\"x\")", "sum(", "count()", "if_else(", "${params.seed}", "params.x",
               "production.", " x ", "\\", "\\u0000")


def swap_word(text: str, rng: random.Random) -> str:
    """A name becomes another name of the spec or of the language: references, types, functions,
    metrics and estimators that exist, just not there, so the mutant reaches the later passes."""
    words = list(_WORD.finditer(text))
    if not words:
        return insert_token(text, rng)
    m = rng.choice(words)
    other = rng.choice(words).group(0) if rng.random() < 0.6 else rng.choice(VOCABULARY)
    return text[:m.start()] + other + text[m.end():]


def expr_token(text: str, rng: random.Random) -> str:
    """An expression token inserted into a value (most values are names or expressions)."""
    lines = _lines(text)
    candidates = [i for i, line in enumerate(lines) if ": " in line and not line.lstrip().startswith("#")]
    if not candidates:
        return insert_token(text, rng)
    i = rng.choice(candidates)
    head, value = lines[i].split(": ", 1)
    at = rng.randrange(len(value) + 1)
    lines[i] = f"{head}: {value[:at]}{rng.choice(EXPR_TOKENS)}{value[at:]}"
    return "\n".join(lines)


TEXT_MUTATIONS = (delete_lines, duplicate_line, swap_chars, delete_span, insert_token, replace_value,
                  replace_value, replace_line, reindent, random_char, random_char, swap_word, swap_word,
                  swap_word, expr_token, expr_token)


def text_mutant(text: str, rng: random.Random) -> str:
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        text = rng.choice(TEXT_MUTATIONS)(text, rng)
    return text


# --- data-level mutations -------------------------------------------------------------


class _Raw(str):
    """A placeholder dumped as a plain string and replaced by raw YAML text afterwards."""


def random_value(rng: random.Random, raws: list[str], depth: int = 0) -> Any:
    roll = rng.random()
    if roll < 0.45 or depth > 2:
        return rng.choice(_SIMPLE)
    if roll < 0.65:
        raws.append(rng.choice(TOKENS))
        return _Raw(f"__RAW{len(raws) - 1}__")
    if roll < 0.8:
        return [random_value(rng, raws, depth + 1) for _ in range(rng.randint(0, 3))]
    return {rng.choice(["from", "path", "x", "target", "schema", "a", "traffic", "1"]):
            random_value(rng, raws, depth + 1) for _ in range(rng.randint(0, 3))}


def _paths(data: Any, path: tuple = ()) -> list[tuple]:
    out = [path]
    if isinstance(data, dict):
        for k, v in data.items():
            out += _paths(v, path + (k,))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            out += _paths(v, path + (i,))
    return out


def _get(data: Any, path: tuple) -> Any:
    for part in path:
        data = data[part]
    return data


def _mutate_data(data: dict, rng: random.Random, raws: list[str]) -> Any:
    paths = [p for p in _paths(data) if p]
    if not paths:
        return random_value(rng, raws)
    path = rng.choice(paths)
    parent, last = _get(data, path[:-1]), path[-1]
    op = rng.choice(["replace", "replace", "replace", "delete", "rename", "add", "wrap", "copy"])
    if op == "replace":
        parent[last] = random_value(rng, raws)
    elif op == "delete":
        del parent[last]
    elif op == "rename" and isinstance(parent, dict):
        parent[rng.choice(["from", "to", "x", "1", "on", "features", "Model", last + "_"
                           if isinstance(last, str) else "k"])] = parent.pop(last)
    elif op == "add" and isinstance(parent, dict):
        parent[rng.choice(["extra", "where", "columns", "split", "cv", "params", "join", "steps"])] = \
            random_value(rng, raws)
    elif op == "wrap":
        parent[last] = rng.choice([[parent[last]], {"x": parent[last]}])
    else:
        parent[last] = copy.deepcopy(_get(data, rng.choice(paths)))  # another part of the spec
    return data


def data_mutant(text: str, rng: random.Random) -> str:
    try:
        data = yaml.load(text, Loader=_LOADER)
    except yaml.YAMLError:
        return text_mutant(text, rng)
    raws: list[str] = []
    for _ in range(rng.choice([1, 1, 2, 3])):
        data = _mutate_data(data, rng, raws) if isinstance(data, dict) else random_value(rng, raws)
    out = yaml.dump(data, Dumper=_Dumper, sort_keys=False, allow_unicode=rng.random() < 0.5,
                    default_flow_style=rng.choice([False, None]), width=rng.choice([80, 10**6]))
    for i, raw in enumerate(raws):
        out = out.replace(f"__RAW{i}__", raw)
    return out


_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Dumper(getattr(yaml, "CSafeDumper", yaml.SafeDumper)):
    pass


_Dumper.add_representer(_Raw, lambda d, v: d.represent_scalar("tag:yaml.org,2002:str", str(v)))


# --- the mutant of (seed, i) and the check ----------------------------------------------


def corpus() -> list[Path]:
    return sorted(ROOT.glob("specs/valid/*.yaml")) + sorted(ROOT.glob("examples/*/pipeline.yaml"))


@dataclass(frozen=True)
class Mutant:
    source: Path
    how: str
    raw: bytes
    params: tuple[str, ...]


PARAM_OVERRIDES = ("seed=" + "9" * 5000, "seed=1e999", "seed=", "=1", "min_auc=nan", "min_auc=inf",
                   "min_auc=0.5", "threshold=" + "9" * 401, "nope=1", "x", "seed=0x10", "flag=maybe")


def mutate(text: str, rng: random.Random, source: Path = Path("spec.yaml")) -> Mutant:
    how = rng.choice(["text", "text", "data"])
    out = text_mutant(text, rng) if how == "text" else data_mutant(text, rng)
    raw = out.encode("utf-8", "surrogatepass")
    if rng.random() < 0.03:  # bytes: cut in a UTF-8 sequence, a NUL, a BOM
        i = rng.randrange(len(raw) + 1)
        raw = raw[:i] + rng.choice([b"\xff", b"\xc3", b"\x00", b"\xef\xbb\xbf", b"\r\n"]) + raw[i:]
        how += "+bytes"
    params = tuple(rng.sample(PARAM_OVERRIDES, rng.randint(1, 2))) if rng.random() < 0.05 else ()
    return Mutant(source, how, raw, params)


def mutant(seed: int, i: int, specs: list[Path], texts: dict[Path, str]) -> Mutant:
    rng = random.Random(seed * 1_000_003 + i)
    source = rng.choice(specs)
    return mutate(texts[source], rng, source)


def check(raw: bytes, base_dir: str, params: tuple[str, ...] = ()) -> Result | None:
    """What `pipespec check` does with a file's bytes, in-process: only diagnostics, or an
    exception (a finding)."""
    diags = Diagnostics()
    text = decode_source(raw, FILE, diags)
    if text is None:
        render_text(diags.sorted(), {})
        return None
    result = compile_text(text, FILE, list(params), base_dir=base_dir)
    render_text(result.diagnostics, {FILE: text})
    render_json(result.diagnostics)
    if result.ir is not None:
        result.ir.to_json()
        for node in result.ir.nodes:
            if node.kind in ("Source", "Transform"):
                len(node.output.columns)
    return result


def compile_targets(result: Result | None) -> None:
    """`--targets`: a spec that checks must also compile for every target, or be refused by it
    (UnsupportedError, what `pipespec compile` prints as an error)."""
    if result is None or result.ir is None:
        return
    from pipespec.targets.base import UnsupportedError
    from pipespec.targets.registry import TARGETS

    for target in TARGETS.values():
        try:
            target.compile(result.ir, {})
        except UnsupportedError:
            pass


# --- the command --------------------------------------------------------------------------


class _Timeout(Exception):
    pass


def _alarm(signum, frame):
    raise _Timeout()


def run(n: int, seed: int, slow: float, hang: float, save: str | None, targets: bool = False) -> int:
    import signal

    specs, texts = corpus(), {}
    for path in specs:
        texts[path] = path.read_text(encoding="utf-8")
        check(path.read_bytes(), str(path.parent))  # warm: imports, estimator checks, inference
    signal.signal(signal.SIGALRM, _alarm)
    times, findings, slow_ones = [], [], []
    started = time.perf_counter()
    for i in range(n):
        m = mutant(seed, i, specs, texts)
        if save:
            Path(save, "current.yaml").write_bytes(m.raw)
        faulthandler.dump_traceback_later(hang, exit=True)
        signal.setitimer(signal.ITIMER_REAL, hang / 2)
        t0 = time.perf_counter()
        try:
            result = check(m.raw, str(m.source.parent), m.params)
            if targets:
                compile_targets(result)
            error = None
        except _Timeout:
            error = f"timeout: over {hang / 2:g}s"
        except Exception as exc:  # noqa: BLE001 - every exception is a finding
            error = "".join(traceback.format_exception_only(exc)).strip()[:300] + "\n" + \
                "".join(traceback.format_tb(exc.__traceback__)[-3:])
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            faulthandler.cancel_dump_traceback_later()
        elapsed = time.perf_counter() - t0
        times.append(elapsed)
        if error:
            findings.append((i, m, error))
            _report(i, m, error, save)
        elif elapsed > slow:
            slow_ones.append((i, m, elapsed))
            print(f"slow #{i}: {elapsed:.2f}s ({m.source.name}, {m.how})", file=sys.stderr)
        if (i + 1) % 1000 == 0:
            print(f"{i + 1:,} mutants, {len(findings)} exceptions, {time.perf_counter() - started:.0f}s",
                  file=sys.stderr)
    _summary(n, seed, times, findings, slow_ones, slow)
    return 1 if findings or slow_ones else 0


def _report(i: int, m: Mutant, error: str, save: str | None) -> None:
    print(f"EXCEPTION #{i} ({m.source.relative_to(ROOT)}, {m.how}, params={list(m.params)}):\n{error}",
          file=sys.stderr)
    if save:
        Path(save, f"finding-{i}.yaml").write_bytes(m.raw)


def _summary(n, seed, times, findings, slow_ones, slow) -> None:
    ordered = sorted(times)
    p = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))]  # noqa: E731
    print(f"seed {seed}: {n:,} mutants checked (warm), {len(findings)} exceptions other than "
          f"diagnostics, {len(slow_ones)} over {slow:g}s")
    print(f"time per check: median {p(0.5) * 1000:.1f} ms, p99 {p(0.99) * 1000:.1f} ms, "
          f"max {ordered[-1] * 1000:.1f} ms, total {sum(times):.1f}s")
    kinds: dict[str, int] = {}
    for _, _, error in findings:
        kinds[error.splitlines()[0]] = kinds.get(error.splitlines()[0], 0) + 1
    for line, count in sorted(kinds.items(), key=lambda kv: -kv[1]):
        print(f"  {count:5d}  {line}")


def show(seed: int, i: int) -> None:
    specs = corpus()
    texts = {p: p.read_text(encoding="utf-8") for p in specs}
    m = mutant(seed, i, specs, texts)
    print(f"# mutant {i} of seed {seed}: {m.source.relative_to(ROOT)} ({m.how}), params {list(m.params)}")
    sys.stdout.write(m.raw.decode("utf-8", "replace") + "\n")
    t0 = time.perf_counter()
    result = check(m.raw, str(m.source.parent), m.params)
    compile_targets(result)
    print(f"# checked (and compiled for every target) in {time.perf_counter() - t0:.3f}s")
    if result is not None:
        print(render_text(result.diagnostics, {FILE: result.text or ""}))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", type=int, default=10_000, help="mutants to check (default 10,000)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--slow", type=float, default=2.0, help="seconds a check may take (default 2)")
    parser.add_argument("--hang", type=float, default=60.0, help="seconds before a check is a hang")
    parser.add_argument("--save", metavar="DIR", help="write findings (and the current mutant) here")
    parser.add_argument("--show", type=int, metavar="I", help="print and check mutant I, then stop")
    parser.add_argument("--targets", action="store_true",
                        help="also compile every mutant that checks for every target (timed with the check)")
    args = parser.parse_args(argv)
    if args.show is not None:
        show(args.seed, args.show)
        return 0
    if args.save:
        os.makedirs(args.save, exist_ok=True)
    return run(args.n, args.seed, args.slow, args.hang, args.save, args.targets)


if __name__ == "__main__":
    sys.exit(main())
