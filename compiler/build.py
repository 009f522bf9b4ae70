"""`storyc build`: load → lint → plan → resolve the cache → execute → assemble → reports.

This module orchestrates and never imports Prefect itself: when every step is already
in the cache the build is "up to date" without starting Prefect (storyc.executor is
imported only when something must run).
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from storyc.cache import Cache, default_cache_dir
from storyc.diagnostics import StorycError
from storyc.plan import BuildPlan, Resolution, build_plan, planned_calls, resolve


def default_backend_name() -> str:
    return "xai" if os.environ.get("XAI_API_KEY") else "offline"


@dataclass
class Prepared:
    loaded: Any
    prompts: Any
    plan: BuildPlan
    cache: Cache


def prepare(
    story_path: str | Path,
    *,
    backend: str | None = None,
    cache_dir: str | Path | None = None,
    prompts_dir: str | Path | None = None,
    lint: bool = False,
) -> Prepared:
    """Load (and optionally lint) the story and compile its plan. Raises StorycError."""
    from storyc.loader import load_story
    from storyc.prompts import PromptSet

    loaded = load_story(story_path)
    if lint:
        errors = [d for d in lint_diagnostics(loaded) if d.is_error]
        if errors:
            raise StorycError(errors)
    prompts = PromptSet(loaded.story, story_path=loaded.path, override_dir=Path(prompts_dir) if prompts_dir else None)
    plan = build_plan(loaded, prompts, backend=backend or default_backend_name())
    cache = Cache(Path(cache_dir) if cache_dir else default_cache_dir(loaded.path))
    return Prepared(loaded=loaded, prompts=prompts, plan=plan, cache=cache)


def lint_diagnostics(loaded: Any) -> list:
    try:
        from storyc.lint import lint_story
    except ImportError:  # lint lands separately; the loader's checks still ran
        return []
    return list(lint_story(loaded))
