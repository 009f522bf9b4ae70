"""What `storyc prompts` prints: every deterministic prompt a build sends, in build order,
with the images sent alongside it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storyc.model.story import Character
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
    for index, scene in enumerate(story.scenes):
        if scene_id is None or scene.scene_id == scene_id:
            entries.extend(_scene_entries(prompts, index, notes))
    fed: dict[str, dict[str, list[str]]] = {}
    for entry in entries:
        if entry["prompt"] is not None:
            kind = entry["kind"]
            entry["fields"] = fed[kind] if kind in fed else fed.setdefault(kind, prompts.fields_fed(kind))
    return entries


def _pinned(step: str, kind: str, image: str) -> dict[str, Any]:
    return {"step": step, "kind": f"{kind}_pinned", "prompt": None, "slots": [], "image": image}


def _character_entries(prompts: PromptSet, character: Character, notes: Mapping[str, str]) -> list[dict[str, Any]]:
    """The sheet prompt (from text, or restyling the user's reference image) and its check."""
    step = f"character:{character.name}"
    if character.sheet_image:
        return [_pinned(step, "sheet", character.sheet_image)]
    note = notes.get(step)
    if character.reference_image:
        sheet = {
            "step": step,
            "kind": "character_from_reference",
            "prompt": with_note(prompts.character_from_reference(character), note),
            "slots": _images({"kind": "reference_image", "path": character.reference_image}),
        }
    else:
        sheet = {
            "step": step,
            "kind": "character_sheet",
            "prompt": with_note(prompts.character_sheet(character), note),
            "slots": [],
        }
    check = {
        "step": step,
        "kind": "check_sheet",
        "prompt": prompts.check_sheet(character),
        "slots": _images({"kind": "sheet", "name": character.name}),
    }
    return [sheet, check]


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
        entries.append(
            {
                "step": keyframe_step,
                "kind": "keyframe",
                "prompt": with_note(prompts.keyframe(index), notes.get(f"scene:{scene.scene_id}")),
                "slots": [slot.to_json(n) for n, slot in enumerate(slot_plan.slots, start=1)],
                "text_only": list(slot_plan.text_only),
            }
        )
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
    entries.append(
        {
            "step": video_step,
            "kind": "video",
            "prompt": with_note(prompts.video(index), notes.get(f"clip:{scene.scene_id}")),
            "slots": _images({"kind": "keyframe", "scene_id": scene.scene_id}),
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
    if kind == "chain":
        return f"chain scene {item['scene_id']} {item['source']}"
    if kind == "reference_image":
        return f"reference image {item['path']}"
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
        lines = [f"== {entry['step']} {entry['kind']}"]
        if entry["slots"]:
            lines.append("images: " + ", ".join(f"{s['image']} = {_describe_image(s)}" for s in entry["slots"]))
        if entry.get("text_only"):
            lines.append("text-only (no reference image, will drift): " + ", ".join(entry["text_only"]))
        if entry["kind"].endswith("_pinned"):
            lines.append(f"pinned {entry['kind'][: -len('_pinned')]} {entry['image']}: used as is, no prompt sent")
        else:
            if entry.get("fields"):
                lines.append("from: " + describe_fields(entry["fields"]))
            lines.append(entry["prompt"])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")
