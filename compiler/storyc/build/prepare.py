"""The front of a build (and of `storyc graph`, `storyc cache prune`): load the story,
lint it, render its prompts and compile its step graph. No I/O beyond reading inputs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from storyc.build.backend_choice import default_backend_name
from storyc.diagnostics import Diagnostic, StorycError
from storyc.graph.builder import build_graph
from storyc.graph.steps import StepGraph
from storyc.lint import lint_story
from storyc.load.loader import LoadedStory, load_story
from storyc.prompts.promptset import PromptSet
from storyc.store.approvals import Approvals, approvals_for_build
from storyc.store.cache import Cache, default_cache_dir


@dataclass
class Prepared:
    loaded: LoadedStory
    prompts: PromptSet
    graph: StepGraph
    cache: Cache
    approvals: Approvals = field(default_factory=Approvals)  # approved/approvals.json beside the story


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
    `storyc build --draft`). Raises StorycError."""
    loaded = load_story(story_path)
    if lint:
        errors = [d for d in lint_diagnostics(loaded, prompts_dir=prompts_dir) if d.is_error]
        if errors:
            raise StorycError(errors)
    prompts = PromptSet(loaded.story, story_path=loaded.path, override_dir=Path(prompts_dir) if prompts_dir else None)
    approvals = approvals_for_build(loaded.base_dir)  # its redo notes are part of the keys
    graph = build_graph(loaded, prompts, backend=backend or default_backend_name(), notes=approvals.notes, draft=draft)
    cache = Cache(Path(cache_dir) if cache_dir else default_cache_dir(loaded.path))
    return Prepared(loaded=loaded, prompts=prompts, graph=graph, cache=cache, approvals=approvals)


def lint_diagnostics(loaded: LoadedStory, *, prompts_dir: str | Path | None = None) -> list[Diagnostic]:
    diagnostics = list(lint_story(loaded))
    if prompts_dir is not None:
        # Lint's E501 renders the templates beside the story; with --prompts some of those
        # are replaced. The graph has already rendered the templates really in use (a
        # broken one raised E501 there), so lint's view of the story folder is moot.
        diagnostics = [d for d in diagnostics if d.code != "E501"]
    return diagnostics
