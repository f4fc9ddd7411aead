"""Golden files: what each target generates for each example, kept under tests/golden/ and
compared byte for byte.  `pytest --update-golden` rewrites them instead; review the diff
before committing it.  Tests get a `Golden` from conftest's `golden` fixture."""

from __future__ import annotations

import difflib
import shutil
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent / "golden"


@dataclass(frozen=True)
class Golden:
    update: bool = False

    def check(self, folder: str, files: dict[str, bytes], stand_ins: dict[str, str] | None = None) -> None:
        """`files` (relative path -> bytes) are exactly the files under tests/golden/<folder>.
        `stand_ins` (text -> what the golden files hold instead) keep out what changes by
        itself, such as pipespec's own version."""
        if not folder.strip("/") or ".." in Path(folder).parts:
            raise ValueError(f"not a folder under tests/golden: {folder!r}")
        got = {rel: _stand_in(data, stand_ins or {}) for rel, data in files.items()}
        path = ROOT / folder
        if self.update:
            shutil.rmtree(path, ignore_errors=True)
            for rel, data in got.items():
                (path / rel).parent.mkdir(parents=True, exist_ok=True)
                (path / rel).write_bytes(data)
        expected = {p.relative_to(path).as_posix(): p.read_bytes() for p in sorted(path.rglob("*"))
                    if p.is_file()}
        if got != expected:
            raise AssertionError(_report(folder, got, expected))


def _stand_in(data: bytes, stand_ins: dict[str, str]) -> bytes:
    for text, stand_in in stand_ins.items():
        data = data.replace(text.encode(), stand_in.encode())
    return data


def _report(folder: str, got: dict[str, bytes], expected: dict[str, bytes]) -> str:
    hint = "if the change is intended: pytest --update-golden, then review the diff"
    lines = [f"generated files differ from tests/golden/{folder} ({hint})"]
    for rel in sorted(set(got) | set(expected)):
        if rel not in expected:
            lines.append(f"new file: {rel}")
        elif rel not in got:
            lines.append(f"no longer generated: {rel}")
        elif got[rel] != expected[rel]:
            diff = difflib.unified_diff(expected[rel].decode(errors="replace").splitlines(),
                                        got[rel].decode(errors="replace").splitlines(),
                                        f"golden/{folder}/{rel}", "generated", lineterm="", n=2)
            lines += list(diff)[:60]
    return "\n".join(lines)
