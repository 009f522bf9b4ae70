"""The location step: a location's background plate, generated once (or restyled from the
user's photo of the place), vision-checked like a character sheet, the best kept."""

from __future__ import annotations

from storyc.run.calls import StepRun
from storyc.run.character import verified_picture
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult


def run_location(ctx: BuildContext, run: StepRun) -> StepResult:
    story, step = ctx.story, run.step
    location = story.location(step.static["name"])
    assert location is not None, step.id  # the graph makes a step per used location
    hints = {
        "step_id": step.id,
        "step": "location",
        "name": location.name,
        "visual_description": location.visual_description,
        "palette": story.color_palette,
        "threshold": story.quality.consistency_threshold,
    }
    return verified_picture(
        ctx,
        run,
        name=location.name,
        role="plate",
        folder=f"locations/{location.name}",
        reference=(ctx.base_dir / location.reference_image) if location.reference_image else None,
        judge_kind="plate",
        hints=hints,
    )
