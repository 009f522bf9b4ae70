"""One view of a build for the storyboard documents (script.md and storyboard.html).

Both documents render from `storyboard_view(out_dir, story, state)`, so they always show
the same facts. Pure: reads the story, the BuildState and (for builds recorded before
per-attempt scores existed) which attempt files are on disk; no Prefect, no media
libraries. Asset paths are relative to the output folder, where both documents live, so
the folder can be moved or zipped as a whole.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

from storyc.model.state import BuildState, StepRecord
from storyc.model.story import Story
from storyc.prompts.slots import allocate_slots
from storyc.report.review import Review, TargetReview, target_review

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp")


@dataclass
class Asset:
    label: str
    path: str  # relative to the output folder (posix)


@dataclass
class Attempt:
    """One generation of a loop: a sheet, a keyframe, or a clip (shown by its last frame)."""

    label: str  # "take 2": numbered as `storyc approve --take N` numbers them
    kind: str  # "generate", "compose", "fix edit", "pinned", "clip", "correction"
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
    final_video: str | None
    stats: list[tuple[str, str]]
    steps: list[StepTotal]
    api_calls: int
    cost_usd: float
    notice: str | None = None  # why this build stopped before its storyboard step, if it did
    review: Review | None = None  # approvals: pins, notes and the approve command


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


def _numbered(outputs: dict[str, str], prefix: str) -> list[tuple[int, str]]:
    found = []
    for role, path in outputs.items():
        match = re.fullmatch(rf"{prefix}_(\d+)", role)
        if match:
            found.append((int(match.group(1)), path))
    return sorted(found)


def _on_disk(out_dir: Path, pattern: str, count: int, suffixes: tuple[str, ...]) -> list[tuple[int, str]]:
    """Fallback when a step recorded only its chosen output: the design's file names
    (`Ember_v2.jpg`, `scene_1_c1.mp4`) for n = 1..count that exist."""
    found = []
    for n in range(1, count + 1):
        for suffix in suffixes:
            rel = pattern.format(n=n) + suffix
            if (out_dir / rel).is_file():
                found.append((n, rel))
                break
    return found


def fmt_score(score: float | None) -> str:
    return "–" if score is None else f"{score:.2f}"


def _chain_text(story: Story, index: int) -> str:
    scene = story.scenes[index]
    parent = story.chain_parent(index)
    if parent is None:
        return "none (starts a branch)"
    source = "keyframe" if scene.chain_source == "keyframe" else "last frame"
    return f"scene {parent.scene_id} {source}"


def _references_text(story: Story, index: int) -> str:
    scene = story.scenes[index]
    if scene.keyframe_image:
        return f"pinned keyframe {scene.keyframe_image} (used as is)"
    plan = allocate_slots(story, index)
    parts = []
    for n, slot in enumerate(plan.slots, start=1):
        if slot.kind == "character":
            parts.append(f"{n}: {slot.name} sheet")
        else:
            parts.append(f"{n}: scene {slot.scene_id} {'keyframe' if slot.source == 'keyframe' else 'last frame'}")
    text = ", ".join(parts) if parts else "none (text → image)"
    if plan.text_only:
        text += f"; text-only (no reference image): {', '.join(plan.text_only)}"
    return text


def _image_tries(
    step: StepRecord | None, fallback: list[tuple[int, str]], kept: str | None, kept_score: float | None, kind_of
) -> list[Attempt]:
    """Image attempts in order, each with its score: from the step's `attempt_scores`
    (recorded since per-attempt scores exist), else the files found on disk (scored only
    for the kept one)."""
    if step is not None and step.attempt_scores:
        items = [(n, p, s) for n, (p, s) in enumerate(step.attempt_scores.items(), start=1)]
    else:
        items = [(n, p, kept_score if p == kept else None) for n, p in fallback]
    return [Attempt(label=f"take {n}", kind=kind_of(n), path=p, thumb=p, score=s, kept=p == kept) for n, p, s in items]


def _clip_frame(out_dir: Path, clip: str) -> str | None:
    """The last frame the build extracted from a clip (`videos/scene_3_c1.mp4` →
    `frames/scene_3_c1_last.jpg`), when it is on disk."""
    stem = Path(clip).stem
    rel = f"frames/{stem}_last.jpg"
    return rel if (out_dir / rel).is_file() else None


def _review(review: Review | None, target: str, tries: list[Attempt]) -> TargetReview | None:
    return target_review(review, target, list(range(1, len(tries) + 1)))


def storyboard_view(
    out_dir: Path, story: Story, state: BuildState, notice: str | None = None, review: Review | None = None
) -> Storyboard:
    out_dir = Path(out_dir)
    steps: dict[str, StepRecord] = state.steps
    assets_c = {a.name: a for a in state.characters}
    assets_k = {a.scene_id: a for a in state.keyframes}
    assets_v = {a.scene_id: a for a in state.videos}

    characters = []
    for c in story.characters:
        step = steps.get(f"character:{c.name}")
        asset = assets_c.get(c.name)
        outputs = step.outputs if step else {}
        sheet = rel_path(out_dir, outputs.get("sheet") or (asset.portrait_path if asset else None))
        attempts = (step.attempts or None) if step else None
        if attempts is None and asset is not None:
            attempts = asset.generation_attempts
        on_disk = _numbered(outputs, "attempt") or _on_disk(
            out_dir, f"character_sheets/{c.name}_v{{n}}", attempts or 0, IMAGE_SUFFIXES
        )
        score = step.score if step and step.score is not None else (asset.consistency_score if asset else None)
        kind = "edit of the reference image" if c.reference_image else "generate"
        if c.sheet_image:  # pinned: its one take is the pinned file
            tries = [Attempt("take 1", "pinned", sheet, sheet, None, True)] if sheet else []
        else:
            tries = _image_tries(step, [(n, rel_path(out_dir, p)) for n, p in on_disk], sheet, score, lambda n: kind)
        characters.append(
            CharacterView(
                name=c.name,
                role=c.role,
                description=c.visual_description,
                cues=list(c.personality_cues),
                sheet=sheet,
                score=score,
                attempts=attempts,
                status=step.status if step else "pending",
                error=step.error if step else None,
                tries=tries,
                reference_image=c.reference_image,
                prompts=dict(step.prompts) if step else {},
                review=_review(review, f"character:{c.name}", tries),
            )
        )

    scenes = []
    for index, s in enumerate(story.scenes):
        k_step = steps.get(f"keyframe:{s.scene_id}")
        v_step = steps.get(f"video:{s.scene_id}")
        k_asset, v_asset = assets_k.get(s.scene_id), assets_v.get(s.scene_id)
        k_out = k_step.outputs if k_step else {}
        v_out = v_step.outputs if v_step else {}

        keyframe = rel_path(out_dir, k_out.get("keyframe") or (k_asset.keyframe_path if k_asset else None))
        k_attempts = (k_step.attempts if k_step else 0) or (k_asset.generation_attempts if k_asset else 0)
        k_disk = _numbered(k_out, "attempt") or _on_disk(
            out_dir, f"keyframes/scene_{s.scene_id}_v{{n}}", k_attempts, IMAGE_SUFFIXES
        )
        edits = k_step.edit_passes if k_step else (k_asset.edit_passes if k_asset else 0)
        k_score = (
            k_step.score if k_step and k_step.score is not None else (k_asset.consistency_score if k_asset else None)
        )
        k_prompts = k_step.prompts if k_step else {}
        if s.keyframe_image:
            k_tries = [Attempt("take 1", "pinned", keyframe, keyframe, None, True)] if keyframe else []
        else:
            k_tries = _image_tries(
                k_step,
                [(n, rel_path(out_dir, p)) for n, p in k_disk],
                keyframe,
                k_score,
                lambda n: "fix edit" if f"fix_{n}" in k_prompts else "compose",  # steps.py names fix prompts fix_<n>
            )

        video = rel_path(out_dir, v_out.get("video") or (v_asset.video_path if v_asset else None))
        first = v_out.get("first_frame") or (v_asset.first_frame_path if v_asset else None)
        last = v_out.get("last_frame") or (v_asset.last_frame_path if v_asset else None)
        n_corr = (v_step.edit_passes if v_step else 0) or (v_asset.correction_passes if v_asset else 0)
        corrections = _numbered(v_out, "correction") or _on_disk(
            out_dir, f"videos/scene_{s.scene_id}_c{{n}}", n_corr, (".mp4",)
        )
        v_score = (
            v_step.score if v_step and v_step.score is not None else (v_asset.consistency_score if v_asset else None)
        )
        if s.clip_video:  # pinned: its one take is the pinned file
            clips = [(video, None)] if video else []
        elif v_step is not None and v_step.attempt_scores:
            clips = list(v_step.attempt_scores.items())
        else:  # older records: the first clip and the corrections on disk, scored only when kept
            clips = [
                (p, None)
                for p in [f"videos/scene_{s.scene_id}.mp4"] + [c for _, c in corrections]
                if (out_dir / p).is_file()
            ]
        clip_tries = []
        for n, (path, score) in enumerate(clips):
            path = rel_path(out_dir, path)
            score = score if score is not None or path != video else v_score
            clip_tries.append(
                Attempt(
                    label=f"take {n + 1}",
                    kind=("pinned" if s.clip_video else "image → video") if n == 0 else f"video-edit correction c{n}",
                    path=path,
                    thumb=_clip_frame(out_dir, path),
                    score=score,
                    kept=path == video,
                )
            )

        consistency = f"keyframe {fmt_score(k_score)}, last frame {fmt_score(v_score)}"
        table = [
            ("Setting", s.setting),
            ("Characters", ", ".join(s.characters_present) or "–"),
            ("Camera", s.camera),
            ("Mood", s.mood),
            ("Action", s.action),
            ("Duration", f"{s.duration_seconds} s"),
            ("Transition", s.transition),
            ("Chain source", _chain_text(story, index)),
            ("Consistency", consistency),
            ("Edits", str(edits)),
            ("Corrections", str(n_corr or len(corrections))),
        ]
        prompts = [(f"keyframe · {role}", text) for role, text in k_prompts.items()]
        prompts += [(f"video · {role}", text) for role, text in (v_step.prompts if v_step else {}).items()]
        if not prompts and k_asset is not None and k_asset.video_prompt:
            prompts.append(("video · video", k_asset.video_prompt))
        problems = [
            f"{step.id}: {step.status}" + (f" ({step.error})" if step.error else "")
            for step in (k_step, v_step)
            if step is not None and step.status == "failed"
        ]
        scenes.append(
            SceneView(
                scene_id=s.scene_id,
                title=s.title,
                description=s.description,
                table=table,
                references=_references_text(story, index),
                keyframe=keyframe,
                keyframe_pinned=bool(s.keyframe_image),
                keyframe_tries=k_tries,
                first_frame=rel_path(out_dir, first),
                last_frame=rel_path(out_dir, last),
                video=video,
                corrections=[Asset(f"c{n}", rel_path(out_dir, p)) for n, p in corrections],
                clip_tries=clip_tries,
                keyframe_score=k_score,
                video_score=v_score,
                edit_passes=edits,
                correction_passes=n_corr or len(corrections),
                duration_s=s.duration_seconds,
                transition=s.transition,
                prompts=prompts,
                problems=problems,
                keyframe_review=_review(review, f"scene:{s.scene_id}", k_tries),
                clip_review=_review(review, f"clip:{s.scene_id}", clip_tries),
            )
        )

    assemble = steps.get("assemble")
    final = state.final_video_path or (
        (assemble.outputs.get("final_video") or assemble.outputs.get("video")) if assemble else None
    )
    records = list(steps.values())
    api_calls = sum(r.api_calls for r in records)
    cost = sum(r.cost_usd for r in records)
    stats = [
        ("Backend", state.backend or "–"),
        ("Story", state.story_path or "–"),
        (
            "Steps",
            f"{sum(r.status == 'done' for r in records)} done of {len(records)}"
            f", {sum(r.cached for r in records)} from cache, {sum(r.status == 'failed' for r in records)} failed",
        ),
        ("API calls", str(api_calls)),
        ("Cost", f"${cost:.2f}"),
        ("Step time", f"{sum(r.wall_s for r in records):.1f} s (summed over steps)"),
        ("storyc", state.storyc_version or "–"),
    ]
    totals = [StepTotal(r.id, r.status, r.cached, r.api_calls, r.cost_usd, r.wall_s) for r in records]
    return Storyboard(
        title=story.title,
        style=story.style,
        palette=story.color_palette,
        aspect_ratio=story.aspect_ratio,
        resolution=story.resolution,
        threshold=story.quality.consistency_threshold,
        characters=characters,
        scenes=scenes,
        final_video=rel_path(out_dir, final),
        stats=stats,
        steps=totals,
        api_calls=api_calls,
        cost_usd=cost,
        notice=notice,
        review=review,
    )
