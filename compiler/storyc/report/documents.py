"""The build's documents: script.md and report.json (storyboard.html: storyc.report.html,
re-exported here for the build's callers).

Pure functions of (story, build state): no Prefect, no media libraries. script.md renders
from templates/script.md.j2 and the same view of the build as storyboard.html
(storyc.report.view), so the two storyboards always show the same facts.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storyc.model.state import BuildState
from storyc.model.story import Story
from storyc.report.html import STORYBOARD_FILE, write_storyboard_html  # public here too (__all__)
from storyc.report.review import Review
from storyc.report.templating import render
from storyc.report.view import Storyboard, storyboard_view
from storyc.store.fsutil import atomic_write_bytes

SCRIPT_FILE = "script.md"
REPORT_FILE = "report.json"

__all__ = [
    "REPORT_FILE",
    "SCRIPT_FILE",
    "STORYBOARD_FILE",
    "render_script_md",
    "write_report",
    "write_script_md",
    "write_storyboard_html",
]

# ─── report.json ────────────────────────────────────────────────────────────


def write_report(out_dir: Path, report: dict[str, Any]) -> Path:
    """report.json, atomically (readers see the old or the new complete file), its keys in
    the order the build assembled them, not sorted."""
    path = Path(out_dir) / REPORT_FILE
    text = json.dumps(report, indent=2, ensure_ascii=False, default=str) + "\n"
    atomic_write_bytes(path, text.encode("utf-8"))
    return path


# ─── script.md ──────────────────────────────────────────────────────────────


def render_script_md(board: Storyboard) -> str:
    return render("script.md.j2", board=board)


def write_script_md(
    out_dir: Path, story: Story, state: BuildState, notice: str | None = None, review: Review | None = None
) -> Path:
    """The storyboard as Markdown: images embedded by relative path, a table per scene,
    the exact prompts sent, scores, the final video and build stats; `notice` says why
    the build stopped early, shown at the top; `review`, the approvals and approve commands."""
    out_dir = Path(out_dir)
    path = out_dir / SCRIPT_FILE
    board = storyboard_view(out_dir, story, state, notice, review)
    atomic_write_bytes(path, render_script_md(board).encode("utf-8"))
    return path
