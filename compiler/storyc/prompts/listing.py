"""What `storyc prompts` prints: every deterministic prompt a build sends, in build order,
with the images sent alongside it."""

from __future__ import annotations

from typing import Any

from storyc.model.story import Character
from storyc.prompts.promptset import PromptSet
from storyc.prompts.slots import allocate_slots, judge_characters


def _images(*items: dict[str, Any]) -> list[dict[str, Any]]:
    return [{"image": n, **item} for n, item in enumerate(items, start=1)]


def prompt_listing(prompts: PromptSet, scene_id: int | None = None) -> list[dict[str, Any]]:
    """Every deterministic prompt a build sends, in build order, as
    {step, kind, prompt, slots[, text_only, image]} records. `slots` lists the images
    sent with the prompt, 1-based, in order. With scene_id, only that scene's steps."""
    story = prompts.story
    entries: list[dict[str, Any]] = []
    if scene_id is None:
        for character in story.characters:
            entries.extend(_character_entries(prompts, character))
    for index, scene in enumerate(story.scenes):
        if scene_id is None or scene.scene_id == scene_id:
            entries.extend(_scene_entries(prompts, index))
    return entries


def _character_entries(prompts: PromptSet, character: Character) -> list[dict[str, Any]]:
    """The sheet prompt (from text, or restyling the user's reference image) and its check."""
    step = f"character:{character.name}"
    if character.reference_image:
        sheet = {
            "step": step,
            "kind": "character_from_reference",
            "prompt": prompts.character_from_reference(character),
            "slots": _images({"kind": "reference_image", "path": character.reference_image}),
        }
    else:
        sheet = {"step": step, "kind": "character_sheet", "prompt": prompts.character_sheet(character), "slots": []}
    check = {
        "step": step,
        "kind": "check_sheet",
        "prompt": prompts.check_sheet(character),
        "slots": _images({"kind": "sheet", "name": character.name}),
    }
    return [sheet, check]


def _scene_entries(prompts: PromptSet, index: int) -> list[dict[str, Any]]:
    """The keyframe's prompt and check (or its pinned image), then the video's prompt and check."""
    story = prompts.story
    scene = story.scenes[index]
    sheets = [{"kind": "sheet", "name": n} for n in judge_characters(story, index)]
    keyframe_step = f"keyframe:{scene.scene_id}"
    entries: list[dict[str, Any]] = []
    if scene.keyframe_image:
        entries.append(
            {
                "step": keyframe_step,
                "kind": "keyframe_pinned",
                "prompt": None,
                "slots": [],
                "image": scene.keyframe_image,
            }
        )
    else:
        slot_plan = allocate_slots(story, index)
        entries.append(
            {
                "step": keyframe_step,
                "kind": "keyframe",
                "prompt": prompts.keyframe(index),
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
    entries.append(
        {
            "step": video_step,
            "kind": "video",
            "prompt": prompts.video(index),
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


def format_listing(entries: list[dict[str, Any]]) -> str:
    """The text form of `storyc prompts`: a header per prompt, its images, the prompt."""
    blocks = []
    for entry in entries:
        lines = [f"== {entry['step']} {entry['kind']}"]
        if entry["slots"]:
            lines.append("images: " + ", ".join(f"{s['image']} = {_describe_image(s)}" for s in entry["slots"]))
        if entry.get("text_only"):
            lines.append("text-only (no reference image, will drift): " + ", ".join(entry["text_only"]))
        if entry["kind"] == "keyframe_pinned":
            lines.append(f"pinned keyframe {entry['image']}: used as is, no prompt sent")
        else:
            lines.append(entry["prompt"])
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + ("\n" if blocks else "")
