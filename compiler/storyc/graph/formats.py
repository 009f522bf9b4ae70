"""The step graph as `storyc graph` prints it: JSON, Mermaid or Graphviz dot, each step with
its key's first digits and whether it is cached."""

from __future__ import annotations

import re
from typing import Any

from storyc.graph.resolve import Resolution
from storyc.graph.steps import Step, StepGraph


def edge_label(step: Step, dep: str) -> str | None:
    """What an edge means when it is not just "uses the output of": a seamless cut's clip
    ends on the next scene's keyframe."""
    end_on = (step.static.get("clip") or {}).get("end_on") if step.kind == "video" else None
    return "ends on" if end_on is not None and dep == f"keyframe:{end_on}" else None


def graph_json(graph: StepGraph, res: Resolution) -> dict[str, Any]:
    return {
        "story": str(graph.story_path),
        "backend": graph.backend,
        "steps": [
            {
                "id": s.id,
                "kind": s.kind,
                "deps": list(s.deps),
                "key": res.keys[s.id] or "pending",
                "cached": res.cached(s.id),
                **({"ends_on": ends} if (ends := [d for d in s.deps if edge_label(s, d)]) else {}),
            }
            for s in graph.steps.values()
        ],
    }


def _node_name(sid: str) -> str:
    return "n_" + re.sub(r"[^A-Za-z0-9_]", "_", sid)


def _node_facts(step_id: str, res: Resolution) -> tuple[str, str]:
    """What a graph node shows besides its id: the key's first 12 digits, and its state."""
    return (res.keys[step_id] or "pending")[:12], "cached" if res.cached(step_id) else "to build"


def graph_mermaid(graph: StepGraph, res: Resolution) -> str:
    lines = ["flowchart LR"]
    for s in graph.steps.values():
        key, state = _node_facts(s.id, res)
        label = f"{s.id}<br/>{key}<br/>{state}".replace('"', "'")
        lines.append(f'    {_node_name(s.id)}["{label}"]')
    for s in graph.steps.values():
        for d in s.deps:
            edge = edge_label(s, d)
            arrow = f"-- {edge} -->" if edge else "-->"
            lines.append(f"    {_node_name(d)} {arrow} {_node_name(s.id)}")
    lines.append("    classDef cached fill:#d4f7d4,stroke:#2a2;")
    cached = [_node_name(s) for s in graph.steps if res.cached(s)]
    if cached:
        lines.append(f"    class {','.join(cached)} cached;")
    return "\n".join(lines)


def graph_dot(graph: StepGraph, res: Resolution) -> str:
    lines = ["digraph storyc {", "  rankdir=LR;", "  node [shape=box, fontname=monospace];"]
    for s in graph.steps.values():
        key, state = _node_facts(s.id, res)
        color = ', style=filled, fillcolor="#d4f7d4"' if res.cached(s.id) else ""
        label = f"{s.id}\\n{key}\\n{state}".replace('"', "'")
        lines.append(f'  "{s.id}" [label="{label}"{color}];')
    for s in graph.steps.values():
        for d in s.deps:
            edge = edge_label(s, d)
            attrs = f' [label="{edge}", style=bold]' if edge else ""
            lines.append(f'  "{d}" -> "{s.id}"{attrs};')
    lines.append("}")
    return "\n".join(lines)
