"""A pinned target (storyc.graph.builder: a sheet_image, plate_image, keyframe_image or clip_video): its
file copied into the output folder as is, with no call. A pinned clip's first and last
frames are extracted locally, as a generated clip's are (a chained scene reads its last
frame)."""

from __future__ import annotations

from storyc.media.probe import extract_frame, probe
from storyc.run.calls import StepRun
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult
from storyc.store.fsutil import atomic_copy

# where each kind's pinned file goes in the output folder ({id}: the character or scene)
_DEST = {
    "character": "character_sheets/{id}_pinned{suffix}",
    "location": "locations/{id}_pinned{suffix}",
    "keyframe": "keyframes/scene_{id}_pinned{suffix}",
    "video": "videos/scene_{id}_pinned{suffix}",
}
_ROLE = {"character": "sheet", "location": "plate", "keyframe": "keyframe", "video": "video"}


def run_pinned(ctx: BuildContext, run: StepRun) -> StepResult:
    step = run.step
    assert step.pinned is not None, step.id  # the graph makes pinned steps only for pins
    src = ctx.base_dir / step.pinned
    ident = {"character": step.character, "location": step.id.partition(":")[2]}.get(step.kind, step.scene_id)
    default = ".mp4" if step.kind == "video" else ".jpg"
    dest = ctx.path(_DEST[step.kind].format(id=ident, suffix=src.suffix.lower() or default))
    atomic_copy(src, dest)
    outputs = {_ROLE[step.kind]: run.keep(dest)}
    if step.kind != "video":
        return StepResult(outputs, score=None, attempts=0)
    stem = dest.stem
    first, last = ctx.path(f"frames/{stem}_first.jpg"), ctx.path(f"frames/{stem}_last.jpg")
    extract_frame(dest, first, "first")
    extract_frame(dest, last, "last")
    outputs.update(first_frame=run.keep(first), last_frame=run.keep(last))
    return StepResult(outputs, score=None, attempts=0, duration_s=round(probe(dest).duration_s, 3))
