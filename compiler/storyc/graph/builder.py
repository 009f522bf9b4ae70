"""Compile a loaded story into its step graph.

A pinned target (a character's sheet_image, a scene's keyframe_image or clip_video, see
storyc.model.targets) is a step with no deps and no paid call whose key is its file's
content hash: the file is used as is, and downstream keys follow the pin (an approved take
copied byte for byte keeps every downstream cache entry valid). Redo notes (`storyc build
--redo TARGET --note TEXT`, kept in approved/approvals.json) are appended to their step's
main prompt, so they are part of its key.

Edges come from the story: a keyframe needs the sheets of the characters in its reference
slots (storyc.prompts.slots.allocate_slots) and its chain source (`video:<src>` for
`chain_source: last_frame`, `keyframe:<src>` for `keyframe`); a video needs its keyframe
and the sheets its drift check compares against; assemble needs every video; script
needs everything. Each step's static inputs are hashed into its fingerprint
(storyc.graph.keys); its planned calls come from storyc.graph.estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from storyc import __version__
from storyc.graph.estimate import StepEstimate, character_estimate, keyframe_estimate, video_estimate
from storyc.graph.keys import STEP_TEMPLATES, input_hash, render_scale, template_digests
from storyc.graph.steps import Step, StepGraph
from storyc.load.loader import LoadedStory
from storyc.model.story import DRAFT_RESOLUTION, DRAFT_VIDEO_CORRECTIONS, Character, Story
from storyc.prompts.promptset import PromptSet
from storyc.prompts.slots import SlotPlan, allocate_slots, judge_characters
from storyc.prompts.text import with_note
from storyc.store.hashing import KEY_VERSION, digest


@dataclass(frozen=True)
class _GraphInputs:
    """What every step of one graph is built from."""

    story: Story
    prompts: PromptSet
    base_dir: Path  # user input files (reference images, pinned keyframes) are relative to it
    common: dict[str, Any]  # static inputs of every step: key version, backend, frame format
    notes: Mapping[str, str]  # target id ("scene:2") → redo note
    draft_clips: bool = False  # storyc build --draft on a paid backend: 480p clips, no video corrections

    def note(self, target_id: str) -> str | None:
        return (self.notes.get(target_id) or "").strip() or None


def build_graph(
    loaded: LoadedStory,
    prompts: PromptSet,
    *,
    backend: str = "offline",
    notes: Mapping[str, str] | None = None,
    draft: bool = False,
) -> StepGraph:
    """Compile a loaded story into its step graph (no I/O but hashing user input files).
    `notes` maps target ids (`scene:2`, `character:Ember`, `clip:2`) to redo notes.

    `draft` (`storyc build --draft`): the final video is 480p and fast-encoded, and on a paid
    backend every clip is 480p with no video corrections (model.story.DRAFT_*). Sheets and
    keyframes are the full build's (xAI images have one size), and so are the offline
    backend's clips (free, and a judged picture of another size would score differently): a
    draft and a full build share those steps in the cache; the others have keys of their own."""
    story = loaded.story
    common = {
        "storyc_key": KEY_VERSION,
        "backend": backend,
        "aspect_ratio": story.aspect_ratio,
        "resolution": story.resolution,
        "render_scale": render_scale(),
    }
    inputs = _GraphInputs(
        story, prompts, Path(loaded.base_dir), common, dict(notes or {}), draft and backend != "offline"
    )
    final = {"draft": True} if draft else {}  # the final video's size and encoding (run.assemble)
    steps: dict[str, Step] = {}
    quality = story.quality
    for character in story.characters:
        if character.sheet_image:
            estimate = character_estimate(quality, story.models, input_images=1 if character.reference_image else 0)
            step = _pinned_step(
                inputs,
                f"character:{character.name}",
                "character",
                character.sheet_image,
                estimate,
                character=character.name,
            )
        else:
            step = _character_step(inputs, character)
        steps[step.id] = step
    # keyframes and videos, in story order (chain sources always come earlier)
    for index, scene in enumerate(story.scenes):
        slot_plan = allocate_slots(story, index)
        sheets = _sheet_deps(story, index, slot_plan)
        ids = {"scene_index": index, "scene_id": scene.scene_id}
        if scene.keyframe_image:
            generated = allocate_slots(story, index, ignore_pin=True)  # what a generation would send
            estimate = keyframe_estimate(
                quality, story.models, reference_images=len(generated.slots), judged_sheets=len(sheets)
            )
            keyframe = _pinned_step(
                inputs, f"keyframe:{scene.scene_id}", "keyframe", scene.keyframe_image, estimate, **ids
            )
        else:
            keyframe = _keyframe_step(inputs, index, slot_plan, sheets)
        if scene.clip_video:
            estimate = video_estimate(
                quality, story.models, scene.duration_seconds, story.resolution, judged_sheets=len(sheets)
            )
            video = _pinned_step(inputs, f"video:{scene.scene_id}", "video", scene.clip_video, estimate, **ids)
        else:
            video = _video_step(inputs, index, keyframe.id, sheets)
        steps[keyframe.id], steps[video.id] = keyframe, video
    static = {
        **common,
        "kind": "assemble",
        "clips": [
            {"scene_id": s.scene_id, "duration_s": s.duration_seconds, "transition": s.transition} for s in story.scenes
        ],
        "fps": 24,
        **final,
    }
    videos = tuple(f"video:{s.scene_id}" for s in story.scenes)
    steps["assemble"] = Step("assemble", "assemble", videos, static, digest(static))
    static = {**common, "kind": "script", "story": story.model_dump(mode="json"), "storyc": __version__, **final}
    steps["script"] = Step("script", "script", tuple(steps), static, digest(static))
    return StepGraph(story=story, story_path=Path(loaded.path), steps=steps, backend=backend, draft=draft)


def _character_step(inputs: _GraphInputs, character: Character) -> Step:
    story, prompts, quality = inputs.story, inputs.prompts, inputs.story.quality
    note = inputs.note(f"character:{character.name}")
    if character.reference_image:
        sheet = prompts.character_from_reference(character)
        reference = input_hash(inputs.base_dir, character.reference_image)
    else:
        sheet, reference = prompts.character_sheet(character), None
    sheet = with_note(sheet, note)
    static = {
        **inputs.common,
        "kind": "character",
        "name": character.name,
        "prompts": {"sheet": sheet, "check": prompts.check_sheet(character)},
        "models": {"image": story.models.image, "vision": story.models.vision},
        "quality": {"threshold": quality.consistency_threshold, "attempts": quality.max_character_attempts},
        "reference_image": reference,
        "templates": template_digests(prompts, STEP_TEMPLATES["character"]),
        "visual_description": character.visual_description,
    }
    estimate = character_estimate(quality, story.models, input_images=1 if reference else 0)
    return Step(
        f"character:{character.name}",
        "character",
        (),
        static,
        digest(static),
        character=character.name,
        note=note,
        **asdict(estimate),
    )


def _sheet_deps(story: Story, index: int, slot_plan: SlotPlan) -> tuple[str, ...]:
    """The character steps a scene's keyframe and video depend on. The keyframe edit sends the
    slot characters' sheets; its check (and the video's drift check) sends every present
    character's sheet, text-only ones included."""
    judged = dict.fromkeys(
        [s.name for s in slot_plan.slots if s.kind == "character"] + list(judge_characters(story, index))
    )
    return tuple(f"character:{n}" for n in judged)


def _keyframe_step(inputs: _GraphInputs, index: int, slot_plan: SlotPlan, sheets: tuple[str, ...]) -> Step:
    """A keyframe composed from its reference slots, or the user's pinned image."""
    story, prompts, quality = inputs.story, inputs.prompts, inputs.story.quality
    scene = story.scenes[index]
    kid = f"keyframe:{scene.scene_id}"
    note = inputs.note(f"scene:{scene.scene_id}")
    slots = [{"kind": s.kind, "name": s.name, "scene_id": s.scene_id, "source": s.source} for s in slot_plan.slots]
    chain_deps = tuple(
        (f"video:{s.scene_id}" if s.source == "last_frame" else f"keyframe:{s.scene_id}")
        for s in slot_plan.slots
        if s.kind == "chain"
    )
    static = {
        **inputs.common,
        "kind": "keyframe",
        "scene_id": scene.scene_id,
        "prompts": {"compose": with_note(prompts.keyframe(index), note), "check": prompts.check_keyframe(index)},
        "slots": slots,
        "text_only": list(slot_plan.text_only),
        "models": {"image": story.models.image, "vision": story.models.vision},
        "quality": {"threshold": quality.consistency_threshold, "iterations": quality.max_keyframe_iterations},
        "templates": template_digests(prompts, STEP_TEMPLATES["keyframe"]),
        # the offline renderer draws from these, so they are inputs too
        "hints": {
            "setting": scene.setting,
            "mood": scene.mood,
            "camera": scene.camera,
            "palette": story.color_palette,
            "characters": {
                n: story.character(n).visual_description for n in scene.characters_present if story.character(n)
            },
        },
    }
    return Step(
        kid,
        "keyframe",
        sheets + chain_deps,
        static,
        digest(static),
        scene_index=index,
        scene_id=scene.scene_id,
        note=note,
        **asdict(keyframe_estimate(quality, story.models, reference_images=len(slots), judged_sheets=len(sheets))),
    )


def _video_step(inputs: _GraphInputs, index: int, keyframe_id: str, sheets: tuple[str, ...]) -> Step:
    """A clip from the scene's keyframe, checked against the sheets of every present character."""
    story, prompts, quality = inputs.story, inputs.prompts, inputs.story.quality
    scene = story.scenes[index]
    note = inputs.note(f"clip:{scene.scene_id}")
    # the video runner renders at static["resolution"] with static["quality"]["corrections"]
    resolution, corrections = story.resolution, quality.max_video_corrections
    draft = {}
    if inputs.draft_clips:
        resolution, corrections, draft = DRAFT_RESOLUTION, DRAFT_VIDEO_CORRECTIONS, {"draft": True}
    static = {
        **inputs.common,
        **draft,
        "resolution": resolution,
        "kind": "video",
        "scene_id": scene.scene_id,
        "prompts": {"video": with_note(prompts.video(index), note), "check": prompts.check_last_frame(index)},
        "duration_s": scene.duration_seconds,
        "models": {"video": story.models.video, "vision": story.models.vision},
        "quality": {"threshold": quality.consistency_threshold, "corrections": corrections},
        "templates": template_digests(prompts, STEP_TEMPLATES["video"]),
        "hints": {"camera": scene.camera, "action": scene.action, "mood": scene.mood},
    }
    if inputs.common["backend"] == "offline":
        # the offline animatic's caption band shows the title and the spoken lines; a real
        # model's clip does not depend on them, so only offline keys carry them
        static["hints"] |= {
            "title": scene.title,
            "dialogue": [line.model_dump(mode="json") for line in scene.dialogue],
            "narration": scene.narration,
        }
    return Step(
        f"video:{scene.scene_id}",
        "video",
        (keyframe_id, *sheets),
        static,
        digest(static),
        scene_index=index,
        scene_id=scene.scene_id,
        note=note,
        **asdict(
            video_estimate(
                quality.model_copy(update={"max_video_corrections": corrections}),
                story.models,
                scene.duration_seconds,
                resolution,
                judged_sheets=len(sheets),
            )
        ),
    )


def _pinned_step(inputs: _GraphInputs, step_id: str, kind: str, pin: str, generation: StepEstimate, **ids: Any) -> Step:
    """A pinned target's step: the file used as is, no deps, no paid call, its key a
    function of the file's content alone (not of the backend, frame format or render
    scale: an approval made on a draft build carries over). `generation` is the estimate
    of the step it replaces: what the pin saves."""
    static = {"storyc_key": KEY_VERSION, "kind": kind, "id": step_id, "pinned": input_hash(inputs.base_dir, pin)}
    return Step(step_id, kind, (), static, digest(static), pinned=pin, saves=asdict(generation), **ids)
