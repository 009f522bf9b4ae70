"""The keyframe step: compose from the slot references, check, targeted fix edit,
re-check, regenerate, up to max_keyframe_iterations keeping the best. (A pinned
keyframe_image is a pinned step: storyc.run.pinned.)"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyc.backends.base import JudgeRequest
from storyc.model.prices import chat_cost, image_cost
from storyc.model.story import Character, Scene
from storyc.model.vision import ConsistencyScore
from storyc.prompts.slots import Slot, SlotPlan, allocate_slots, judge_characters
from storyc.run.calls import Judged, StepRun, image_call, provider_urls
from storyc.run.candidates import Candidate, best, best_of
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult

# The fix_edit template already says "Change ONLY <element>: ... Keep everything else
# identical. Do not alter any character not mentioned."; a judge asked for a fix_prompt
# "of the form Change ONLY <element>: <fix>" returns that frame too, so it is unwrapped
# here rather than sent twice.
_CHANGE_ONLY = re.compile(r"^\s*change\s+only\s+(?:(?P<element>[^:]{1,120}):\s*)?(?P<fix>.*)$", re.I | re.S)
_BOILERPLATE = re.compile(
    r"\s*(keep everything else (?:exactly )?identical|do not (?:alter|change) (?:any|anything|any character)[^.]*?not mentioned)\s*[.!]?",
    re.I,
)


def fix_target(score: ConsistencyScore) -> tuple[str, str, str]:
    """What a targeted fix edit should change: (the worst-scoring character, the element
    to name in the edit prompt, the fix itself without the template's own framing)."""
    character = min(score.per_character, key=score.per_character.__getitem__) if score.per_character else "the scene"
    element, fix = character, score.fix_prompt or ""
    match = _CHANGE_ONLY.match(fix)
    if match:
        element = (match.group("element") or "").strip() or character
        fix = match.group("fix")
        # the judge's own element ("Sage's ribbon") names whose sheet anchors the fix
        named = [n for n in score.per_character if re.match(rf"{re.escape(n)}\b", element)]
        character = max(named, key=len) if named else character
    fix = _BOILERPLATE.sub(" ", fix).strip()
    if fix.rstrip(" .") in (element, character):  # "Change ONLY Ember." says what, not how
        fix = ""
    if not fix:
        fix = "; ".join(score.issues) or "match the reference images exactly"
    return character, element, fix


def run_keyframe(ctx: BuildContext, run: StepRun) -> StepResult:
    scene = ctx.story.scenes[_scene_index(run)]
    ctx.upstream(run.step)  # every dependency finished (MissingUpstream otherwise)
    return _KeyframeLoop(ctx, run, scene).execute()


def _scene_index(run: StepRun) -> int:
    assert run.step.scene_index is not None, run.step.id  # every keyframe step has its scene
    return run.step.scene_index


@dataclass
class _Try:
    """The next image call of the loop: a composition, or a fix edit of the best so far."""

    action: str  # "compose" | "fix"
    prompt: str
    refs: tuple[Path, ...]
    hints: dict[str, Any]


class _KeyframeLoop:
    """compose → check → fix → check → compose ...: a fix only follows a fresh composition."""

    def __init__(self, ctx: BuildContext, run: StepRun, scene: Scene):
        self.ctx, self.run, self.scene = ctx, run, scene
        story, index = ctx.story, _scene_index(run)
        slots = allocate_slots(story, index)
        self.refs = tuple(self._slot_image(slot) for slot in slots.slots)
        self.judged = judge_characters(story, index)
        self.judge_refs = tuple(ctx.output(f"character:{n}", "sheet") for n in self.judged)
        self.compose = run.step.static["prompts"]["compose"]
        self.check = run.step.static["prompts"]["check"]
        run.prompts.update(compose=self.compose, check=self.check)
        self.hints = self._hints(slots)

    def _slot_image(self, slot: Slot) -> Path:
        """The reference image in a slot: a character's sheet, a location's plate, or the chain
        source's frame (its keyframe for a seamless cut: its clip comes after this keyframe)."""
        if slot.kind == "character":
            return self.ctx.output(f"character:{slot.name}", "sheet")
        if slot.kind == "location":
            return self.ctx.output(f"location:{slot.name}", "plate")
        if slot.source == "last_frame":
            return self.ctx.output(f"video:{slot.scene_id}", "last_frame")
        return self.ctx.output(f"keyframe:{slot.scene_id}", "keyframe")

    def _hints(self, slots: SlotPlan) -> dict[str, Any]:
        story, scene = self.ctx.story, self.scene
        return {
            "step_id": self.run.step.id,
            "step": "keyframe",
            "scene_id": scene.scene_id,
            "setting": scene.setting,
            "mood": scene.mood,
            "palette": story.color_palette,
            "camera": scene.camera,
            "action": scene.action,
            "slots": [
                {"kind": s.kind, "name": s.name} if s.kind != "chain" else {"kind": s.kind, "scene_id": s.scene_id}
                for s in slots.slots
            ],
            "text_only": list(slots.text_only),
            "characters": {n: _description(story.character(n)) for n in self.judged},
            **({"turnaround": True} if story.quality.turnaround else {}),
        }

    def execute(self) -> StepResult:
        q = self.ctx.story.quality
        kept: Candidate | None = None  # the best keyframe so far
        to_fix: ConsistencyScore | None = None  # the check that asks for a fix edit of the best
        edits = 0
        iteration = 0
        for iteration in range(1, q.max_keyframe_iterations + 1):
            if kept is not None and to_fix is not None:
                made, action = [self._fixed(kept.path, to_fix, iteration)], "fix"
                edits += 1
            else:
                made, action = self._composed(iteration), "compose"
            top = best(made)
            if kept is None or top.value > kept.value:
                kept = top
            if kept.value >= q.consistency_threshold:
                break
            fixable = top.score.issues or top.score.fix_prompt or top.score.per_character
            to_fix = top.score if action == "compose" and fixable else None
        assert kept is not None  # max_keyframe_iterations >= 1
        return StepResult(
            {"keyframe": kept.rel},
            kept.value,
            attempts=iteration,
            edit_passes=edits,
            urls=provider_urls("keyframe", kept.result),
        )

    def _composed(self, iteration: int) -> list[Candidate]:
        """A fresh composition: quality.keyframe_candidates candidates in one request, each judged."""
        n = int(self.run.step.static["quality"]["candidates"])  # 1 in a paid --draft
        return best_of(
            self.ctx,
            self.run,
            what=f"compose v{iteration}",
            dest=self.ctx.path(f"keyframes/scene_{self.scene.scene_id}_v{iteration}.jpg"),
            refs=self.refs,
            prompt=self.compose,
            hints={**self.hints, "attempt": iteration},
            n=n,
            params={"iteration": iteration, "action": "compose", **({"candidates": n} if n > 1 else {})},
            judge=lambda path, suffix: self._judge(path, iteration, suffix),
        )

    def _fixed(self, source: Path, score: ConsistencyScore, iteration: int) -> Candidate:
        """A targeted fix edit of the best keyframe so far, judged."""
        ctx, run = self.ctx, self.run
        attempt = self._fix(source, score, iteration)
        dest = ctx.path(f"keyframes/scene_{self.scene.scene_id}_v{iteration}.jpg")
        result = run.call(
            "image",
            f"fix v{iteration}",
            image_call(ctx, dest, attempt.refs, {**self.hints, **attempt.hints, "attempt": iteration}),
            prompt=attempt.prompt,
            refs=attempt.refs,
            dest=dest,
            estimate=image_cost(len(attempt.refs), ctx.story.models.image),
            params={"iteration": iteration, "action": "fix"},
        )
        rel = run.keep(dest)
        judged = self._judge(dest, iteration)
        run.attempt_scores[rel] = judged.overall_score
        return Candidate(dest, rel, judged, result)

    def _fix(self, source: Path, score: ConsistencyScore, iteration: int) -> _Try:
        """A targeted fix edit of `source`, re-anchored on the character's sheet."""
        character, element, fix = fix_target(score)
        sheet = self.judge_refs[self.judged.index(character)] if character in self.judged else None
        # design technique 7: fix against the sheet (input 2), not from memory
        prompt = self.ctx.prompts.fix_edit(element, fix, sheet_of=character if sheet is not None else None)
        self.run.prompts[f"fix_{iteration}"] = prompt
        refs = (source, sheet) if sheet is not None else (source,)
        return _Try("fix", prompt, refs, {"step": "fix", "element": character, "fix": fix})

    def _judge(self, dest: Path, iteration: int, suffix: str = "") -> ConsistencyScore:
        story, backend = self.ctx.story, self.ctx.require_backend()
        hints = {**self.hints, "step": "check_keyframe", "attempt": iteration}
        if suffix:
            hints["candidate"] = suffix.strip()

        def judge(p: str) -> Judged:
            request = JudgeRequest(
                kind="keyframe",
                prompt=p,
                model=story.models.vision,
                image=dest,
                references=self.judge_refs,
                names=tuple(self.judged),
                hints=hints,
            )
            return backend.judge(request)

        score = self.run.check(
            f"check v{iteration}{suffix}",
            judge,
            prompt=self.check,
            refs=(dest, *self.judge_refs),
            estimate=chat_cost(None, n_images=1 + len(self.judge_refs), model=story.models.vision),
        )
        return score


def _description(character: Character | None) -> str:
    return character.visual_description if character is not None else ""
