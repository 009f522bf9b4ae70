"""The character step: generate the sheet (or stylise the user's reference_image by an
edit), `quality.sheet_candidates` per request, vision-verify every candidate, retry up to
max_character_attempts keeping the best. The location step (run/location.py) makes a
location's plate the same way."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from storyc.backends.base import JudgeKind, JudgeRequest
from storyc.model.prices import chat_cost
from storyc.model.vision import ConsistencyScore
from storyc.run.calls import Judged, StepRun, provider_urls
from storyc.run.candidates import Candidate, best, best_of
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult


def run_character(ctx: BuildContext, run: StepRun) -> StepResult:
    story, step = ctx.story, run.step
    c = story.character(step.character or "")
    assert c is not None, step.id  # the graph makes a step per declared character
    hints = {
        "step_id": step.id,
        "step": "character",
        "name": c.name,
        "visual_description": c.visual_description,
        **({"turnaround": True} if story.quality.turnaround else {}),
    }
    return verified_picture(
        ctx,
        run,
        name=c.name,
        role="sheet",
        folder=f"character_sheets/{c.name}",
        reference=(ctx.base_dir / c.reference_image) if c.reference_image else None,
        judge_kind="sheet",
        hints=hints,
    )


def verified_picture(
    ctx: BuildContext,
    run: StepRun,
    *,
    name: str,
    role: str,
    folder: str,
    reference: Path | None,
    judge_kind: JudgeKind,
    hints: Mapping[str, Any],
) -> StepResult:
    """A picture of one subject (a sheet, a plate): generated from the step's `sheet`/`plate`
    prompt, N candidates per request, each judged with the `check` prompt, until one passes
    or the attempts run out; the best is kept."""
    story, step = ctx.story, run.step
    backend = ctx.require_backend()
    refs = (reference,) if reference else ()
    prompt = step.static["prompts"][role]
    check = step.static["prompts"]["check"]
    run.prompts.update({role: prompt, "check": check})
    n = int(step.static["quality"]["candidates"])  # best-of-N (1 in a paid --draft)
    kept: Candidate | None = None
    attempt = 0
    for attempt in range(1, story.quality.max_character_attempts + 1):
        attempt_hints = {**hints, "attempt": attempt}

        def judge(path: Path, suffix: str, attempt: int = attempt) -> ConsistencyScore:
            judge_hints = {**hints, "step": f"check_{judge_kind}", "attempt": attempt}
            if suffix:
                judge_hints["candidate"] = suffix.strip()

            def ask(p: str) -> Judged:
                return backend.judge(
                    JudgeRequest(
                        kind=judge_kind,
                        prompt=p,
                        model=story.models.vision,
                        image=path,
                        references=refs,
                        names=(name,),
                        hints=judge_hints,
                    )
                )

            return run.check(
                f"check {role} v{attempt}{suffix}",
                ask,
                prompt=check,
                refs=(path,),
                estimate=chat_cost(None, n_images=1, model=story.models.vision),
            )

        made = best_of(
            ctx,
            run,
            what=f"{role} v{attempt}",
            dest=ctx.path(f"{folder}_v{attempt}.jpg"),
            refs=refs,
            prompt=prompt,
            hints=attempt_hints,
            n=n,
            params={"attempt": attempt, **({"candidates": n} if n > 1 else {})},
            judge=judge,
        )
        top = best(made)
        if kept is None or top.value > kept.value:
            kept = top
        if kept.value >= story.quality.consistency_threshold:
            break
    assert kept is not None  # max_character_attempts >= 1
    return StepResult({role: kept.rel}, kept.value, attempt, urls=provider_urls(role, kept.result))
