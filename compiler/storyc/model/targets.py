"""Review targets: the things a creator approves (`storyc approve STORY TARGET`) and pins.

A target is written `KIND:ID`: `character:Ember` (its sheet), `location:Harbour` (its
background plate), `scene:2` (its keyframe) or `clip:2` (its video). Each kind is ONE entry
of TARGET_KINDS: where its items live in the story, the field that pins it, the build step
it replaces, and what it is made from (for staleness). Pure: no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from storyc.model.clips import clip_plan
from storyc.model.state import StepRecord
from storyc.model.story import Character, Location, Story

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
VIDEO_SUFFIXES = (".mp4",)


class Prompts(Protocol):
    """The prompts a take is made from (storyc.prompts.promptset.PromptSet, a later stage)."""

    def sheet(self, character: Character) -> tuple[str, str]: ...
    def plate(self, location: Location) -> tuple[str, str]: ...
    def keyframe(self, scene_index: int) -> str: ...
    def video(self, scene_index: int) -> str: ...


@dataclass(frozen=True)
class TargetKind:
    name: str  # "character", "location", "scene", "clip": the KIND of KIND:ID
    section: str  # the story list its items live in
    id_field: str  # the field naming an item in that list
    pin_field: str  # the optional field that pins the item's take
    step_kind: str  # the build step a pin replaces (its id: f"{step_kind}:{id}")
    role: str  # that step's output role the pin stands for
    noun: str  # "sheet", "plate", "keyframe", "clip": for messages
    suffixes: tuple[str, ...]  # the file types a pin may be
    # The targets whose outputs this one is made from (their hashes are recorded with an
    # approval, so re-approving one of them makes this pin stale).
    upstream: Callable[[Story, int], list[str]]
    # The characters whose visual_description feeds its prompt (named in staleness messages).
    described: Callable[[Story, int], list[str]]
    # Its main prompt as the build renders it (before a redo note): prompt_of(prompts, story, index),
    # recorded by the step under prompt_role.
    prompt_of: Callable[[Prompts, Story, int], str]
    prompt_role: str
    # Other story values that determine it: name → value.
    values: Callable[[Story, int], dict[str, Any]]


def _chain_upstream(story: Story, index: int) -> list[str]:
    scene = story.scenes[index]
    parent = story.chain_parent(index)
    if parent is None:
        return []
    # a seamless cut's keyframe chains from its parent's keyframe (the parent's clip ends on it)
    frame = "scene" if scene.chain_source in ("keyframe", "seamless") else "clip"
    return [f"{frame}:{parent.scene_id}"]


def _location_upstream(story: Story, index: int) -> list[str]:
    """The scene's location plate (a reference image where the budget allows)."""
    location = story.location(story.scenes[index].location)
    return [f"location:{location.name}"] if location is not None else []


def _clip_upstream(story: Story, index: int) -> list[str]:
    """The clip's keyframe, the keyframe a seamless cut makes it end on, and the plate a
    reference clip is made from."""
    scene = story.scenes[index]
    plan = clip_plan(story, index)
    out = [f"scene:{scene.scene_id}"]
    if plan.end_on is not None:
        out.append(f"scene:{plan.end_on}")
    if plan.mode == "reference":
        out += _location_upstream(story, index)
    return out


def _present(story: Story, index: int) -> list[str]:
    return [n for n in dict.fromkeys(story.scenes[index].characters_present) if story.character(n)]


def _location_prompt(prompts: Prompts, story: Story, index: int) -> str:
    return prompts.plate(story.locations[index])[1]


def _character_prompt(prompts: Prompts, story: Story, index: int) -> str:
    return prompts.sheet(story.characters[index])[1]


TARGET_KINDS: dict[str, TargetKind] = {
    kind.name: kind
    for kind in (
        TargetKind(
            name="character",
            section="characters",
            id_field="name",
            pin_field="sheet_image",
            step_kind="character",
            role="sheet",
            noun="sheet",
            suffixes=IMAGE_SUFFIXES,
            upstream=lambda story, i: [],
            described=lambda story, i: [story.characters[i].name],
            prompt_of=_character_prompt,
            prompt_role="sheet",
            values=lambda story, i: {"reference_image": story.characters[i].reference_image},
        ),
        TargetKind(
            name="location",
            section="locations",
            id_field="name",
            pin_field="plate_image",
            step_kind="location",
            role="plate",
            noun="plate",
            suffixes=IMAGE_SUFFIXES,
            upstream=lambda story, i: [],
            described=lambda story, i: [],
            prompt_of=_location_prompt,
            prompt_role="plate",
            values=lambda story, i: {
                "reference_image": story.locations[i].reference_image,
                "visual_description": story.locations[i].visual_description,
            },
        ),
        TargetKind(
            name="scene",
            section="scenes",
            id_field="scene_id",
            pin_field="keyframe_image",
            step_kind="keyframe",
            role="keyframe",
            noun="keyframe",
            suffixes=IMAGE_SUFFIXES,
            upstream=lambda story, i: (
                [f"character:{n}" for n in _present(story, i)]
                + _location_upstream(story, i)
                + _chain_upstream(story, i)
            ),
            described=_present,
            prompt_of=lambda prompts, story, i: prompts.keyframe(i),
            prompt_role="compose",
            values=lambda story, i: {},
        ),
        TargetKind(
            name="clip",
            section="scenes",
            id_field="scene_id",
            pin_field="clip_video",
            step_kind="video",
            role="video",
            noun="clip",
            suffixes=VIDEO_SUFFIXES,
            upstream=_clip_upstream,
            described=lambda story, i: [],
            prompt_of=lambda prompts, story, i: prompts.video(i),
            prompt_role="video",
            values=lambda story, i: {"duration_seconds": story.scenes[i].duration_seconds},
        ),
    )
}
STEP_KIND_TARGETS: dict[str, TargetKind] = {kind.step_kind: kind for kind in TARGET_KINDS.values()}

_TARGET = re.compile(r"^([a-z]+):(.+)$")


class TargetError(ValueError):
    """A TARGET that is malformed or names nothing in the story."""


@dataclass(frozen=True)
class Target:
    kind: TargetKind
    index: int  # position of its item in the story list
    ident: str  # the ID of KIND:ID as written in files and messages ("Ember", "2")

    @property
    def id(self) -> str:
        return f"{self.kind.name}:{self.ident}"

    @property
    def step_id(self) -> str:
        return f"{self.kind.step_kind}:{self.ident}"

    @property
    def loc(self) -> tuple[str, int, str]:
        """The pin field's loc path in the story file."""
        return (self.kind.section, self.index, self.kind.pin_field)

    def item(self, story: Story) -> Any:
        return getattr(story, self.kind.section)[self.index]

    def pin(self, story: Story) -> str | None:
        value: str | None = getattr(self.item(story), self.kind.pin_field)
        return value

    def what(self) -> str:
        """`Ember's sheet`, `scene 2's keyframe`, `scene 2's clip`."""
        return describe(self.id)


def describe(target_id: str) -> str:
    """`character:Ember` → `Ember's sheet`, `scene:2` → `scene 2's keyframe`, `clip:2` → `scene 2's clip`."""
    name, _, ident = target_id.partition(":")
    kind = TARGET_KINDS.get(name)
    if kind is None:
        return target_id
    owner = ident if kind.id_field == "name" else f"{kind.section.rstrip('s')} {ident}"
    return f"{owner}'s {kind.noun}"


def kinds_text() -> str:
    return ", ".join(f"{k.name}:{'NAME' if k.id_field == 'name' else 'ID'}" for k in TARGET_KINDS.values())


def parse_target(story: Story, text: str) -> Target:
    """The target `text` names in `story`; TargetError says why not."""
    m = _TARGET.match(text.strip())
    if not m or m.group(1) not in TARGET_KINDS:
        raise TargetError(f"bad target {text!r}: expected {kinds_text()}")
    kind, ident = TARGET_KINDS[m.group(1)], m.group(2)
    items = getattr(story, kind.section)
    for index, item in enumerate(items):
        if str(getattr(item, kind.id_field)) == ident:
            return Target(kind, index, ident)
    known = ", ".join(f"{kind.name}:{getattr(item, kind.id_field)}" for item in items[:12])
    raise TargetError(
        f"{text}: the story has no {kind.section.rstrip('s')} {ident!r}" + (f" ({known})" if known else "")
    )


def target_of_step(story: Story, step_id: str) -> Target | None:
    """The target whose pin replaces build step `step_id` (None for assemble, script...)."""
    step_kind, _, ident = step_id.partition(":")
    kind = STEP_KIND_TARGETS.get(step_kind)
    if kind is None:
        return None
    try:
        return parse_target(story, f"{kind.name}:{ident}")
    except TargetError:
        return None


def all_targets(story: Story) -> Iterator[Target]:
    """Every target of the story, in file order per kind (first occurrence of an id only)."""
    for kind in TARGET_KINDS.values():
        seen: set[str] = set()
        for index, item in enumerate(getattr(story, kind.section)):
            ident = str(getattr(item, kind.id_field))
            if ident not in seen:
                seen.add(ident)
                yield Target(kind, index, ident)


def pinned_targets(story: Story) -> Iterator[Target]:
    return (t for t in all_targets(story) if t.pin(story))


# ─── takes: the numbered attempts `--take N` and the storyboard refer to ─────


@dataclass(frozen=True)
class Take:
    number: int  # 1-based, in the order the build made them
    path: str  # relative to the build's output folder
    score: float | None
    kept: bool  # the one the build chose


def takes(record: StepRecord, role: str) -> list[Take]:
    """A step's takes in the order it made them (every judged attempt: sheets and keyframes
    v1, v2...; a clip, then its corrections), numbered from 1; a step that judged nothing
    (a pinned one) has its one output as take 1."""
    kept = record.outputs.get(role)
    files = list(record.attempt_scores) or ([kept] if kept else [])
    return [Take(n, path, record.attempt_scores.get(path), path == kept) for n, path in enumerate(files, start=1)]
