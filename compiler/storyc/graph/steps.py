"""The step graph: one step per character sheet, keyframe and video, one speech step per scene
that says something, plus assemble and script.

A step carries everything that determines its output except its upstream outputs (`static`)
and the digest of that (`fingerprint`); its deps are the steps whose outputs it consumes.
The graph knows nothing of Prefect or of the cache.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc.graph.select import SelectionError, selectors
from storyc.model.story import Story


@dataclass
class Step:
    id: str
    kind: str  # character, keyframe, video, speech, assemble or script
    deps: tuple[str, ...]
    static: dict[str, Any]  # everything that determines the output, except upstream outputs
    fingerprint: str
    scene_index: int | None = None
    scene_id: int | None = None
    character: str | None = None
    # Planned paid calls (storyc.graph.estimate): min = every check passes first time,
    # max = every loop exhausted.
    calls_min: dict[str, int] = field(default_factory=dict)
    calls_max: dict[str, int] = field(default_factory=dict)
    cost_min: float = 0.0
    cost_max: float = 0.0
    # A pinned target (sheet_image, keyframe_image, clip_video): the story-relative file used
    # as is, and what generating the step instead would call and cost (the estimate fields
    # above), which the pin saves.
    pinned: str | None = None
    saves: dict[str, Any] = field(default_factory=dict)
    note: str | None = None  # a redo note appended to the step's prompt (storyc build --redo)


# `storyc build --until STAGE`: the step kinds each stop point builds.
STAGES: dict[str, tuple[str, ...]] = {
    "sheets": ("character", "location"),  # a location's plate is made and checked like a sheet
    "keyframes": ("character", "location", "keyframe"),
    # with the clips, each scene's speech: heard beside its clip (the animatic's captions need it)
    "videos": ("character", "location", "keyframe", "video", "speech"),
}


@dataclass
class StepGraph:
    story: Story
    story_path: Path
    steps: dict[str, Step]  # in topological order
    backend: str
    draft: bool = False  # storyc build --draft (graph.builder.build_graph says what it changes)

    @property
    def order(self) -> list[str]:
        return list(self.steps)

    def dependents(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {sid: [] for sid in self.steps}
        for step in self.steps.values():
            for dep in step.deps:
                out[dep].append(step.id)
        return out

    def descendants(self, roots: Iterable[str]) -> set[str]:
        children = self.dependents()
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            sid = todo.pop()
            for child in children[sid]:
                if child not in seen:
                    seen.add(child)
                    todo.append(child)
        return seen

    def ancestors(self, roots: Iterable[str]) -> set[str]:
        seen: set[str] = set()
        todo = list(roots)
        while todo:
            for dep in self.steps[todo.pop()].deps:
                if dep not in seen:
                    seen.add(dep)
                    todo.append(dep)
        return seen

    def up_to(self, stage: str) -> set[str]:
        """The steps `--until STAGE` builds: those of the stage's kinds whose dependencies all
        are too. A keyframe chained from a clip's last frame waits for that clip, so
        `--until keyframes` leaves it out (no clip is paid for before the review)."""
        kinds = STAGES[stage]
        chosen: set[str] = set()
        for sid, step in self.steps.items():  # topological order: deps come first
            if step.kind in kinds and all(d in chosen for d in step.deps):
                chosen.add(sid)
        return chosen

    def select(self, spec: str | None) -> set[str]:
        """The step ids a `--select` spec names (syntax: storyc.graph.select), with their
        descendants (`x+`) or ancestors (`+x`); None/empty selects every step."""
        if not spec or not spec.strip():
            return set(self.steps)
        chosen: set[str] = set()
        for selector in selectors(spec):
            missing = selector.steps - set(self.steps)
            if missing:
                raise SelectionError(
                    f"selector {selector.token!r} matches no step ({', '.join(sorted(missing))} not in the story)"
                )
            named = selector.steps | (selector.optional & set(self.steps))
            chosen |= named
            if selector.downstream:
                chosen |= self.descendants(named)
            if selector.upstream:
                chosen |= self.ancestors(named)
        return chosen
