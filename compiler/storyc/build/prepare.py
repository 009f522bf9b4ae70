"""The front of a build (and of `storyc graph`, `storyc cache prune`): load the story,
lint it, render its prompts and compile its step graph. No I/O beyond reading inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from storyc.backend_name import default_backend_name
from storyc.diagnostics import Diagnostic, StorycError
from storyc.graph.builder import build_graph
from storyc.graph.steps import StepGraph
from storyc.lint import lint_for_build
from storyc.load.approvals import approvals_for_build
from storyc.load.loader import LoadedStory, load_story
from storyc.model.approvals import Approvals
from storyc.prompts.promptset import PromptSet
from storyc.store.cache import Cache, default_cache_dir


@dataclass
class Prepared:
    loaded: LoadedStory
    prompts: PromptSet
    graph: StepGraph
    cache: Cache
    approvals: Approvals = field(default_factory=Approvals)  # approved/approvals.json beside the story
    warnings: list[Diagnostic] = field(default_factory=list)  # lint's warnings (with lint=True)


def prepare(
    story_path: str | Path,
    *,
    backend: str | None = None,
    cache_dir: str | Path | None = None,
    prompts_dir: str | Path | None = None,
    lint: bool = False,
    draft: bool = False,
) -> Prepared:
    """Load (and optionally lint) the story and compile its graph (`draft`: the graph of
    `storyc build --draft`). Raises StorycError: with `lint`, on any lint error, before a
    graph is compiled from a story that lint refuses (duplicate scene ids could make a cycle)."""
    loaded = load_story(story_path)
    warnings: list[Diagnostic] = []
    if lint:
        diagnostics = lint_for_build(loaded, prompts_dir=prompts_dir)
        if any(d.is_error for d in diagnostics):
            raise StorycError(diagnostics)
        warnings = [d for d in diagnostics if not d.is_error]
    prompts = PromptSet(loaded.story, story_path=loaded.path, override_dir=Path(prompts_dir) if prompts_dir else None)
    approvals = approvals_for_build(loaded.base_dir)  # its redo notes are part of the keys
    graph = build_graph(loaded, prompts, backend=backend or default_backend_name(), notes=approvals.notes, draft=draft)
    cache = Cache(Path(cache_dir) if cache_dir else default_cache_dir(loaded.path))
    return Prepared(loaded=loaded, prompts=prompts, graph=graph, cache=cache, approvals=approvals, warnings=warnings)
