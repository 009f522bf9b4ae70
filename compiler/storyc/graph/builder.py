"""Compile a loaded story into its step graph.

A pinned target (a character's sheet_image, a location's plate_image, a scene's
keyframe_image or clip_video, see storyc.model.targets) is a step with no deps and no paid
call whose key is its file's content hash: the file is used as is, and downstream keys
follow the pin (an approved take copied byte for byte keeps every downstream cache entry
valid). Redo notes (`storyc build --redo TARGET --note TEXT`, kept in
approved/approvals.json) are appended to their step's main prompt, so they are part of its
key.

Edges come from the story: a keyframe needs the sheets and the location plate in its
reference slots (storyc.prompts.slots.allocate_slots) and its chain source (`video:<src>`
for `chain_source: last_frame`, `keyframe:<src>` for `keyframe` and `seamless`); a video
needs its keyframe, the sheets its drift check compares against, its reference images
(the plate of a reference clip) and, when the next scene cuts seamlessly from it, that
scene's keyframe (its clip ends on it); a scene with narration or dialogue has a speech
step (its lines rendered, timed and placed; it needs nothing); assemble needs every video
and every speech step; script needs everything. Each step's static inputs are hashed into
its fingerprint
(storyc.graph.keys); its planned calls come from storyc.graph.estimate.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from storyc import __version__
from storyc.graph.estimate import (
    StepEstimate,
    character_estimate,
    keyframe_estimate,
    speech_estimate,
    video_estimate,
)
from storyc.graph.keys import STEP_TEMPLATES, input_hash, render_scale, speech_engine, template_digests
from storyc.graph.steps import Step, StepGraph
from storyc.hashing import KEY_VERSION, digest
from storyc.load.loader import LoadedStory
from storyc.model import speech, voices
from storyc.model.clips import ClipPlan, clip_plan
from storyc.model.story import DRAFT_CANDIDATES, DRAFT_RESOLUTION, DRAFT_VIDEO_CORRECTIONS, Character, Location, Story
from storyc.prompts.promptset import PromptSet
from storyc.prompts.slots import Slot, SlotPlan, allocate_slots, judge_characters
from storyc.prompts.text import with_note


@dataclass(frozen=True)
class _GraphInputs:
    """What every step of one graph is built from."""

    story: Story
    prompts: PromptSet
    base_dir: Path  # user input files (reference images, pinned keyframes) are relative to it
    common: dict[str, Any]  # static inputs of every step: key version, backend, frame format
    notes: Mapping[str, str]  # target id ("scene:2") → redo note
    draft: bool = False  # storyc build --draft

    @property
    def paid_draft(self) -> bool:
        """A draft on a paid backend: 480p clips, no video corrections, one take per picture."""
        return self.draft and self.common["backend"] != "offline"

    def candidates(self, n: int) -> int:
        """A picture's best-of-N: 1 in a paid draft (model.story.DRAFT_CANDIDATES), else `n`."""
        return DRAFT_CANDIDATES if self.paid_draft else n

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
    `notes` maps target ids (`scene:2`, `character:Ember`, `clip:2`, `location:Harbour`) to
    redo notes.

    `draft` (`storyc build --draft`): the final video is 480p and fast-encoded, and on a paid
    backend every clip is 480p with no video corrections and every picture one take, not
    best-of-N (model.story.DRAFT_*). Sheets, plates and keyframes are otherwise the full
    build's (xAI images have one size), and so are the offline backend's clips (free, and a
    judged picture of another size would score differently): a draft and a full build share
    those steps in the cache (a story without best-of-N shares every picture); the others
    have keys of their own. Approved takes carry over either way."""
    story = loaded.story
    common = {
        "storyc_key": KEY_VERSION,
        "backend": backend,
        "aspect_ratio": story.aspect_ratio,
        "resolution": story.resolution,
        "render_scale": render_scale(),
    }
    inputs = _GraphInputs(story, prompts, Path(loaded.base_dir), common, dict(notes or {}), draft)
    final = {"draft": True} if draft else {}  # the final video's size and encoding (run.assemble)
    steps: dict[str, Step] = {}
    quality = story.quality
    for character in story.characters:
        if character.sheet_image:
            step = _pinned_step(
                inputs,
                f"character:{character.name}",
                "character",
                character.sheet_image,
                _picture_estimate(inputs, character.reference_image),
                character=character.name,
            )
        else:
            step = _character_step(inputs, character)
        steps[step.id] = step
    used = {scene.location for scene in story.scenes}
    for location in story.locations:
        sid = f"location:{location.name}"
        if location.name not in used or sid in steps:
            continue
        if location.plate_image:
            estimate = _picture_estimate(inputs, location.reference_image)
            steps[sid] = _pinned_step(inputs, sid, "location", location.plate_image, estimate)
        else:
            steps[sid] = _location_step(inputs, location)
    # keyframes, videos and speech, in story order; a seamless cut makes a video wait for a
    # later keyframe, so the steps are put in topological order at the end
    sounds: list[str] = []
    for index, scene in enumerate(story.scenes):
        slot_plan = allocate_slots(story, index)
        sheets = _sheet_deps(story, index, slot_plan)
        ids = {"scene_index": index, "scene_id": scene.scene_id}
        if scene.keyframe_image:
            generated = allocate_slots(story, index, ignore_pin=True)  # what a generation would send
            estimate = keyframe_estimate(
                quality,
                story.models,
                reference_images=len(generated.slots),
                judged_sheets=len(sheets),
                candidates=inputs.candidates(quality.keyframe_candidates),
            )
            keyframe = _pinned_step(
                inputs, f"keyframe:{scene.scene_id}", "keyframe", scene.keyframe_image, estimate, **ids
            )
        else:
            keyframe = _keyframe_step(inputs, index, slot_plan, sheets)
        spoken = _speech_step(inputs, index)
        if spoken is not None:
            steps[spoken.id] = spoken
            sounds.append(spoken.id)
        if scene.clip_video:
            estimate = video_estimate(quality, story.models, clip_plan(story, index), judged_sheets=len(sheets))
            video = _pinned_step(inputs, f"video:{scene.scene_id}", "video", scene.clip_video, estimate, **ids)
        else:
            video = _video_step(inputs, index, keyframe.id, sheets, slot_plan, spoken.id if spoken else None)
        steps[keyframe.id], steps[video.id] = keyframe, video
    steps["assemble"] = _assemble_step(inputs, tuple(sounds))
    static = {**common, "kind": "script", "story": story.model_dump(mode="json"), "storyc": __version__, **final}
    steps["script"] = Step("script", "script", tuple(steps), static, digest(static))
    return StepGraph(story=story, story_path=Path(loaded.path), steps=_topological(steps), backend=backend, draft=draft)


def _assemble_step(inputs: _GraphInputs, sounds: tuple[str, ...]) -> Step:
    """The final video from every clip, and, for a story with sound, the mix of the clips'
    sound, the speech steps' lines and the music, with the subtitles."""
    story = inputs.story
    static: dict[str, Any] = {
        **inputs.common,
        "kind": "assemble",
        "clips": [
            {"scene_id": s.scene_id, "duration_s": s.duration_seconds, "transition": s.transition} for s in story.scenes
        ],
        "fps": 24,
        **({"draft": True} if inputs.draft else {}),
    }
    if story.has_sound():  # absent otherwise: a silent story keeps the keys it had
        audio = story.audio
        static["sound"] = {
            "native": audio.native,
            "music": input_hash(inputs.base_dir, audio.music) if audio.music else None,
            "music_volume_db": audio.music_volume_db,
            "loudness_lufs": audio.loudness_lufs,
            "subtitles": audio.subtitles,
        }
    videos = tuple(f"video:{s.scene_id}" for s in story.scenes)
    return Step("assemble", "assemble", videos + sounds, static, digest(static))


def _speech_step(inputs: _GraphInputs, index: int) -> Step | None:
    """A scene's spoken lines, in order: each rendered (offline speech, or xAI text to
    speech) or, when the clip speaks it, estimated from its words; then placed in the scene.
    Keyed by each line's words, voice and who voices it, the engine and its settings, and
    the scene's length (placement); None for a scene that says nothing."""
    story, backend = inputs.story, inputs.common["backend"]
    scene = story.scenes[index]
    voiced = speech.voiced_script(story, index, backend)
    if not voiced:
        return None
    cast = voices.story_cast(story) if backend == speech.OFFLINE else None
    lines = []
    for v in voiced:
        entry: dict[str, Any] = {
            "kind": v.line.kind,
            "speaker": v.line.speaker,
            "text": v.line.text,
            "voice": v.voice,
            "source": v.source,
        }
        if cast is not None:
            entry["local_voice"] = cast.voice_of(v.line).cache_key()
        lines.append(entry)
    sources = {v.source for v in voiced}
    engines: dict[str, Any] = {}
    if "local" in sources:
        engines["local"] = voices.render_settings(speech_engine())
    if "tts" in sources:
        engines["tts"] = voices.tts_request_settings()
    if "clip" in sources:
        engines["clip"] = {"words_per_second": speech.WORDS_PER_SECOND, "min_line_s": speech.MIN_LINE_S}
    static = {
        **{k: inputs.common[k] for k in ("storyc_key", "backend", "render_scale")},
        "kind": "speech",
        "scene_id": scene.scene_id,
        "duration_s": scene.duration_seconds,
        "lines": lines,
        "engines": engines,
        "placement": speech.placement_settings(),
    }
    tts_texts = [v.line.text for v in voiced if v.source == "tts"]
    return Step(
        f"speech:{scene.scene_id}",
        "speech",
        (),
        static,
        digest(static),
        scene_index=index,
        scene_id=scene.scene_id,
        **asdict(speech_estimate(tts_texts)),
    )


def _topological(steps: dict[str, Step]) -> dict[str, Step]:
    """The steps with every dependency before its dependents, otherwise in their given order
    (iterative: a chain of a thousand scenes is two thousand steps deep)."""
    done: dict[str, Step] = {}
    for root in steps:
        stack: list[tuple[str, int]] = [(root, 0)]
        on_path: set[str] = set()
        while stack:
            sid, next_dep = stack.pop()
            if sid in done:
                continue
            deps = steps[sid].deps
            if next_dep < len(deps):
                stack.append((sid, next_dep + 1))
                dep = deps[next_dep]
                if dep in on_path:  # lint refuses the stories that could make one (E304, E312)
                    raise ValueError(f"the step graph has a cycle through {dep}")
                if dep not in done:
                    on_path.add(sid)
                    stack.append((dep, 0))
                continue
            on_path.discard(sid)
            done[sid] = steps[sid]
    return done


def _character_step(inputs: _GraphInputs, character: Character) -> Step:
    """A character's sheet (turnaround views when the story asks)."""
    prompts = inputs.prompts
    return _picture_step(
        inputs,
        "character",
        "sheet",
        character,
        prompts.sheet(character)[1],
        prompts.check_sheet(character),
        quality={"turnaround": inputs.story.quality.turnaround},
        character=character.name,
    )


def _location_step(inputs: _GraphInputs, location: Location) -> Step:
    """A location's background plate, painted offline in the story's palette."""
    prompts = inputs.prompts
    return _picture_step(
        inputs,
        "location",
        "plate",
        location,
        prompts.plate(location)[1],
        prompts.check_plate(location),
        static={"hints": {"palette": inputs.story.color_palette}},
    )


def _picture_step(
    inputs: _GraphInputs,
    kind: str,
    role: str,
    subject: Character | Location,
    prompt: str,
    check: str,
    *,
    quality: Mapping[str, Any] | None = None,
    static: Mapping[str, Any] | None = None,
    **ids: Any,
) -> Step:
    """A sheet's or a plate's step: generated once (or restyled from the user's reference
    image), best of quality.sheet_candidates, vision-checked until it passes or the attempts
    run out. `quality` and `static` add the kind's own inputs to its key."""
    story = inputs.story
    sid = f"{kind}:{subject.name}"
    note = inputs.note(sid)
    reference = input_hash(inputs.base_dir, subject.reference_image) if subject.reference_image else None
    fingerprint = {
        **inputs.common,
        "kind": kind,
        "name": subject.name,
        "prompts": {role: with_note(prompt, note), "check": check},
        "models": {"image": story.models.image, "vision": story.models.vision},
        "quality": {
            "threshold": story.quality.consistency_threshold,
            "attempts": story.quality.max_character_attempts,
            "candidates": inputs.candidates(story.quality.sheet_candidates),
            **(quality or {}),
        },
        "reference_image": reference,
        "templates": template_digests(inputs.prompts, STEP_TEMPLATES[kind]),
        "visual_description": subject.visual_description,
        **(static or {}),
    }
    estimate = _picture_estimate(inputs, subject.reference_image)
    return Step(sid, kind, (), fingerprint, digest(fingerprint), note=note, **ids, **asdict(estimate))


def _picture_estimate(inputs: _GraphInputs, reference_image: str | None) -> StepEstimate:
    """A sheet's or a plate's calls and cost (its pinned file's too: what it would cost made)."""
    quality = inputs.story.quality
    return character_estimate(
        quality,
        inputs.story.models,
        input_images=1 if reference_image else 0,
        candidates=inputs.candidates(quality.sheet_candidates),
    )


def _slot_dep(slot: Slot) -> str:
    """The step whose output fills a reference slot."""
    if slot.kind == "character":
        return f"character:{slot.name}"
    if slot.kind == "location":
        return f"location:{slot.name}"
    return f"video:{slot.scene_id}" if slot.source == "last_frame" else f"keyframe:{slot.scene_id}"


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
    chain_deps = tuple(_slot_dep(s) for s in slot_plan.slots if s.kind != "character")
    static = {
        **inputs.common,
        "kind": "keyframe",
        "scene_id": scene.scene_id,
        "prompts": {"compose": with_note(prompts.keyframe(index), note), "check": prompts.check_keyframe(index)},
        "slots": slots,
        "text_only": list(slot_plan.text_only),
        "models": {"image": story.models.image, "vision": story.models.vision},
        "quality": {
            "threshold": quality.consistency_threshold,
            "iterations": quality.max_keyframe_iterations,
            "candidates": inputs.candidates(quality.keyframe_candidates),
            "turnaround": quality.turnaround,
        },
        "templates": template_digests(prompts, STEP_TEMPLATES["keyframe"]),
        # the offline renderer draws from these, so they are inputs too
        "hints": {
            "setting": scene.setting,
            "mood": scene.mood,
            "camera": scene.camera,
            "palette": story.color_palette,
            "characters": {n: c.visual_description for n in scene.characters_present if (c := story.character(n))},
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
        **asdict(
            keyframe_estimate(
                quality,
                story.models,
                reference_images=len(slots),
                judged_sheets=len(sheets),
                candidates=inputs.candidates(quality.keyframe_candidates),
            )
        ),
    )


def captions_in_clip(story: Story, backend: str) -> bool:
    """Whether the offline animatic draws the spoken lines in its clips' caption band: when the
    final video carries no subtitles (audio.subtitles: none); otherwise the subtitles do."""
    return backend == speech.OFFLINE and story.audio.subtitles == "none"


def _video_step(
    inputs: _GraphInputs,
    index: int,
    keyframe_id: str,
    sheets: tuple[str, ...],
    slot_plan: SlotPlan,
    speech_id: str | None,
) -> Step:
    """A clip from the scene's keyframe (or its reference images), checked against the sheets
    of every present character; made as its clip plan says (storyc.model.clips); offline
    without subtitles, captioned with the scene's timed lines."""
    story, prompts, quality = inputs.story, inputs.prompts, inputs.story.quality
    scene = story.scenes[index]
    note = inputs.note(f"clip:{scene.scene_id}")
    plan = clip_plan(story, index)
    corrections = quality.max_video_corrections
    draft: dict[str, Any] = {}
    if inputs.paid_draft:  # the video runner reads both from the step's static inputs
        plan = replace(plan, resolution=DRAFT_RESOLUTION)
        corrections, draft = DRAFT_VIDEO_CORRECTIONS, {"draft": True}
    spoken = speech.clip_speaks_dialogue(story, inputs.common["backend"], index)
    refs = tuple(dict.fromkeys(_slot_dep(r) for r in slot_plan.video_references))
    end_on = (f"keyframe:{plan.end_on}",) if plan.end_on is not None else ()
    static: dict[str, Any] = {
        **inputs.common,
        **draft,
        "kind": "video",
        "scene_id": scene.scene_id,
        "prompts": {
            "video": with_note(prompts.video(index, spoken=spoken), note),
            "check": prompts.check_last_frame(index),
            **{f"video_s{seg.number}": prompts.video(index, seg.number, spoken=spoken) for seg in plan.segments[1:]},
            **({"extend": prompts.video_extend(index)} if plan.extensions else {}),
        },
        "duration_s": scene.duration_seconds,
        "clip": _clip_static(plan),
        "references": [r.to_json(n) for n, r in enumerate(slot_plan.video_references, start=1)],
        "models": {"video": story.models.video, "vision": story.models.vision},
        "quality": {"threshold": quality.consistency_threshold, "corrections": corrections},
        "templates": template_digests(prompts, STEP_TEMPLATES["video"]),
        "hints": {"camera": scene.camera, "action": scene.action, "mood": scene.mood},
    }
    if inputs.common["backend"] == speech.OFFLINE:
        # the offline animatic's caption band shows the title (a real model's clip does not
        # depend on it, so only offline keys carry it)
        static["hints"]["title"] = scene.title
    # What the clip's sound is asked to be, only where it departs from a clip's default (its own
    # sound, no voices given): a story that gains a line re-keys no clip that does not speak it.
    audio: dict[str, Any] = {}
    if not story.audio.native:
        audio["generate"] = False
    voices = speech.clip_voice_references(story, index) if spoken else ()
    if voices:
        audio["voices"] = [{"speaker": r.speaker, "voice": r.voice, "number": r.number} for r in voices]
    if audio:
        static["audio"] = audio
    # The lines a scene says show in the offline animatic's caption band only when the final
    # video does not show them itself (subtitles: none): the clip then needs the speech step's
    # timing. With subtitles, an edited line re-renders its speech and the mix, not its clip.
    captions = (speech_id,) if speech_id and captions_in_clip(story, inputs.common["backend"]) else ()
    deps = tuple(dict.fromkeys((keyframe_id, *sheets, *refs, *end_on, *captions)))
    return Step(
        f"video:{scene.scene_id}",
        "video",
        deps,
        static,
        digest(static),
        scene_index=index,
        scene_id=scene.scene_id,
        note=note,
        **asdict(
            video_estimate(
                quality.model_copy(update={"max_video_corrections": corrections}),
                story.models,
                plan,
                judged_sheets=len(sheets),
            )
        ),
    )


def _clip_static(plan: ClipPlan) -> dict[str, Any]:
    return {
        "mode": plan.mode,
        "resolution": plan.resolution,
        "end_on": plan.end_on,
        "sheet_references": plan.sheet_references,
        "segments": [{"base_s": s.base_s, "extensions": list(s.extensions), "mode": s.mode} for s in plan.segments],
    }


def _pinned_step(inputs: _GraphInputs, step_id: str, kind: str, pin: str, generation: StepEstimate, **ids: Any) -> Step:
    """A pinned target's step: the file used as is, no deps, no paid call, its key a
    function of the file's content alone (not of the backend, frame format or render
    scale: an approval made on a draft build carries over). `generation` is the estimate
    of the step it replaces: what the pin saves."""
    static = {"storyc_key": KEY_VERSION, "kind": kind, "id": step_id, "pinned": input_hash(inputs.base_dir, pin)}
    return Step(step_id, kind, (), static, digest(static), pinned=pin, saves=asdict(generation), **ids)
