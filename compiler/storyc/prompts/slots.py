"""The 3-image budget of a keyframe edit (design section 6): which character sheets and
which chain frame are sent as its reference images, and which characters a check judges."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from storyc.model.story import MAX_REFERENCE_IMAGES, Story


@dataclass(frozen=True)
class Slot:
    """One reference image of a keyframe edit, in the order sent as image_urls."""

    kind: Literal["character", "chain"]
    name: str | None = None  # character name (kind=character)
    scene_id: int | None = None  # chain source scene (kind=chain)
    source: Literal["last_frame", "keyframe"] | None = None  # kind=chain

    def to_json(self, image: int) -> dict[str, Any]:
        data: dict[str, Any] = {"image": image, "kind": self.kind}
        if self.kind == "character":
            data["name"] = self.name
        else:
            data["scene_id"] = self.scene_id
            data["source"] = self.source
        return data


@dataclass(frozen=True)
class SlotPlan:
    slots: tuple[Slot, ...]  # at most 3, in the order sent as image_urls
    text_only: tuple[str, ...]  # characters present but without a slot (will drift)

    @property
    def chain(self) -> Slot | None:
        return next((s for s in self.slots if s.kind == "chain"), None)


def present_characters(story: Story, scene_index: int) -> tuple[str, ...]:
    """The known characters of a scene in characters_present order, each once."""
    known = {c.name for c in story.characters}
    seen: dict[str, None] = {}
    for name in story.scenes[scene_index].characters_present:
        if name in known:
            seen.setdefault(name, None)
    return tuple(seen)


def allocate_slots(story: Story, scene_index: int, *, ignore_pin: bool = False) -> SlotPlan:
    """The design's 3-image budget table as one pure function.

    Characters take slots first, in the order `characters_present` lists them (unknown
    names are lint errors and are skipped here); the chain frame takes the last slot.
    With a chain source at most 2 characters get a sheet, without one up to 3; the rest
    are described in text only and will drift. A pinned keyframe_image needs no slots
    (`ignore_pin`: the slots a generation of it would send).

    | scene                 | slot 1 | slot 2 | slot 3     | text-only |
    | 1 character, chained  | char   | chain  | -          |           |
    | 2 characters, chained | char1  | char2  | chain      |           |
    | 2 characters, fresh   | char1  | char2  | -          |           |
    | 3+ chained            | char1  | char2  | chain      | char3+    |
    | 3+ fresh              | char1  | char2  | char3      | char4+    |
    """
    scene = story.scenes[scene_index]
    if scene.keyframe_image and not ignore_pin:
        return SlotPlan(slots=(), text_only=())
    names = present_characters(story, scene_index)
    parent = story.chain_parent(scene_index)
    budget = MAX_REFERENCE_IMAGES - (1 if parent is not None else 0)
    slots = [Slot(kind="character", name=name) for name in names[:budget]]
    if parent is not None:
        slots.append(Slot(kind="chain", scene_id=parent.scene_id, source=scene.chain_source))
    return SlotPlan(slots=tuple(slots), text_only=names[budget:])


def judge_characters(story: Story, scene_index: int) -> tuple[str, ...]:
    """Characters whose sheets a keyframe / last-frame check sends, in image order 2, 3, ...

    Vision calls have no 3-image limit, so the judge sees every present character's
    sheet, text-only ones included: that is how their drift is caught.
    """
    return present_characters(story, scene_index)
