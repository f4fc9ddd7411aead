"""The IR graph as Mermaid or Graphviz DOT text, nodes labelled by kind.

Labels are escaped for each format and node ids are generated (n0, n1, ...), so
no spec string can break out of the diagram syntax.
"""

from __future__ import annotations

from .ir import Graph, Node

_MERMAID_SHAPES = {"Source": ('[("', '")]'), "Transform": ('["', '"]'), "Train": ('[["', '"]]'),
                   "Evaluate": ('(["', '"])'), "Gate": ('{{"', '"}}'), "Rollout": ('>"', '"]')}
_MERMAID_STYLE = {"Gate": "fill:#fff3cd,stroke:#b58105,stroke-width:2px",
                  "Rollout": "fill:#d1e7dd,stroke:#146c43,stroke-width:2px",
                  "Source": "fill:#e7f1ff,stroke:#0b5ed7"}
_DOT_SHAPES = {"Source": "cylinder", "Transform": "box", "Train": "box3d", "Evaluate": "ellipse",
               "Gate": "hexagon", "Rollout": "cds"}
_DOT_STYLE = {"Gate": ', style=filled, fillcolor="#fff3cd"', "Rollout": ', style=filled, fillcolor="#d1e7dd"'}


def _label(node: Node) -> str:
    return f"{node.kind.lower()}: {node.name}"


def _mermaid_text(text: str) -> str:
    out = []
    for ch in text:
        if ch.isalnum() or ch in " _-.:/,()":
            out.append(ch)
        else:
            out.append(f"#{ord(ch)};")
    return "".join(out)


def mermaid(graph: Graph) -> str:
    ids = {n.id: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = ["flowchart LR"]
    for n in graph.nodes:
        left, right = _MERMAID_SHAPES[n.kind]
        lines.append(f"    {ids[n.id]}{left}{_mermaid_text(_label(n))}{right}")
    for u, v, role in graph.edges():
        lines.append(f"    {ids[u]} -->|{_mermaid_text(role)}| {ids[v]}" if role not in ("input", "table", "model")
                     else f"    {ids[u]} --> {ids[v]}")
    for kind, style in _MERMAID_STYLE.items():
        members = [ids[n.id] for n in graph.nodes if n.kind == kind]
        if members:
            lines.append(f"    classDef {kind.lower()} {style}")
            lines.append(f"    class {','.join(members)} {kind.lower()}")
    return "\n".join(lines) + "\n"


def _dot_text(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


def dot(graph: Graph) -> str:
    ids = {n.id: f"n{i}" for i, n in enumerate(graph.nodes)}
    lines = [f"digraph {_dot_text(graph.pipeline)} {{", "    rankdir=LR;", '    node [fontname="Helvetica"];']
    for n in graph.nodes:
        lines.append(f"    {ids[n.id]} [label={_dot_text(_label(n))}, shape={_DOT_SHAPES[n.kind]}"
                     f"{_DOT_STYLE.get(n.kind, '')}];")
    for u, v, role in graph.edges():
        extra = f" [label={_dot_text(role)}]" if role not in ("input", "table", "model") else ""
        lines.append(f"    {ids[u]} -> {ids[v]}{extra};")
    lines.append("}")
    return "\n".join(lines) + "\n"


FORMATS = {"mermaid": mermaid, "dot": dot}
