"""The reference-image budgets of a scene as one pure function: which character sheets,
which location plate and which chain frame go with its keyframe edit (3 images), which
sheets and plate go with its clip (reference-to-video, or a first frame plus references:
7 images), and which characters each leaves to text alone. Lint, the prompts, the graph,
the run and `storyc prompts` all read `allocate_slots`, so they agree."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

from storyc.model.capabilities import info_of
from storyc.model.clips import sheet_references
from storyc.model.story import Story

SlotKind = Literal["character", "chain", "location"]
ChainFrame = Literal["last_frame", "keyframe", "seamless"]


@dataclass(frozen=True)
class Slot:
    """One reference image of a request, in the order sent."""

    kind: SlotKind
    name: str | None = None  # character or location name (kind=character, location)
    scene_id: int | None = None  # chain source scene (kind=chain)
    source: ChainFrame | None = None  # kind=chain: seamless sends the source's keyframe too

    def to_json(self, image: int) -> dict[str, Any]:
        data: dict[str, Any] = {"image": image, "kind": self.kind}
        if self.kind == "chain":
            data["scene_id"] = self.scene_id
            data["source"] = self.source
        else:
            data["name"] = self.name
        return data


@dataclass(frozen=True)
class SlotPlan:
    slots: tuple[Slot, ...]  # the keyframe edit's images (at most 3), in the order sent as image_urls
    text_only: tuple[str, ...]  # characters present but without a keyframe slot (will drift)
    # the clip's reference images (reference_image_urls, at most 7), in the order sent: the sheets,
    # then the location plate in video_mode reference; the sheets alone beside a first frame
    video_references: tuple[Slot, ...] = ()
    video_text_only: tuple[str, ...] = ()  # characters of a reference clip left without a sheet
    video_mode: Literal["image", "reference"] = "image"

    @property
    def chain(self) -> Slot | None:
        return next((s for s in self.slots if s.kind == "chain"), None)

    @property
    def location(self) -> Slot | None:
        return next((s for s in self.slots if s.kind == "location"), None)


def present_characters(story: Story, scene_index: int) -> tuple[str, ...]:
    """The known characters of a scene in characters_present order, each once."""
    known = {c.name for c in story.characters}
    seen: dict[str, None] = {}
    for name in story.scenes[scene_index].characters_present:
        if name in known:
            seen.setdefault(name, None)
    return tuple(seen)


def scene_location(story: Story, scene_index: int) -> str | None:
    """The scene's location when the story defines it (an unknown name is lint's E313)."""
    location = story.location(story.scenes[scene_index].location)
    return location.name if location is not None else None


def allocate_slots(story: Story, scene_index: int, *, ignore_pin: bool = False) -> SlotPlan:
    """The budget tables as one pure function.

    Keyframe edit (the image model's edit inputs, 3): characters take slots first, in the
    order `characters_present` lists them (unknown names are lint errors and are skipped);
    the location plate takes a slot left over; the chain frame takes the last slot. With
    a chain source at most 2 characters get a sheet, without one up to 3; the rest are
    described in text only and will drift. A pinned keyframe_image needs no slots
    (`ignore_pin`: the slots a generation of it would send).

    | scene                     | slot 1 | slot 2 | slot 3     | text-only |
    | 1 character, chained      | char   | chain  | -          |           |
    | 1 character + location    | char   | plate  | chain      |           |
    | 2 characters, chained     | char1  | char2  | chain      |           |
    | 2 characters, fresh       | char1  | char2  | (plate)    |           |
    | 3+ chained                | char1  | char2  | chain      | char3+    |
    | 3+ fresh                  | char1  | char2  | char3      | char4+    |

    `chain_source: seamless` sends the source scene's keyframe (its clip, which ends on this
    keyframe, cannot come first).

    Clip (the video model's reference images, 7): in video_mode reference the sheets, then
    the plate (the sheets first: a scene of 7+ characters gives up the plate, then the
    characters past the budget); in video_mode image on a model that takes references with a
    first frame (quality.video_reference_images), the sheets alone, the keyframe showing the
    place already.
    """
    scene = story.scenes[scene_index]
    names = present_characters(story, scene_index)
    location = scene_location(story, scene_index)
    video_references, video_text_only = _video_references(story, scene_index, names, location)
    clip_only = SlotPlan(
        slots=(),
        text_only=(),
        video_references=video_references,
        video_text_only=video_text_only,
        video_mode=scene.video_mode,
    )
    if scene.keyframe_image and not ignore_pin:
        return clip_only
    parent = story.chain_parent(scene_index)
    budget = info_of(story.models.image, "image").max_edit_images - (1 if parent is not None else 0)
    slots = [Slot(kind="character", name=name) for name in names[:budget]]
    if location is not None and len(slots) < budget:
        slots.append(Slot(kind="location", name=location))
    if parent is not None:
        slots.append(Slot(kind="chain", scene_id=parent.scene_id, source=scene.chain_source))
    return replace(clip_only, slots=tuple(slots), text_only=names[budget:])


def _video_references(
    story: Story, scene_index: int, names: tuple[str, ...], location: str | None
) -> tuple[tuple[Slot, ...], tuple[str, ...]]:
    scene = story.scenes[scene_index]
    budget = info_of(story.models.video, "video").max_reference_images
    if scene.video_mode == "reference":
        sheets = names[:budget]
        refs = [Slot(kind="character", name=name) for name in sheets]
        if location is not None and len(refs) < budget:
            refs.append(Slot(kind="location", name=location))
        return tuple(refs), names[budget:]
    if sheet_references(story):
        return tuple(Slot(kind="character", name=name) for name in names[:budget]), ()
    return (), ()


def judge_characters(story: Story, scene_index: int) -> tuple[str, ...]:
    """Characters whose sheets a keyframe / last-frame check sends, in image order 2, 3, ...

    Vision calls have no 3-image limit, so the judge sees every present character's
    sheet, text-only ones included: that is how their drift is caught.
    """
    return present_characters(story, scene_index)
