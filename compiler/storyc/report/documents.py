"""The build's records: state.json and report.json (atomic JSON) and script.md.

Pure functions of (story, build state): no Prefect, no media libraries. script.md and
storyboard.html (storyc.report.html, re-exported here) render from one view of the
build (storyc.report.view), so the two storyboards always show the same facts.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from storyc.model.state import BuildState
from storyc.model.story import Story
from storyc.report.html import STORYBOARD_FILE, write_storyboard_html  # public here too (__all__)
from storyc.report.view import fmt_score as _fmt_score
from storyc.report.view import storyboard_view
from storyc.store.fsutil import atomic_write_text

SCRIPT_FILE = "script.md"
STATE_FILE = "state.json"
REPORT_FILE = "report.json"

__all__ = [
    "REPORT_FILE",
    "SCRIPT_FILE",
    "STATE_FILE",
    "STORYBOARD_FILE",
    "write_json_atomic",
    "write_report",
    "write_script_md",
    "write_state",
    "write_storyboard_html",
]

# ─── atomic JSON ────────────────────────────────────────────────────────────


def write_json_atomic(path: Path, data: dict | BaseModel) -> None:
    """Write JSON so readers only ever see the old or the new complete file: a temp
    file in the same folder, fsync, then os.replace (atomic on POSIX and Windows)."""
    path = Path(path)
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    else:
        text = json.dumps(data, indent=2, ensure_ascii=False, default=str)
    atomic_write_text(path, text + "\n")  # temp file + fsync + rename + fsync of the folder


def write_state(out_dir: Path, state: BuildState) -> Path:
    path = Path(out_dir) / STATE_FILE
    write_json_atomic(path, state)
    return path


def write_report(out_dir: Path, report: dict) -> Path:
    path = Path(out_dir) / REPORT_FILE
    write_json_atomic(path, report)
    return path


# ─── script.md ──────────────────────────────────────────────────────────────


def _md_text(text: Any) -> str:
    """Plain text for Markdown: no raw HTML, one line."""
    return html.escape(" ".join(str(text).split()), quote=False)


def _md_cell(text: Any) -> str:
    return _md_text(text).replace("|", "\\|")


def _md_link_target(path: str) -> str:
    # <...> destinations allow spaces and parentheses (character names may have them)
    return "<" + path.replace("<", "%3C").replace(">", "%3E") + ">"


def _md_image(alt: str, path: str) -> str:
    return f"![{_md_text(alt).replace(']', ')')}]({_md_link_target(path)})"


def _md_fence(text: str) -> list[str]:
    """A code fence longer than any backtick run inside, so any prompt shows verbatim."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text, fence]


def _md_attempts(tries) -> str:
    """`[v1](<path>) (compose, 0.62)` for each attempt the build did not keep."""
    return ", ".join(f"[{t.label}]({_md_link_target(t.path)}) ({t.kind}, {_fmt_score(t.score)})" for t in tries)


def write_script_md(out_dir: Path, story: Story, state: BuildState, notice: str | None = None) -> Path:
    """The storyboard as Markdown: images embedded by relative path, a table per scene,
    the exact prompts sent, scores, the final video and build stats; `notice` says why
    the build stopped early, shown at the top."""
    out_dir = Path(out_dir)
    board = storyboard_view(out_dir, story, state, notice)
    lines = [
        f"# {_md_text(board.title)}",
        "",
        *([f"> **⚠ {_md_text(board.notice)}**", ""] if board.notice else []),
        f"**Style:** {_md_text(board.style)}  ",
        f"**Aspect ratio:** {board.aspect_ratio} · **Resolution:** {board.resolution}  ",
        f"**Color palette:** {_md_text(board.palette)}",
        "",
    ]
    if board.final_video:
        lines += [f"**Final video:** [{_md_text(board.final_video)}]({_md_link_target(board.final_video)})", ""]
    lines += ["---", "", "## Characters", ""]
    for c in board.characters:
        lines.append(f"### {_md_text(c.name)}")
        lines.append("")
        lines.append(
            f"**Role:** {_md_text(c.role)} | **Score:** {_fmt_score(c.score)} | "
            f"**Attempts:** {c.attempts if c.attempts is not None else '–'} | **Status:** {c.status}"
        )
        lines.append("")
        if c.error:
            lines += [f"**Error:** {_md_text(c.error)}", ""]
        lines += [f"> {_md_text(c.description)}", ""]
        if c.cues:
            lines += [f"*{_md_text(', '.join(c.cues))}*", ""]
        if c.reference_image:
            lines += [f"Based on the reference image `{_md_text(c.reference_image)}`.", ""]
        if c.sheet:
            lines += [_md_image(c.name, c.sheet), ""]
        others = [t for t in c.tries if not t.kept]
        if others:
            lines += ["Other attempts: " + _md_attempts(others), ""]
        for role, prompt in c.prompts.items():
            lines += [f"**Prompt ({_md_text(role)}):**", "", *_md_fence(prompt), ""]
    lines += ["---", "", "## Scenes", ""]
    for s in board.scenes:
        lines += [f"### Scene {s.scene_id}: {_md_text(s.title)}", "", _md_text(s.description), ""]
        lines += ["| Property | Value |", "|---|---|"]
        lines += [f"| {name} | {_md_cell(value)} |" for name, value in s.table]
        lines += [f"| References | {_md_cell(s.references)} |", ""]
        for problem in s.problems:
            lines += [f"**Failed:** {_md_text(problem)}", ""]
        if s.keyframe:
            lines += [_md_image(f"Scene {s.scene_id} keyframe", s.keyframe), ""]
        others = [t for t in s.keyframe_tries if not t.kept]
        if others:
            lines += ["Other keyframe attempts: " + _md_attempts(others), ""]
        frames = [(label, p) for label, p in (("first frame", s.first_frame), ("last frame", s.last_frame)) if p]
        if frames:
            lines += [" ".join(_md_image(f"Scene {s.scene_id} {label}", p) for label, p in frames), ""]
        if s.video:
            lines += [f"**Video:** [{_md_text(s.video)}]({_md_link_target(s.video)})", ""]
        if s.corrections:
            lines += ["Corrections: " + ", ".join(f"[{a.label}]({_md_link_target(a.path)})" for a in s.corrections), ""]
        for label, prompt in s.prompts:
            lines += [f"**Prompt ({_md_text(label)}):**", "", *_md_fence(prompt), ""]
    lines += ["---", "", "## Build", ""]
    if board.final_video:
        lines += [f"Final video: [{_md_text(board.final_video)}]({_md_link_target(board.final_video)})", ""]
    lines += ["| Stat | Value |", "|---|---|"]
    lines += [f"| {name} | {_md_cell(value)} |" for name, value in board.stats]
    path = out_dir / SCRIPT_FILE
    atomic_write_text(path, "\n".join(lines) + "\n")
    return path
