"""The character step: generate the sheet (or stylise the user's reference_image by an
edit), vision-verify it, retry up to max_character_attempts keeping the best."""

from __future__ import annotations

from pathlib import Path

from storyc.backends.base import JudgeRequest
from storyc.model.prices import chat_cost, image_cost
from storyc.run.calls import Judged, StepRun, image_call, provider_urls
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult


def run_character(ctx: BuildContext, run: StepRun) -> StepResult:
    story, step = ctx.story, run.step
    c = story.character(step.character or "")
    assert c is not None, step.id  # the graph makes a step per declared character
    backend = ctx.require_backend()
    reference = (ctx.base_dir / c.reference_image) if c.reference_image else None
    refs = (reference,) if reference else ()
    prompt = step.static["prompts"]["sheet"]
    check = step.static["prompts"]["check"]
    run.prompts.update(sheet=prompt, check=check)
    hints = {"step_id": step.id, "step": "character", "name": c.name, "visual_description": c.visual_description}
    best: StepResult | None = None
    for attempt in range(1, story.quality.max_character_attempts + 1):
        dest = ctx.path(f"character_sheets/{c.name}_v{attempt}.jpg")
        result = run.call(
            "image",
            f"sheet v{attempt}",
            image_call(ctx, dest, refs, {**hints, "attempt": attempt}),
            prompt=prompt,
            refs=refs,
            dest=dest,
            estimate=image_cost(len(refs), story.models.image),
            params={"attempt": attempt},
        )
        rel = run.keep(dest)
        judge_hints = {**hints, "step": "check_sheet", "attempt": attempt}

        def judge(p: str, dest: Path = dest, judge_hints: dict = judge_hints) -> Judged:
            return backend.judge(
                JudgeRequest(
                    kind="sheet",
                    prompt=p,
                    model=story.models.vision,
                    image=dest,
                    references=refs,
                    names=(c.name,),
                    hints=judge_hints,
                )
            )

        score = run.check(
            f"check sheet v{attempt}",
            judge,
            prompt=check,
            refs=(dest,),
            estimate=chat_cost(None, n_images=1, model=story.models.vision),
        )
        run.attempt_scores[rel] = score.overall_score
        if best is None or best.score is None or score.overall_score > best.score:
            best = StepResult({"sheet": rel}, score.overall_score, attempt, urls=provider_urls("sheet", result))
        if score.overall_score >= story.quality.consistency_threshold:
            break
    assert best is not None  # max_character_attempts >= 1
    return StepResult(best.outputs, best.score, attempt, urls=best.urls)
