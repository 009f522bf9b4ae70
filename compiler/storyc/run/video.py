"""The video step: the scene's clip as its clip plan says (storyc.model.clips), then frames,
drift checks and corrections.

Each segment is one generation: image → video from the keyframe (a later segment from the
previous segment's last frame), or in video_mode reference from the sheets and the
location plate; with the sheets as reference images beside a first frame where the model
takes them; ending exactly on the next scene's keyframe when that scene cuts seamlessly
from this one. `video.extend` then continues it as the plan says. Every segment's last
frame is drift-checked; a segment of at most 8.7 s whose last frame scores below its
keyframe's (it drifted) gets video-edit corrections up to max_video_corrections (none in a
`storyc build --draft` on a paid backend: the step's static inputs say), keeping the best
(not one that must end on a pinned frame: an edit would move it). Segments are joined with
a match cut into the scene's clip.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from storyc.backends.base import CallResult, JudgeRequest, VideoRequest
from storyc.media.assemble import Clip, assemble, assemble_picture
from storyc.media.probe import extract_frame, probe
from storyc.model.clips import Segment, clip_plan
from storyc.model.prices import chat_cost, video_cost
from storyc.model.story import VIDEO_EDIT_MAX_S
from storyc.model.vision import ConsistencyScore
from storyc.prompts.slots import Slot, allocate_slots, judge_characters
from storyc.run.calls import Judged, StepRun, provider_urls
from storyc.run.context import BuildContext
from storyc.run.outcome import StepOutcome, StepResult

DRIFT_MARGIN = 0.05  # a last frame this much below its keyframe's score has drifted


@dataclass
class _Clip:
    """One judged clip: its file, its frames, its score and the call that made it."""

    path: Path
    first: Path
    last: Path
    score: ConsistencyScore
    result: CallResult


def run_video(ctx: BuildContext, run: StepRun) -> StepResult:
    return _ClipLoop(ctx, run).execute()


def _spoken_hints(up: Mapping[str, StepOutcome], scene_id: int) -> dict[str, Any]:
    """The scene's lines as its speech step placed them, for the offline animatic's caption
    band: `lines` as [{speaker, text, start_s, end_s}], when the clip depends on that step
    (the graph makes it so offline without subtitles: storyc.graph.builder.captions_in_clip)."""
    speech = up.get(f"speech:{scene_id}")
    if speech is None:
        return {}
    return {
        "lines": [
            {"speaker": line.speaker, "text": line.text, "start_s": line.start_s, "end_s": line.end_s}
            for line in speech.record.lines
        ]
    }


def _lines_from(hints: Mapping[str, Any], offset_s: float, duration_s: float) -> dict[str, Any]:
    """A part of a long scene's clip (a segment, an extension) starting `offset_s` into the
    scene: the scene's timed lines that show in it, on its own clock."""
    if "lines" not in hints:
        return {}
    shifted = [
        {**line, "start_s": round(line["start_s"] - offset_s, 6), "end_s": round(line["end_s"] - offset_s, 6)}
        for line in hints["lines"]
    ]
    return {"lines": [line for line in shifted if line["end_s"] > 0 and line["start_s"] < duration_s]}


def _slot_hint(slot: Slot) -> dict[str, Any]:
    return {"kind": slot.kind, "name": slot.name}


class _ClipLoop:
    def __init__(self, ctx: BuildContext, run: StepRun):
        assert run.step.scene_index is not None, run.step.id  # every video step has its scene
        self.ctx, self.run, self.index = ctx, run, run.step.scene_index
        story = ctx.story
        self.scene = story.scenes[self.index]
        self.plan = clip_plan(story, self.index)
        up = ctx.upstream(run.step)
        self.keyframe = ctx.output(f"keyframe:{self.scene.scene_id}", "keyframe")
        # A correction fixes drift *during* the clip: a last frame that scores about as well as
        # the keyframe it started from (say, a keyframe whose own loop ended below the
        # threshold) did not drift, and a video edit cannot make it better than its start.
        self.start_score = up[f"keyframe:{self.scene.scene_id}"].record.score  # None for a pinned keyframe
        self.judged = tuple(n for n in judge_characters(story, self.index) if f"character:{n}" in up)
        self.judge_refs = tuple(ctx.output(f"character:{n}", "sheet") for n in self.judged)
        # the resolution and the corrections are the step's (a draft's clips on a paid
        # backend are 480p, with no corrections: storyc build --draft)
        static = run.step.static
        self.plan = replace(self.plan, resolution=str(static["clip"]["resolution"]))
        self.corrections = int(static["quality"]["corrections"])
        self.prompts = static["prompts"]
        self.check = self.prompts["check"]
        run.prompts.update(self.prompts)
        slots = allocate_slots(story, self.index)
        self.video_refs = slots.video_references
        self.end_frame = ctx.output(f"keyframe:{self.plan.end_on}", "keyframe") if self.plan.end_on else None
        self.hints: dict[str, Any] = {
            "step_id": run.step.id,
            "step": "video",
            "scene_id": self.scene.scene_id,
            "title": self.scene.title,
            "camera": self.scene.camera,
            "action": self.scene.action,
            "mood": self.scene.mood,
            "setting": self.scene.setting,
            # the figures left to right, as in the keyframe (the offline animatic's name tags)
            "slots": [_slot_hint(s) for s in slots.slots if s.kind == "character"],
            "text_only": list(slots.text_only),
            **_spoken_hints(up, self.scene.scene_id),
        }
        if self.plan.mode == "reference":  # the offline renderer composes the start from these
            self.hints |= {
                "palette": story.color_palette,
                "characters": {
                    n: character.visual_description
                    for n in self.judged
                    if (character := story.character(n)) is not None  # judged ones are the story's
                },
                "text_only": list(slots.video_text_only),
            }
        if story.quality.turnaround:
            self.hints["turnaround"] = True
        if self.plan.end_on is not None:
            child = story.scenes[story.scene_index(self.plan.end_on) or 0]
            self.hints["end_camera"] = child.camera  # the next clip frames its first frame so
        # a story with sound says whether clips make their own and which voices they speak in
        # (the graph gives voices only to a clip of one generation: storyc.model.speech)
        audio = run.step.static.get("audio", {})
        self.generate_audio: bool = audio.get("generate", True)
        self.voices = tuple(v["voice"] for v in audio.get("voices", []))

    def _ref_path(self, slot: Slot) -> Path:
        if slot.kind == "location":
            return self.ctx.output(f"location:{slot.name}", "plate")
        return self.ctx.output(f"character:{slot.name}", "sheet")

    def execute(self) -> StepResult:
        pieces: list[_Clip] = []
        corrections = 0
        start: Path | None = self.keyframe
        for segment in self.plan.segments:
            clip, fixed = self._segment(segment, start)
            pieces.append(clip)
            corrections += fixed
            start = clip.last
        if len(pieces) == 1:
            final = pieces[0]
            first, last = final.first, final.last
        else:
            final = pieces[-1]
            first, last = self._joined(pieces)
        video = self.ctx.path(f"videos/scene_{self.scene.scene_id}.mp4") if len(pieces) > 1 else final.path
        duration = float(self.scene.duration_seconds)
        with contextlib.suppress(Exception):
            duration = round(probe(video).duration_s, 3)
        worst = min(pieces, key=lambda c: c.score.overall_score)
        return StepResult(
            {"video": self.run.rel(video), "first_frame": self.run.rel(first), "last_frame": self.run.rel(last)},
            worst.score.overall_score,
            attempts=self.plan.generations + self.plan.extensions + corrections,
            edit_passes=corrections,
            urls=provider_urls("video", final.result) if len(pieces) == 1 else {},
            duration_s=duration,
        )

    def _joined(self, pieces: list[_Clip]) -> tuple[Path, Path]:
        """The segments joined with match cuts (no paid call): the scene's clip and its frames."""
        dest = self.ctx.path(f"videos/scene_{self.scene.scene_id}.mp4")
        info = probe(pieces[0].path)
        clips = [Clip(p.path, probe(p.path).duration_s, "match-cut") for p in pieces]
        # silent clips stay silent (an extension on xAI cannot be asked for silence: its sound goes)
        (assemble if self.generate_audio else assemble_picture)(clips, dest, info.width, info.height)
        self.run.keep(dest)
        first = self.ctx.path(f"frames/scene_{self.scene.scene_id}_first.jpg")
        last = self.ctx.path(f"frames/scene_{self.scene.scene_id}_last.jpg")
        extract_frame(dest, first, "first")
        extract_frame(dest, last, "last")
        self.run.keep(first)
        self.run.keep(last)
        return first, last

    def _drifted(self, score: ConsistencyScore) -> bool:
        return self.start_score is None or score.overall_score < self.start_score - DRIFT_MARGIN

    def _request(self, prompt: str, dest: Path, **fields: Any) -> VideoRequest:
        story = self.ctx.story
        return VideoRequest(
            prompt=prompt,
            model=story.models.video,
            dest=dest,
            aspect_ratio=story.aspect_ratio,
            resolution=self.plan.resolution,
            generate_audio=self.generate_audio,
            **fields,
        )

    def _stem(self, segment: Segment) -> str:
        """`scene_3` for a clip of one generation (the seed's names), `scene_3_s2` for a segment."""
        return f"scene_{self.scene.scene_id}" + (f"_s{segment.number}" if self.plan.long else "")

    def _segment(self, segment: Segment, start: Path | None) -> tuple[_Clip, int]:
        """One segment: its generation and extensions, judged; corrected where it may be.
        Returns the best clip and the corrections made."""
        clip = self._generation(segment, start)
        for k, seconds in enumerate(segment.extensions, start=1):
            clip_path, result = self._extension(segment, clip, k, seconds)
            clip = clip_path, result
        path, result = clip
        q = self.ctx.story.quality
        pinned = self.plan.end_on is not None and segment.number == len(self.plan.segments)
        stem = self._stem(segment)
        if pinned:  # it ends on the next scene's keyframe, which that keyframe's own check verified
            return self._ends_on_keyframe(path, result), 0
        current = best = self._judged(path, result, 1 + len(segment.extensions))
        corrections = 0
        while (
            current.score.overall_score < q.consistency_threshold
            and segment.seconds <= VIDEO_EDIT_MAX_S
            and not pinned
            and self._drifted(current.score)
            and corrections < self.corrections
        ):
            corrections += 1
            current = self._correction(best.path, current.score, corrections, stem, segment.seconds)
            if current.score.overall_score > best.score.overall_score:
                best = current
        return best, corrections

    def _generation(self, segment: Segment, start: Path | None) -> tuple[Path, CallResult]:
        ctx, run = self.ctx, self.run
        backend = ctx.require_backend()
        stem = self._stem(segment)
        dest = ctx.path(f"videos/{stem}.mp4")
        first = segment.number == 1
        reference_mode = segment.mode == "reference"
        refs = tuple(
            self._ref_path(s) for s in self.video_refs if reference_mode or s.kind == "character"
        )  # the sheets (and, without a first frame, the plate) as the prompt numbers them
        image = None if reference_mode else start
        last_frame = self.end_frame if segment.number == len(self.plan.segments) else None
        prompt = self.prompts["video"] if first else self.prompts[f"video_s{segment.number}"]
        hints = {**self.hints, "attempt": 1}
        if reference_mode:
            hints["slots"] = [_slot_hint(s) for s in self.video_refs]
        if not first:
            hints |= {"segment": segment.number, "start_s": segment.start_s}
        if self.plan.long:
            hints |= _lines_from(self.hints, segment.start_s, segment.base_s)
        what = "image→video" if not self.plan.long else f"segment {segment.number}"
        if reference_mode:
            what = "reference→video" if not self.plan.long else f"segment {segment.number} (references)"

        def make(p: str) -> CallResult:
            req = self._request(
                p,
                dest,
                image=image,
                references=refs,
                last_frame=last_frame,
                duration_s=segment.base_s,
                hints=hints,
                progress=_progress(ctx, run.step.id, what),
                voices=self.voices if first else (),
            )
            key = "clip" if first else f"s{segment.number}"
            return backend.image_to_video(req, job_key=f"{run.key[:20]}:{key}", journal=ctx.journal)

        sent = (*((image,) if image is not None else ()), *refs, *((last_frame,) if last_frame else ()))
        params: dict[str, Any] = {}
        if self.plan.long:
            params["segment"] = segment.number
        if refs or last_frame is not None:
            params["mode"] = segment.mode
            params["end_on"] = self.plan.end_on if last_frame is not None else None
        result = run.call(
            "video",
            what,
            make,
            prompt=prompt,
            refs=sent,
            dest=dest,
            estimate=video_cost(segment.base_s, self.plan.resolution, ctx.story.models.video),
            params=params,
        )
        run.keep(dest)
        return dest, result

    def _extension(
        self, segment: Segment, clip: tuple[Path, CallResult], k: int, seconds: int
    ) -> tuple[Path, CallResult]:
        """`video.extend`: the clip so far continued by `seconds` (the output holds both)."""
        ctx, run = self.ctx, self.run
        backend = ctx.require_backend()
        source = clip[0]
        dest = ctx.path(f"videos/{self._stem(segment)}_e{k}.mp4")
        what = f"extension {segment.number}.{k}"
        hints = {**self.hints, "step": "video_extend", "attempt": 1, "segment": segment.number, "extension": k}
        offset = segment.start_s + segment.base_s + sum(segment.extensions[: k - 1])
        hints |= _lines_from(self.hints, offset, seconds)

        def extend(p: str) -> CallResult:
            req = self._request(
                p, dest, video=source, duration_s=seconds, hints=hints, progress=_progress(ctx, run.step.id, what)
            )
            return backend.extend_video(req, job_key=f"{run.key[:20]}:s{segment.number}e{k}", journal=ctx.journal)

        result = run.call(
            "video",
            what,
            extend,
            prompt=self.prompts["extend"],
            refs=(source,),
            dest=dest,
            estimate=video_cost(seconds, self.plan.resolution, ctx.story.models.video),
            params={"segment": segment.number, "extension": k, "seconds": seconds},
        )
        run.keep(dest)
        return dest, result

    def _correction(self, source: Path, score: ConsistencyScore, n: int, stem: str, seconds: int) -> _Clip:
        """Video edit n of the best clip so far, against the issues its check found."""
        ctx, run = self.ctx, self.run
        backend = ctx.require_backend()
        fix = ctx.prompts.video_fix(
            self.index, list(score.issues) or [score.fix_prompt or "keep every character on model"]
        )
        label = f"c{n}" if not self.plan.long else f"{stem.rsplit('_', 1)[-1]}c{n}"
        run.prompts[f"fix_{label}" if self.plan.long else f"fix_{n}"] = fix
        dest = ctx.path(f"videos/{stem}_c{n}.mp4")
        hints = {**self.hints, "step": "video_fix", "attempt": 1 + n, "issues": list(score.issues)}
        what = f"correction {label}"

        def edit(p: str) -> CallResult:
            req = self._request(
                p,
                dest,
                video=source,
                duration_s=seconds,
                hints=hints,
                progress=_progress(ctx, run.step.id, what),
            )
            return backend.edit_video(req, job_key=f"{run.key[:20]}:{label}", journal=ctx.journal)

        result = run.call(
            "video",
            what,
            edit,
            prompt=fix,
            refs=(source,),
            dest=dest,
            # a video edit bills its input seconds too
            estimate=video_cost(seconds, self.plan.resolution, ctx.story.models.video, input_s=seconds),
            params={"correction": n} if not self.plan.long else {"correction": n, "stem": stem},
        )
        return self._judged(dest, result, 1 + n)

    def _kept_with_frames(self, clip: Path) -> tuple[str, Path, Path]:
        """Keep `clip` and its extracted first and last frames: (its kept path, first, last)."""
        ctx, run = self.ctx, self.run
        rel = run.keep(clip)
        first = ctx.path(f"frames/{clip.stem}_first.jpg")
        last = ctx.path(f"frames/{clip.stem}_last.jpg")
        extract_frame(clip, first, "first")
        extract_frame(clip, last, "last")
        run.keep(first)
        run.keep(last)
        return rel, first, last

    def _ends_on_keyframe(self, clip: Path, result: CallResult) -> _Clip:
        """A clip pinned to end on the next scene's keyframe: its last frame is that keyframe,
        already judged by its own step, so it is not judged again (and not corrected: an edit
        would move it off the frame); it scores what that keyframe scored."""
        ctx, run = self.ctx, self.run
        rel, first, last = self._kept_with_frames(clip)
        end = ctx.outcomes[f"keyframe:{self.plan.end_on}"].record.score
        score = ConsistencyScore(overall_score=1.0 if end is None else end, per_character={}, issues=[])
        run.attempt_scores[rel] = score.overall_score
        return _Clip(clip, first, last, score, result)

    def _judged(self, clip: Path, result: CallResult, attempt: int) -> _Clip:
        """Keep the clip, extract its first and last frames, and drift-check the last one."""
        ctx, run = self.ctx, self.run
        backend = ctx.require_backend()
        rel, first, last = self._kept_with_frames(clip)
        hints = {**self.hints, "step": "check_last_frame", "attempt": attempt}
        if self.plan.mode == "reference":
            hints["slots"] = [_slot_hint(s) for s in self.video_refs]

        def judge(p: str) -> Judged:
            request = JudgeRequest(
                kind="last_frame",
                prompt=p,
                model=ctx.story.models.vision,
                image=last,
                references=self.judge_refs,
                names=self.judged,
                hints=hints,
            )
            return backend.judge(request)

        suffix = clip.stem.removeprefix(f"scene_{self.scene.scene_id}")
        score = run.check(
            f"drift check{suffix}",
            judge,
            prompt=self.check,
            refs=(last, *self.judge_refs),
            estimate=chat_cost(None, n_images=1 + len(self.judge_refs), model=ctx.story.models.vision),
        )
        run.attempt_scores[rel] = score.overall_score
        return _Clip(clip, first, last, score, result)


def _progress(ctx: BuildContext, step_id: str, what: str) -> Callable[[int], None]:
    """A video job's progress (0-100, as the provider reports it) as a progress-line event."""
    return lambda percent: ctx.emit("call_progress", step=step_id, kind="video", what=what, percent=percent)
