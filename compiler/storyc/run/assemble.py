"""The assemble step: the final video from every scene's kept clip, in one ffmpeg pass."""

from __future__ import annotations

from storyc.media.assemble import Clip, assemble
from storyc.media.ffmpeg import dimensions
from storyc.model.story import DRAFT_RESOLUTION
from storyc.run.calls import StepRun
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult


def run_assemble(ctx: BuildContext, run: StepRun) -> StepResult:
    story = ctx.story
    ctx.upstream(run.step)  # every clip finished (MissingUpstream otherwise)
    clips = [
        Clip(
            path=ctx.output(f"video:{s.scene_id}", "video"),
            duration_s=float(s.duration_seconds),
            transition_in=s.transition,  # a scene's transition is how it is entered
        )
        for s in story.scenes
    ]
    draft = bool(run.step.static.get("draft"))  # storyc build --draft: 480p, fast encoding
    width, height = dimensions(story.aspect_ratio, DRAFT_RESOLUTION if draft else story.resolution)
    dest = ctx.path("final_video.mp4")
    assemble(clips, dest, width, height, fps=run.step.static.get("fps", 24), draft=draft)
    return StepResult({"final_video": run.keep(dest)}, score=None, attempts=1)
