"""Damage every part of a real store in every way, then see whether pipespec recovers.

    python bench/tamper_store.py [--example churn] [--only PART] [--limit N] [--out results.md]

Runs the example once into a clean store (the reference digests), then for each case
copies that store, damages one file (flip a byte, truncate, delete, random garbage, an
empty file, JSON of the wrong shape), runs `pipespec cache verify` (did it notice?) and
`pipespec run`, and records the outcome:

- `healed`: run exited 0 and every node's digest equals the clean run's;
- `fixed by hint`: run failed with a message whose suggested fix (a `cache verify
  --delete`) made the next run exit 0 with the clean digests;
- anything else is a finding: a traceback, a wrong digest, a hint that did not work.

"damage left after" says whether `cache verify` still finds something after that: a
damaged file no node reads (a leaf's output flipped in place, same size) stays until
`run --verify` or `cache verify --delete`.

`plan`, `runs` and `show` are run on every damaged record and every flipped file too:
they must never print a traceback.  Prints a markdown table and a summary; exits 1 when any case is a finding.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
KINDS = ("flip", "truncate", "delete", "garbage", "empty")
JSON_KINDS = ("{}", "[]", '{"nodes": null}', "null")


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, NO_COLOR="1")
    return subprocess.run([sys.executable, "-m", "pipespec", *args], capture_output=True, text=True,
                          cwd=cwd, env=env, timeout=900)


def latest_digests(store: Path, pipeline: str) -> dict[str, str]:
    runs = sorted((store / "runs" / pipeline).glob("*.json"))
    record = json.loads(runs[-1].read_text())
    return {n["id"]: n["digest"] for n in record["nodes"]}


def damage(path: Path, how: str, rng: random.Random) -> None:
    data = path.read_bytes()
    if how == "flip":
        buf = bytearray(data)
        buf[len(buf) // 2] ^= 0xFF
        path.write_bytes(bytes(buf))
    elif how == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif how == "delete":
        path.unlink()
    elif how == "garbage":
        path.write_bytes(rng.randbytes(max(len(data), 16)))
    elif how == "empty":
        path.write_bytes(b"")
    else:  # JSON of the wrong shape
        path.write_text(how + "\n")


def cases(store: Path) -> list[tuple[str, str, str]]:
    """(part, relative path, how) for one file of every kind the store holds."""
    out = []
    entries = {}
    for entry in sorted((store / "cache").rglob("*.json")):
        data = json.loads(entry.read_text())
        entries.setdefault(data["kind"], (entry, data))
    for kind, (entry, data) in sorted(entries.items()):
        obj = store / "objects" / data["digest"][:2] / data["digest"][2:]
        for how in KINDS:
            out.append((f"object ({kind})", str(obj.relative_to(store)), how))
        for how in (*KINDS, *JSON_KINDS):
            out.append((f"cache entry ({kind})", str(entry.relative_to(store)), how))
    for group, part in (("runs", "run record"), ("registry", "registry record"),
                        ("state/compiled", "compile cache")):
        files = sorted(p for p in (store / group).rglob("*.json"))
        for how in (*KINDS, *JSON_KINDS):
            out.append((part, str(files[-1].relative_to(store)), how))
    for how in ("flip", "truncate", "garbage", "empty"):
        out.append(("stat cache", "state/stat.sqlite", how))
    return out


def run_case(work: Path, clean_store: Path, spec_dir: Path, part: str, rel: str, how: str,
             pipeline: str, clean: dict, rng: random.Random) -> dict:
    case_dir = work / "case"
    shutil.rmtree(case_dir, ignore_errors=True)
    shutil.copytree(spec_dir, case_dir, ignore=shutil.ignore_patterns(".pipespec"))
    store = case_dir / ".pipespec"
    shutil.copytree(clean_store, store)
    damage(store / rel, how, rng)
    spec = str(case_dir / "pipeline.yaml")
    noticed = cli("cache", "verify", "--store", str(store), cwd=case_dir).returncode == 1
    last = sorted(clean)[-1]
    side = [cli(*cmd, cwd=case_dir) for cmd in (("plan", spec), ("runs", spec), ("show", spec, last))
            ] if part.endswith("record") or how == "flip" else []
    first = cli("run", spec, "--no-progress", cwd=case_dir)
    outcome, hint = _judge(first, store, pipeline, clean)
    if outcome == "failed" and "cache verify --delete" in first.stdout + first.stderr:
        cli("cache", "verify", "--store", str(store), "--delete", cwd=case_dir)
        second = cli("run", spec, "--no-progress", cwd=case_dir)
        outcome = "fixed by hint" if _judge(second, store, pipeline, clean)[0] == "healed" else "HINT DID NOT WORK"
    tracebacks = [p for p in (*side, first) if "Traceback" in p.stdout + p.stderr]
    if tracebacks:
        outcome = "TRACEBACK"
    left = cli("cache", "verify", "--store", str(store), cwd=case_dir).returncode == 1
    return {"part": part, "file": rel, "how": how, "verify": "yes" if noticed else "no",
            "run": first.returncode, "outcome": outcome, "hint": hint, "left": "yes" if left else "no"}


def _judge(proc, store: Path, pipeline: str, clean: dict) -> tuple[str, str]:
    text = proc.stdout + proc.stderr
    hint = next((line.strip() for line in text.splitlines() if "hint:" in line), "")
    if proc.returncode != 0:
        return "failed", hint
    got = latest_digests(store, pipeline)
    return ("healed" if got == clean else "WRONG DIGESTS"), hint


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--example", default="churn")
    parser.add_argument("--only", help="only cases whose part contains this text")
    parser.add_argument("--out", help="also write the markdown table here")
    parser.add_argument("--limit", type=int, metavar="N", help="stop after N cases (a quick check that it runs)")
    args = parser.parse_args()
    rng = random.Random(0)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        spec_dir = work / "clean"
        shutil.copytree(ROOT / "examples" / args.example, spec_dir, ignore=shutil.ignore_patterns(".pipespec"))
        first = cli("run", str(spec_dir / "pipeline.yaml"), "--no-progress", cwd=spec_dir)
        assert first.returncode == 0, first.stdout + first.stderr
        cli("run", str(spec_dir / "pipeline.yaml"), "--no-progress", cwd=spec_dir)  # a 2nd record, compile cache
        pipeline = _pipeline(spec_dir)
        clean = latest_digests(spec_dir / ".pipespec", pipeline)
        rows = []
        for part, rel, how in cases(spec_dir / ".pipespec"):
            if args.only and args.only not in part:
                continue
            if args.limit is not None and len(rows) >= args.limit:
                break
            rows.append(run_case(work, spec_dir / ".pipespec", spec_dir, part, rel, how, pipeline, clean, rng))
            r = rows[-1]
            print(f"{r['part']:<28} {r['how']:<16} verify={r['verify']:<3} run={r['run']:<3} {r['outcome']}"
                  f" damage left={r['left']}", flush=True)
    table = ["| part | damage | `cache verify` noticed | `run` exit | outcome | damage left after |",
             "|---|---|---|---|---|---|"]
    table += [f"| {r['part']} | `{r['how']}` | {r['verify']} | {r['run']} | {r['outcome']} | {r['left']} |"
              for r in rows]
    counts = Counter(r["outcome"] for r in rows)
    summary = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    print("\n".join(table) + f"\n\n{len(rows)} cases: {summary}")
    if args.out:
        Path(args.out).write_text("\n".join(table) + f"\n\n{len(rows)} cases: {summary}\n")
    return 0 if set(counts) <= {"healed", "fixed by hint"} else 1


def _pipeline(spec_dir: Path) -> str:
    return next(p.name for p in (spec_dir / ".pipespec" / "runs").iterdir())


if __name__ == "__main__":
    sys.exit(main())
