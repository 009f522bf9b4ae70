"""What `storyc prompts` prints: every deterministic prompt a build sends, in build order,
with the images sent alongside it."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from storyc.model.clips import clip_plan
from storyc.model.story import Character, Location
from storyc.prompts.promptset import PromptSet
from storyc.prompts.slots import allocate_slots, judge_characters
from storyc.prompts.text import with_note


def _images(*items: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"image": n, **item} for n, item in enumerate(items, start=1)]


def prompt_listing(
    prompts: PromptSet, scene_id: int | None = None, notes: Mapping[str, str] | None = None
) -> list[dict[str, Any]]:
    """Every deterministic prompt a build sends, in build order, as
    {step, kind, prompt, slots, fields[, text_only, image]} records. `slots` lists the images
    sent with the prompt, 1-based, in order; `fields`, the story fields its template reads
    (PromptSet.fields_fed). With scene_id, only that scene's steps.
    `notes` (target id → redo note) are appended to their prompts, as the build does; a
    pinned target is listed as `<kind>_pinned` with its image and no prompt."""
    story = prompts.story
    notes = notes or {}
    entries: list[dict[str, Any]] = []
    if scene_id is None:
        for character in story.characters:
            entries.extend(_character_entries(prompts, character, notes))
        used = {scene.location for scene in story.scenes}
        for location in story.locations:
            if location.name in used:
                entries.extend(_location_entries(prompts, location, notes))
    for index, scene in enumerate(story.scenes):
        if scene_id is None or scene.scene_id == scene_id:
            entries.extend(_scene_entries(prompts, index, notes))
    fed: dict[str, dict[str, list[str]]] = {}  # template name → the story fields it reads
    for entry in entries:
        if entry["prompt"] is not None:
            template = _TEMPLATE_OF_KIND.get(entry["kind"], entry["kind"])
            if template not in fed:
                fed[template] = prompts.fields_fed(template)
            entry["fields"] = fed[template]
    return entries


# The template an entry's prompt comes from, where it is not named like the entry's kind: a
# reference-to-video clip's prompt is video.j2's (its mode "reference").
_TEMPLATE_OF_KIND = {"video_reference": "video"}


def _pinned(step: str, kind: str, image: str) -> dict[str, Any]:
    return {"step": step, "kind": f"{kind}_pinned", "prompt": None, "slots": [], "image": image}


def _character_entries(prompts: PromptSet, character: Character, notes: Mapping[str, str]) -> list[dict[str, Any]]:
    return _picture_entries(
        "character",
        character.name,
        "sheet",
        character.sheet_image,
        character.reference_image,
        lambda: prompts.sheet(character),
        lambda: prompts.check_sheet(character),
        notes,
    )


def _location_entries(prompts: PromptSet, location: Location, notes: Mapping[str, str]) -> list[dict[str, Any]]:
    return _picture_entries(
        "location",
        location.name,
        "plate",
        location.plate_image,
        location.reference_image,
        lambda: prompts.plate(location),
        lambda: prompts.check_plate(location),
        notes,
    )


def _picture_entries(
    target: str,
    name: str,
    role: str,
    pinned: str | None,
    reference_image: str | None,
    prompt: Callable[[], tuple[str, str]],
    check: Callable[[], str],
    notes: Mapping[str, str],
) -> list[dict[str, Any]]:
    """A sheet's or a plate's prompt (from text, or restyling the user's reference image) and
    its check; or the pinned file alone."""
    step = f"{target}:{name}"
    if pinned:
        return [_pinned(step, role, pinned)]
    kind, text = prompt()
    slots = _images({"kind": "reference_image", "path": reference_image}) if reference_image else []
    made = {"step": step, "kind": kind, "prompt": with_note(text, notes.get(step)), "slots": slots}
    checked = {"step": step, "kind": f"check_{role}", "prompt": check(), "slots": _images({"kind": role, "name": name})}
    return [made, checked]


def _scene_entries(prompts: PromptSet, index: int, notes: Mapping[str, str]) -> list[dict[str, Any]]:
    """The keyframe's prompt and check (or its pinned image), then the video's prompt and check."""
    story = prompts.story
    scene = story.scenes[index]
    sheets = [{"kind": "sheet", "name": n} for n in judge_characters(story, index)]
    keyframe_step = f"keyframe:{scene.scene_id}"
    entries: list[dict[str, Any]] = []
    if scene.keyframe_image:
        entries.append(_pinned(keyframe_step, "keyframe", scene.keyframe_image))
    else:
        slot_plan = allocate_slots(story, index)
        keyframe: dict[str, Any] = {
            "step": keyframe_step,
            "kind": "keyframe",
            "prompt": with_note(prompts.keyframe(index), notes.get(f"scene:{scene.scene_id}")),
            "slots": [slot.to_json(n) for n, slot in enumerate(slot_plan.slots, start=1)],
            "text_only": list(slot_plan.text_only),
        }
        if scene.location and slot_plan.location is None and story.location(scene.location):
            keyframe["budget"] = f"location {scene.location}: no image slot left, described in text only"
        entries.append(keyframe)
        entries.append(
            {
                "step": keyframe_step,
                "kind": "check_keyframe",
                "prompt": prompts.check_keyframe(index),
                "slots": _images({"kind": "keyframe", "scene_id": scene.scene_id}, *sheets),
            }
        )
    video_step = f"video:{scene.scene_id}"
    if scene.clip_video:
        entries.append(_pinned(video_step, "clip", scene.clip_video))
        return entries
    note = notes.get(f"clip:{scene.scene_id}")
    plan = clip_plan(story, index)
    refs = allocate_slots(story, index)
    for segment in plan.segments:
        sheet_refs = [r for r in refs.video_references if segment.mode == "reference" or r.kind == "character"]
        references = [r.to_json(n) for n, r in enumerate(sheet_refs, start=1)]
        if segment.mode == "reference":
            images, kind = references, "video_reference"
        else:
            first = (
                {"kind": "keyframe", "scene_id": scene.scene_id}
                if segment.number == 1
                else {"kind": "segment_last_frame", "scene_id": scene.scene_id, "segment": segment.number - 1}
            )
            images, kind = [{"image": "first frame", **first}, *references], "video"
        last = segment.number == len(plan.segments)
        if last and plan.end_on is not None:
            images.append({"image": "last frame", "kind": "keyframe", "scene_id": plan.end_on})
        entry: dict[str, Any] = {
            "step": video_step,
            "kind": kind,
            "prompt": with_note(prompts.video(index, segment.number), note if segment.number == 1 else None),
            "slots": images,
        }
        if refs.video_text_only and segment.mode == "reference":
            entry["text_only"] = list(refs.video_text_only)
        if len(plan.segments) > 1 or segment.extensions:
            entry["segment"] = segment.number
            entry["seconds"] = segment.base_s
        entries.append(entry)
        for n, seconds in enumerate(segment.extensions, start=1):
            entries.append(
                {
                    "step": video_step,
                    "kind": "video_extend",
                    "prompt": prompts.video_extend(index),
                    "slots": [{"image": "input video", "kind": "clip", "scene_id": scene.scene_id}],
                    "segment": segment.number,
                    "extension": n,
                    "seconds": seconds,
                }
            )
    entries.append(
        {
            "step": video_step,
            "kind": "check_last_frame",
            "prompt": prompts.check_last_frame(index),
            "slots": _images({"kind": "last_frame", "scene_id": scene.scene_id}, *sheets),
        }
    )
    return entries


def _describe_image(item: dict[str, Any]) -> str:
    kind = item["kind"]
    if kind in ("character", "sheet"):
        return f"{'character' if kind == 'character' else 'sheet of'} {item['name']}"
    if kind in ("location", "plate"):
        return f"plate of {item['name']}"
    if kind == "chain":
        source = "keyframe (seamless)" if item["source"] == "seamless" else item["source"]
        return f"chain scene {item['scene_id']} {source}"
    if kind == "reference_image":
        return f"reference image {item['path']}"
    if kind == "segment_last_frame":
        return f"last frame of scene {item['scene_id']} segment {item['segment']}"
    if kind == "clip":
        return f"the clip of scene {item['scene_id']} so far"
    return f"{kind.replace('_', ' ')} of scene {item['scene_id']}"


def describe_fields(fields: Mapping[str, list[str]]) -> str:
    """ "style, color_palette; scene: action, camera; characters: visual_description"."""
    parts = []
    for where, names in fields.items():
        parts.append(", ".join(names) if where == "story" else f"{where}: {', '.join(names)}")
    return "; ".join(parts)


def format_listing(entries: list[dict[str, Any]]) -> str:
    """The text form of `storyc prompts`: a header per prompt, its images, the prompt."""
    blocks = []
    for entry in entries:
        header = f"== {entry['step']} {entry['kind']}"
        if "segment" in entry:
            header += f" (segment {entry['segment']}" + (
                f", extension {entry['extension']}" if "extension" in entry else ""
            )
            header += f", {entry['seconds']} s)"
        lines = [header]
        if entry["slots"]:
            lines.append("images: " + ", ".join(f"{s['image']} = {_describe_image(s)}" for s in entry["slots"]))
        if entry.get("text_only"):
            lines.append("text-only (no reference image, will drift): " + ", ".join(entry["text_only"]))
        if entry.get("budget"):
            lines.append(entry["budget"])
        if entry["kind"].endswith("_pinned"):
            lines.append(f"pinned {entry['kind'][: -len('_pinned')]} {entry['image']}: used as is, no prompt sent")
        else:
            if entry.get("fields"):
                lines.append("from: " + describe_fields(entry["fields"]))
            lines.append(entry["prompt"])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")
