"""What `storyc build` is asked to do (BuildOptions) and what it did (BuildResult)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.backends.base import Backend, OnEvent
from storyc.diagnostics import Diagnostic
from storyc.run.retry import RetryPolicy


def default_out_dir(story_path: Path) -> Path:
    return Path("build") / Path(story_path).stem


@dataclass
class BuildOptions:
    story: Path
    backend: str | None = None
    out_dir: Path | None = None
    cache_dir: Path | None = None
    prompts_dir: Path | None = None
    dry_run: bool = False
    max_cost: float | None = None
    select: str | None = None
    force: bool = False
    rates: Mapping[str, float] | None = None
    concurrency: Mapping[str, int] | None = None
    retry: RetryPolicy | None = None
    backend_factory: Callable[[str], Backend] | None = None  # tests wrap the backend
    on_event: OnEvent | None = None
    until: str | None = None  # sheets | keyframes | videos: stop after that stage (graph.steps.STAGES)
    redo: str | None = None  # a target (scene:2) to generate again even if cached
    note: str | None = None  # with redo: appended to its prompt (kept in approved/approvals.json)
    draft: bool = False  # a quick preview: 480p, no video corrections, fast encoding (model.story.draft_story)


@dataclass
class BuildResult:
    status: str  # up_to_date | built | stopped | dry_run | failed | interrupted | budget | missing
    backend: str
    out_dir: Path
    message: str = ""
    report: dict[str, Any] = field(default_factory=dict)
    dry_run: dict[str, Any] = field(default_factory=dict)
    warnings: list[Diagnostic] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # step → error
    until: dict[str, Any] = field(default_factory=dict)  # --until: what was built, what waits, what the rest costs

    @property
    def ok(self) -> bool:
        return self.status in ("up_to_date", "built", "stopped", "dry_run")
