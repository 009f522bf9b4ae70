"""One view of a build for the storyboard documents (script.md and storyboard.html).

Both documents render from `storyboard_view(out_dir, story, state)`, so they always show
the same facts. Reads the story and the step records of the BuildState (and whether a
clip's extracted last frame is on disk, to show it as the clip's thumbnail); no Prefect,
no media libraries. Asset paths are relative to the output folder, where both documents
live, so the folder can be moved or zipped as a whole.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from storyc.media.assemble import Clip
from storyc.media.audio_mix import clip_starts
from storyc.model.clips import clip_plan
from storyc.model.speech import scene_script
from storyc.model.state import BuildState, SpokenLineRecord, StepRecord
from storyc.model.story import Character, Location, Scene, Story
from storyc.prompts.slots import Slot, allocate_slots
from storyc.report.review import Review, TargetReview, target_review


@dataclass
class Asset:
    label: str
    path: str  # relative to the output folder (posix)


@dataclass
class Attempt:
    """One generation of a loop: a sheet, a plate, a keyframe (each candidate of a best-of-N
    request is one), or a clip (shown by its last frame)."""

    label: str  # "take 2": numbered as `storyc approve --take N` numbers them
    kind: str  # "generate v1 #2" (candidate 2 of request v1), "compose", "fix edit", "pinned", "segment s2" ...
    path: str  # the attempt's file
    thumb: str | None  # an image to show for it (the file itself, or a clip's last frame)
    score: float | None
    kept: bool  # the one the build chose


@dataclass
class CharacterView:
    name: str
    role: str
    description: str
    cues: list[str]
    sheet: str | None
    score: float | None
    attempts: int | None
    status: str
    error: str | None
    tries: list[Attempt]
    reference_image: str | None
    prompts: dict[str, str]
    review: TargetReview | None = None  # approving its takes (storyc approve character:NAME)


@dataclass
class LineView:
    """One line of a scene as the storyboard lists it."""

    who: str  # the speaker, or "Narrator"
    text: str
    kind: str  # "narration" | "dialogue"
    voice: str  # the voice id and, offline, the local voice that speaks it
    made_by: str  # "offline speech", "xAI text to speech", "the clip (length estimated)", "not rendered yet"
    start_s: float | None  # in the scene (None before the speech step ran)
    end_s: float | None
    at_s: float | None  # in the final video
    until_s: float | None
    audio: str | None  # the rendered line

    @property
    def credit(self) -> str:
        """The voice and what made the sound, as one phrase."""
        return f"{self.voice} · {self.made_by}" if self.voice else self.made_by


_MADE_BY = {"local": "offline speech", "tts": "xAI text to speech", "clip": "the clip (length estimated)"}


@dataclass
class LocationView:
    name: str
    description: str
    plate: str | None
    score: float | None
    attempts: int | None
    status: str
    error: str | None
    tries: list[Attempt]
    reference_image: str | None
    prompts: dict[str, str]
    scenes: list[int]  # the scenes set there
    review: TargetReview | None = None  # storyc approve location:NAME


@dataclass
class SceneView:
    scene_id: int
    title: str
    description: str
    table: list[tuple[str, str]]
    references: str
    keyframe: str | None
    keyframe_pinned: bool
    keyframe_tries: list[Attempt]
    first_frame: str | None
    last_frame: str | None
    video: str | None
    corrections: list[Asset]
    clip_tries: list[Attempt]
    keyframe_score: float | None
    video_score: float | None
    edit_passes: int
    correction_passes: int
    duration_s: int
    transition: str
    prompts: list[tuple[str, str]]  # ("keyframe · compose", prompt)
    problems: list[str] = field(default_factory=list)
    keyframe_review: TargetReview | None = None  # storyc approve scene:ID
    clip_review: TargetReview | None = None  # storyc approve clip:ID
    lines: list[LineView] = field(default_factory=list)  # what is said, in order, with times and voices
    scene_audio: str | None = None  # the scene's rendered speech as one track


@dataclass
class StepTotal:
    id: str
    status: str
    cached: bool
    api_calls: int
    cost_usd: float
    wall_s: float


@dataclass
class Storyboard:
    title: str
    style: str
    palette: str
    aspect_ratio: str
    resolution: str
    threshold: float
    characters: list[CharacterView]
    scenes: list[SceneView]
    locations: list[LocationView]
    final_video: str | None
    stats: list[tuple[str, str]]
    steps: list[StepTotal]
    api_calls: int
    cost_usd: float
    notice: str | None = None  # why this build stopped before its storyboard step, if it did
    review: Review | None = None  # approvals: pins, redo notes and the approve command
    final_subtitles: str | None = None  # final_video.vtt, when the build wrote subtitles


def rel_path(out_dir: Path, path: str | None) -> str | None:
    """A path as seen from the output folder, with forward slashes."""
    if not path:
        return None
    candidate = Path(path)
    if candidate.is_absolute():
        try:
            candidate = Path(os.path.relpath(candidate, out_dir))
        except ValueError:  # another drive on Windows
            return candidate.as_posix()
    return candidate.as_posix()


def fmt_score(score: float | None) -> str:
    return "–" if score is None else f"{score:.2f}"


def fmt_span(start_s: float | None, end_s: float | None) -> str:
    """A line's time span: '4.30–6.10 s', or '–' before it was timed."""
    return "–" if start_s is None or end_s is None else f"{start_s:.2f}–{end_s:.2f} s"


def _chain_text(story: Story, index: int) -> str:
    scene = story.scenes[index]
    parent = story.chain_parent(index)
    if parent is None:
        return "none (starts a branch)"
    source = {"keyframe": "keyframe", "seamless": "keyframe, seamless cut"}.get(scene.chain_source, "last frame")
    return f"scene {parent.scene_id} {source}"


def _slot_text(slot: Slot) -> str:
    if slot.kind == "character":
        return f"{slot.name} sheet"
    if slot.kind == "location":
        return f"{slot.name} plate"
    frame = {"keyframe": "keyframe", "seamless": "keyframe (seamless cut)"}.get(slot.source or "", "last frame")
    return f"scene {slot.scene_id} {frame}"


def _references_text(story: Story, index: int) -> str:
    scene = story.scenes[index]
    plan = allocate_slots(story, index)
    if scene.keyframe_image:
        text = f"pinned keyframe {scene.keyframe_image} (used as is)"
    else:
        parts = [f"{n}: {_slot_text(slot)}" for n, slot in enumerate(plan.slots, start=1)]
        text = ", ".join(parts) if parts else "none (text → image)"
        if plan.text_only:
            text += f"; text-only (no reference image): {', '.join(plan.text_only)}"
    if plan.video_references:
        refs = ", ".join(f"{n}: {_slot_text(slot)}" for n, slot in enumerate(plan.video_references, start=1))
        text += f"; clip ({plan.video_mode} mode): {refs}"
    return text


def _clip_text(story: Story, index: int) -> str:
    """How the clip is made: mode, resolution, segments and extensions, a pinned end."""
    scene = story.scenes[index]
    if scene.clip_video:
        return f"pinned clip {scene.clip_video} (used as is)"
    plan = clip_plan(story, index)
    parts = [f"{'from the references' if plan.mode == 'reference' else 'from the keyframe'}, {plan.resolution}"]
    if plan.long:
        for seg in plan.segments:
            extended = "".join(f" + {e} s extension" for e in seg.extensions)
            parts.append(f"segment {seg.number}: {seg.base_s} s{extended}")
    if plan.end_on is not None:
        parts.append(f"ends exactly on scene {plan.end_on}'s keyframe (seamless cut)")
    return "; ".join(parts)


_ATTEMPT = re.compile(r"_v(\d+)(?:_(\d+))?\.\w+$")


def _attempt_detail(path: str) -> tuple[str, int | None]:
    """("v1 #2", 1) for the 2nd candidate of best-of-N request v1 (`x_v1_2.jpg`); ("", 3) for
    the one image of request v3 (`x_v3.jpg`)."""
    match = _ATTEMPT.search(path)
    if not match:
        return "", None
    return (f"v{match[1]} #{match[2]}" if match[2] else ""), int(match[1])


def _clip_frame(out_dir: Path, clip: str) -> str | None:
    """The last frame the build extracted from a clip (`videos/scene_3_c1.mp4` →
    `frames/scene_3_c1_last.jpg`), when it is on disk."""
    rel = f"frames/{Path(clip).stem}_last.jpg"
    return rel if (out_dir / rel).is_file() else None


def _output(out_dir: Path, step: StepRecord | None, role: str) -> str | None:
    return rel_path(out_dir, step.outputs.get(role)) if step is not None else None


def _judged(out_dir: Path, step: StepRecord | None) -> list[tuple[str, float]]:
    """Every judged attempt of a step, in order: (its file, its score)."""
    if step is None:
        return []
    return [(rel_path(out_dir, path) or path, score) for path, score in step.attempt_scores.items()]


# ─── characters ─────────────────────────────────────────────────────────────


def _review(review: Review | None, target: str, tries: list[Attempt]) -> TargetReview | None:
    return target_review(review, target, list(range(1, len(tries) + 1)))


def _picture_tries(
    out_dir: Path, step: StepRecord | None, role: str, pinned: str | None, reference_image: str | None
) -> list[Attempt]:
    """A sheet's or a plate's takes: every judged picture (each candidate of a best-of-N
    request), numbered; a pinned one's one take is the pinned file."""
    kept = _output(out_dir, step, role)
    if pinned:
        return [Attempt("take 1", "pinned", kept, kept, None, True)] if kept else []
    kind = "edit of the reference image" if reference_image else "generate"
    tries = []
    for n, (path, score) in enumerate(_judged(out_dir, step), start=1):
        detail = _attempt_detail(path)[0]
        tries.append(Attempt(f"take {n}", f"{kind} {detail}".strip(), path, path, score, path == kept))
    return tries


def _character_view(
    out_dir: Path, character: Character, step: StepRecord | None, review: Review | None
) -> CharacterView:
    sheet = _output(out_dir, step, "sheet")
    tries = _picture_tries(out_dir, step, "sheet", character.sheet_image, character.reference_image)
    return CharacterView(
        name=character.name,
        role=character.role,
        description=character.visual_description,
        cues=list(character.personality_cues),
        sheet=sheet,
        score=step.score if step else None,
        attempts=(step.attempts or None) if step else None,
        status=step.status if step else "pending",
        error=step.error if step else None,
        tries=tries,
        reference_image=character.reference_image,
        prompts=dict(step.prompts) if step else {},
        review=_review(review, f"character:{character.name}", tries),
    )


def _location_view(
    out_dir: Path, story: Story, location: Location, step: StepRecord | None, review: Review | None
) -> LocationView:
    plate = _output(out_dir, step, "plate")
    tries = _picture_tries(out_dir, step, "plate", location.plate_image, location.reference_image)
    return LocationView(
        name=location.name,
        description=location.visual_description,
        plate=plate,
        score=step.score if step else None,
        attempts=(step.attempts or None) if step else None,
        status=step.status if step else "pending",
        error=step.error if step else None,
        tries=tries,
        reference_image=location.reference_image,
        prompts=dict(step.prompts) if step else {},
        scenes=[s.scene_id for s in story.scenes if s.location == location.name],
        review=_review(review, f"location:{location.name}", tries),
    )


# ─── scenes ─────────────────────────────────────────────────────────────────


def _keyframe_tries(out_dir: Path, scene: Scene, step: StepRecord | None) -> list[Attempt]:
    keyframe = _output(out_dir, step, "keyframe")
    if scene.keyframe_image:
        return [Attempt("take 1", "pinned", keyframe, keyframe, None, True)] if keyframe else []
    prompts = step.prompts if step else {}
    tries = []
    for n, (path, score) in enumerate(_judged(out_dir, step), start=1):
        detail, iteration = _attempt_detail(path)
        # the keyframe runner names the prompt of a fix edit made at iteration i `fix_<i>`
        kind = "fix edit" if f"fix_{iteration or n}" in prompts else "compose"
        tries.append(Attempt(f"take {n}", f"{kind} {detail}".strip(), path, path, score, path == keyframe))
    return tries


_CLIP = re.compile(r"scene_[^_/]+(?:_s(?P<segment>\d+))?(?:_e(?P<ext>\d+))?(?:_c(?P<fix>\d+))?\.\w+$")


def _clip_kind(path: str, n: int) -> str:
    """A judged clip: a generation (`scene_3.mp4`), a segment and its extensions
    (`scene_3_s2.mp4`, `scene_3_s1_e1.mp4`), a correction (`..._c1.mp4`)."""
    match = _CLIP.search(path)
    segment, ext, fix = (match["segment"], match["ext"], match["fix"]) if match else (None, None, None)
    if fix:
        return f"video-edit correction {'s' + segment + ' ' if segment else ''}c{fix}"
    if ext:
        return f"segment s{segment} + extension {ext}"
    if segment:
        return f"segment s{segment}"
    return "image → video" if n == 0 else f"video-edit correction c{n}"


def _clip_tries(out_dir: Path, scene: Scene, step: StepRecord | None) -> list[Attempt]:
    video = _output(out_dir, step, "video")
    if scene.clip_video:  # pinned: its one take is the pinned file
        return [Attempt("take 1", "pinned", video, _clip_frame(out_dir, video), None, True)] if video else []
    return [
        Attempt(
            label=f"take {n + 1}",
            kind=_clip_kind(path, n),
            path=path,
            thumb=_clip_frame(out_dir, path),
            score=score,
            kept=path == video,
        )
        for n, (path, score) in enumerate(_judged(out_dir, step))
    ]


def _corrections(out_dir: Path, step: StepRecord | None) -> list[Asset]:
    """The video-edit corrections a finished clip step made (`..._c1.mp4`; a failed step
    counts none)."""
    if step is None or not step.edit_passes:
        return []
    clips = [path for path, _ in _judged(out_dir, step) if (m := _CLIP.search(path)) and m["fix"]]
    return [Asset(f"c{n}", path) for n, path in enumerate(clips, start=1)]


def _scene_table(
    story: Story, index: int, k_step: StepRecord | None, v_step: StepRecord | None
) -> list[tuple[str, str]]:
    s = story.scenes[index]
    k_score, v_score = (k_step.score if k_step else None), (v_step.score if v_step else None)
    return [
        ("Setting", s.setting),
        ("Characters", ", ".join(s.characters_present) or "–"),
        ("Camera", s.camera),
        ("Mood", s.mood),
        ("Action", s.action),
        ("Duration", f"{s.duration_seconds} s"),
        ("Transition", s.transition),
        ("Chain source", _chain_text(story, index)),
        ("Location", s.location or "–"),
        ("Clip", _clip_text(story, index)),
        ("Consistency", f"keyframe {fmt_score(k_score)}, last frame {fmt_score(v_score)}"),
        ("Edits", str(k_step.edit_passes if k_step else 0)),
        ("Corrections", str(v_step.edit_passes if v_step else 0)),
    ]


def _voice_text(line: SpokenLineRecord) -> str:
    local = line.local_voice.split("/", 1)[0] if line.local_voice else None
    if line.voice and local:
        return f"{line.voice} (offline: {local})"
    if local:
        return f"offline voice {local} (from the name)"
    return line.voice or "the model's choice"


def _line_views(out_dir: Path, scene: Scene, step: StepRecord | None, scene_start_s: float) -> list[LineView]:
    if step is None or step.status != "done":  # the story's lines, not timed yet
        return [
            LineView(
                line.speaker or "Narrator", line.text, line.kind, "", "not rendered yet", None, None, None, None, None
            )
            for line in scene_script(scene)
        ]
    return [
        LineView(
            who=line.speaker or "Narrator",
            text=line.text,
            kind=line.kind,
            voice=_voice_text(line),
            made_by=_MADE_BY[line.source],
            start_s=line.start_s,
            end_s=line.end_s,
            at_s=round(scene_start_s + line.start_s, 3),
            until_s=round(scene_start_s + line.end_s, 3),
            audio=rel_path(out_dir, line.audio),
        )
        for line in step.lines
    ]


def scene_starts(story: Story) -> list[float]:
    """Where each scene starts in the final video (crossfades overlap; the assembly's arithmetic)."""
    starts, _ = clip_starts([Clip(Path(), float(s.duration_seconds), s.transition) for s in story.scenes])
    return starts


def _scene_view(
    out_dir: Path,
    story: Story,
    index: int,
    steps: dict[str, StepRecord],
    review: Review | None,
    start_s: float = 0.0,
) -> SceneView:
    s = story.scenes[index]
    k_step, v_step = steps.get(f"keyframe:{s.scene_id}"), steps.get(f"video:{s.scene_id}")
    speech = steps.get(f"speech:{s.scene_id}")
    prompts = [(f"keyframe · {role}", text) for role, text in (k_step.prompts if k_step else {}).items()]
    prompts += [(f"video · {role}", text) for role, text in (v_step.prompts if v_step else {}).items()]
    keyframe_tries, clip_tries = _keyframe_tries(out_dir, s, k_step), _clip_tries(out_dir, s, v_step)
    return SceneView(
        scene_id=s.scene_id,
        title=s.title,
        description=s.description,
        table=_scene_table(story, index, k_step, v_step),
        references=_references_text(story, index),
        keyframe=_output(out_dir, k_step, "keyframe"),
        keyframe_pinned=bool(s.keyframe_image),
        keyframe_tries=keyframe_tries,
        first_frame=_output(out_dir, v_step, "first_frame"),
        last_frame=_output(out_dir, v_step, "last_frame"),
        video=_output(out_dir, v_step, "video"),
        corrections=_corrections(out_dir, v_step),
        clip_tries=clip_tries,
        keyframe_score=k_step.score if k_step else None,
        video_score=v_step.score if v_step else None,
        edit_passes=k_step.edit_passes if k_step else 0,
        correction_passes=v_step.edit_passes if v_step else 0,
        duration_s=s.duration_seconds,
        transition=s.transition,
        prompts=prompts,
        problems=[
            f"{step.id}: {step.status}" + (f" ({step.error})" if step.error else "")
            for step in (k_step, v_step, speech)
            if step is not None and step.status == "failed"
        ],
        keyframe_review=_review(review, f"scene:{s.scene_id}", keyframe_tries),
        clip_review=_review(review, f"clip:{s.scene_id}", clip_tries),
        lines=_line_views(out_dir, s, speech, start_s),
        scene_audio=_output(out_dir, speech, "scene_audio"),
    )


# ─── the build ──────────────────────────────────────────────────────────────


def _stats(state: BuildState, records: list[StepRecord]) -> list[tuple[str, str]]:
    done = sum(r.status == "done" for r in records)
    cached = sum(r.cached for r in records)
    failed = sum(r.status == "failed" for r in records)
    return [
        ("Backend", state.backend or "–"),
        ("Story", state.story_path or "–"),
        ("Steps", f"{done} done of {len(records)}, {cached} from cache, {failed} failed"),
        ("API calls", str(sum(r.api_calls for r in records))),
        ("Cost", f"${sum(r.cost_usd for r in records):.2f}"),
        ("Step time", f"{sum(r.wall_s for r in records):.1f} s (summed over steps)"),
        ("storyc", state.storyc_version or "–"),
    ]


def storyboard_view(
    out_dir: Path, story: Story, state: BuildState, notice: str | None = None, review: Review | None = None
) -> Storyboard:
    out_dir = Path(out_dir)
    steps = state.steps
    records = list(steps.values())
    return Storyboard(
        title=story.title,
        style=story.style,
        palette=story.color_palette,
        aspect_ratio=story.aspect_ratio,
        resolution=story.resolution,
        threshold=story.quality.consistency_threshold,
        characters=[_character_view(out_dir, c, steps.get(f"character:{c.name}"), review) for c in story.characters],
        scenes=[_scene_view(out_dir, story, i, steps, review, start) for i, start in enumerate(scene_starts(story))],
        locations=[
            _location_view(out_dir, story, loc, steps.get(f"location:{loc.name}"), review)
            for loc in story.locations
            if any(s.location == loc.name for s in story.scenes)
        ],
        final_video=_output(out_dir, steps.get("assemble"), "final_video"),
        final_subtitles=_output(out_dir, steps.get("assemble"), "subtitles_vtt"),
        stats=_stats(state, records),
        steps=[StepTotal(r.id, r.status, r.cached, r.api_calls, r.cost_usd, r.wall_s) for r in records],
        api_calls=sum(r.api_calls for r in records),
        cost_usd=sum(r.cost_usd for r in records),
        notice=notice,
        review=review,
    )
