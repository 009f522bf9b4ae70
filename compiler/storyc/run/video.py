"""The video step: image → video, extract the first and last frames, drift check on the
last frame, and video-edit corrections (only when the clip is at most 8.7 s and its last
frame scores below its keyframe's, i.e. it drifted) up to max_video_corrections (none in a
`storyc build --draft` on a paid backend: the step's static inputs say), keeping the best clip."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyc.backends.base import CallResult, JudgeRequest, VideoRequest
from storyc.media.probe import extract_frame, probe
from storyc.model.prices import chat_cost, video_cost
from storyc.model.story import VIDEO_EDIT_MAX_S, Scene
from storyc.model.vision import ConsistencyScore
from storyc.prompts.slots import allocate_slots, judge_characters
from storyc.run.calls import Judged, StepRun, provider_urls
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult

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


def _spoken_hints(scene: Scene) -> dict[str, Any]:
    """What the scene says, for the offline animatic's subtitles: `dialogue` as
    [{speaker, line}] and `narration`, each only when the scene has it."""
    out: dict[str, Any] = {}
    if scene.dialogue:
        out["dialogue"] = [{"speaker": d.speaker, "line": d.line} for d in scene.dialogue]
    if scene.narration:
        out["narration"] = scene.narration
    return out


class _ClipLoop:
    def __init__(self, ctx: BuildContext, run: StepRun):
        assert run.step.scene_index is not None, run.step.id  # every video step has its scene
        self.ctx, self.run, self.index = ctx, run, run.step.scene_index
        self.scene = ctx.story.scenes[self.index]
        up = ctx.upstream(run.step)
        self.keyframe = ctx.output(f"keyframe:{self.scene.scene_id}", "keyframe")
        # A correction fixes drift *during* the clip: a last frame that scores about as well as
        # the keyframe it started from (say, a keyframe whose own loop ended below the
        # threshold) did not drift, and a video edit cannot make it better than its start.
        self.start_score = up[f"keyframe:{self.scene.scene_id}"].record.score  # None for a pinned keyframe
        self.judged = tuple(n for n in judge_characters(ctx.story, self.index) if f"character:{n}" in up)
        self.judge_refs = tuple(ctx.output(f"character:{n}", "sheet") for n in self.judged)
        # a draft's clips (storyc build --draft on a paid backend) are 480p, with no corrections
        self.resolution = str(run.step.static["resolution"])
        self.corrections = int(run.step.static["quality"]["corrections"])
        self.prompt = run.step.static["prompts"]["video"]
        self.check = run.step.static["prompts"]["check"]
        run.prompts.update(video=self.prompt, check=self.check)
        slots = allocate_slots(ctx.story, self.index)
        self.hints = {
            "step_id": run.step.id,
            "step": "video",
            "scene_id": self.scene.scene_id,
            "title": self.scene.title,
            "camera": self.scene.camera,
            "action": self.scene.action,
            "mood": self.scene.mood,
            "setting": self.scene.setting,
            # the figures left to right, as in the keyframe (the offline animatic's name tags)
            "slots": [{"kind": s.kind, "name": s.name} for s in slots.slots if s.kind == "character"],
            "text_only": list(slots.text_only),
            **_spoken_hints(self.scene),
        }

    def execute(self) -> StepResult:
        q = self.ctx.story.quality
        clip = best = self._first_clip()
        corrections = 0
        correctable = self.scene.duration_seconds <= VIDEO_EDIT_MAX_S
        while (
            clip.score.overall_score < q.consistency_threshold
            and correctable
            and self._drifted(clip.score)
            and corrections < self.corrections
        ):
            corrections += 1
            clip = self._correction(best.path, clip.score, corrections)
            if clip.score.overall_score > best.score.overall_score:
                best = clip
        duration = float(self.scene.duration_seconds)
        with contextlib.suppress(Exception):
            duration = round(probe(best.path).duration_s, 3)
        video = self.run.rel(best.path)
        return StepResult(
            {"video": video, "first_frame": self.run.rel(best.first), "last_frame": self.run.rel(best.last)},
            best.score.overall_score,
            attempts=1 + corrections,
            edit_passes=corrections,
            urls=provider_urls("video", best.result),
            duration_s=duration,
        )

    def _drifted(self, score: ConsistencyScore) -> bool:
        return self.start_score is None or score.overall_score < self.start_score - DRIFT_MARGIN

    def _request(self, prompt: str, dest: Path, **fields: Any) -> VideoRequest:
        story = self.ctx.story
        return VideoRequest(
            prompt=prompt,
            model=story.models.video,
            dest=dest,
            duration_s=self.scene.duration_seconds,
            aspect_ratio=story.aspect_ratio,
            resolution=self.resolution,
            **fields,
        )

    def _first_clip(self) -> _Clip:
        ctx, run = self.ctx, self.run
        backend = ctx.require_backend()
        dest = ctx.path(f"videos/scene_{self.scene.scene_id}.mp4")

        def make(p: str) -> CallResult:
            req = self._request(
                p,
                dest,
                image=self.keyframe,
                hints={**self.hints, "attempt": 1},
                progress=_progress(ctx, run.step.id, "image→video"),
            )
            return backend.image_to_video(req, job_key=f"{run.key[:20]}:clip", journal=ctx.journal)

        result = run.call(
            "video",
            "image→video",
            make,
            prompt=self.prompt,
            refs=(self.keyframe,),
            dest=dest,
            estimate=video_cost(self.scene.duration_seconds, self.resolution, ctx.story.models.video),
        )
        return self._judged(dest, result, "", 1)

    def _correction(self, source: Path, score: ConsistencyScore, n: int) -> _Clip:
        """Video edit n of the best clip so far, against the issues its check found."""
        ctx, run = self.ctx, self.run
        backend = ctx.require_backend()
        fix = ctx.prompts.video_fix(
            self.index, list(score.issues) or [score.fix_prompt or "keep every character on model"]
        )
        run.prompts[f"fix_{n}"] = fix
        dest = ctx.path(f"videos/scene_{self.scene.scene_id}_c{n}.mp4")
        hints = {**self.hints, "step": "video_fix", "attempt": 1 + n, "issues": list(score.issues)}

        def edit(p: str) -> CallResult:
            req = self._request(
                p, dest, video=source, hints=hints, progress=_progress(ctx, run.step.id, f"correction c{n}")
            )
            return backend.edit_video(req, job_key=f"{run.key[:20]}:c{n}", journal=ctx.journal)

        result = run.call(
            "video",
            f"correction c{n}",
            edit,
            prompt=fix,
            refs=(source,),
            dest=dest,
            # a video edit bills its input seconds too
            estimate=video_cost(
                self.scene.duration_seconds,
                self.resolution,
                ctx.story.models.video,
                input_s=self.scene.duration_seconds,
            ),
            params={"correction": n},
        )
        return self._judged(dest, result, f"_c{n}", 1 + n)

    def _judged(self, clip: Path, result: CallResult, suffix: str, attempt: int) -> _Clip:
        """Keep the clip, extract its first and last frames, and drift-check the last one."""
        ctx, run = self.ctx, self.run
        backend = ctx.require_backend()
        rel = run.keep(clip)
        first = ctx.path(f"frames/scene_{self.scene.scene_id}{suffix}_first.jpg")
        last = ctx.path(f"frames/scene_{self.scene.scene_id}{suffix}_last.jpg")
        extract_frame(clip, first, "first")
        extract_frame(clip, last, "last")
        run.keep(first)
        run.keep(last)
        hints = {**self.hints, "step": "check_last_frame", "attempt": attempt}

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
