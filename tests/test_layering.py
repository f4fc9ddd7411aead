"""Architecture rules: data flows compiler -> IR -> runtime/targets, never back."""

import ast
from pathlib import Path

import pipespec.compiler
import pipespec.runtime
import pipespec.targets

ROOT = Path(__file__).resolve().parent.parent


def _imports(path: Path) -> set[str]:
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            prefix = "." * node.level + (node.module or "")
            names.add(prefix)
    return names


def test_compiler_imports_neither_runtime_nor_targets():
    offenders = []
    for path in sorted((ROOT / "compiler").glob("*.py")):
        for name in _imports(path):
            if "runtime" in name or "targets" in name or name.startswith(".."):
                offenders.append(f"{path.name}: {name}")
    assert offenders == []


def test_ir_module_does_not_import_pydantic():
    assert not any("pydantic" in n for n in _imports(ROOT / "compiler" / "ir.py"))


def test_subpackages_map_to_top_level_folders():
    assert Path(pipespec.compiler.__file__).resolve() == ROOT / "compiler" / "__init__.py"
    assert Path(pipespec.runtime.__file__).resolve().parent == ROOT / "runtime"
    assert Path(pipespec.targets.__file__).resolve().parent == ROOT / "targets"


def test_grammar_ships_with_the_package():
    assert (Path(pipespec.compiler.__file__).parent / "grammar.lark").is_file()
