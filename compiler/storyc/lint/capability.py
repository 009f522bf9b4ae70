"""Rules about what the story's models can do (storyc.model.capabilities, the one table):
features the chosen model lacks, seamless cuts that cannot be made, long scenes and what
they cost, resolutions a mode caps."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from storyc.diagnostics import Diagnostic, Severity
from storyc.lint.base import LintContext, Rule
from storyc.model import prices
from storyc.model.capabilities import (
    BATCH,
    FEATURE_WORDS,
    IMAGE_WITH_REFERENCES,
    REFERENCE_VIDEO,
    SEAMLESS,
    Kind,
    info_of,
    known,
    models_with,
)
from storyc.model.clips import ClipPlan, clip_plan
from storyc.model.story import MAX_DURATION_S, VIDEO_EDIT_MAX_S


def _fix(kind: Kind, feature: str | None = None, resolution: str | None = None) -> str:
    capable = models_with(kind, feature, resolution)
    return f"set models.{kind}: {' or '.join(capable)}" if capable else f"no {kind} model offers it"


def _written(ctx: LintContext, *loc: str | int) -> bool:
    node: Any = ctx.loaded.data  # plain YAML values: dicts and lists all the way down
    for part in loc:
        try:
            node = node[part]
        except (KeyError, IndexError, TypeError):
            return False
    return True


class E311FeatureNeedsModel(Rule):
    """The story asks for something its `models:` cannot do. The message names the model that
    can (the capability table: storyc.model.capabilities): seamless cuts and reference images
    with a first frame need grok-imagine-video-1.5, and so does 1080p.

    Bad::

        resolution: 1080p                   # grok-imagine-video renders 480p or 720p
        scenes:
          - scene_id: 2
            chain_source: seamless          # last_frame_url: grok-imagine-video-1.5 only

    Good::

        resolution: 1080p
        models:
          video: grok-imagine-video-1.5
        scenes:
          - scene_id: 2
            chain_source: seamless
    """

    code = "E311"
    summary = "the story asks for a feature its model cannot do"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        story = ctx.story
        video, image = story.models.video, story.models.image
        video_info, image_info = info_of(video, "video"), info_of(image, "image")
        unknown = "" if known(video) else " (a model storyc does not know is taken to do what grok-imagine-video does)"
        if not video_info.offers(story.resolution):
            yield self.report(
                ctx,
                ("resolution",),
                f"resolution {story.resolution} is not offered by video model '{video}'{unknown}; "
                f"{_fix('video', resolution=story.resolution)}, or use 720p",
            )
        for i, scene in enumerate(story.scenes):
            if scene.chain_source == "seamless" and not video_info.can(SEAMLESS):
                yield self.report(
                    ctx,
                    ("scenes", i, "chain_source"),
                    f"scene {scene.scene_id}: chain_source seamless needs {FEATURE_WORDS[SEAMLESS]}, which video "
                    f"model '{video}' does not have{unknown}; {_fix('video', SEAMLESS)}",
                )
            if scene.video_mode == "reference" and not video_info.can(REFERENCE_VIDEO):
                yield self.report(
                    ctx,
                    ("scenes", i, "video_mode"),
                    f"scene {scene.scene_id}: video_mode reference needs {FEATURE_WORDS[REFERENCE_VIDEO]}, which "
                    f"video model '{video}' does not have; {_fix('video', REFERENCE_VIDEO)}",
                )
        if story.quality.video_reference_images and not video_info.can(IMAGE_WITH_REFERENCES):
            yield self.report(
                ctx,
                ("quality", "video_reference_images"),
                f"video_reference_images needs {FEATURE_WORDS[IMAGE_WITH_REFERENCES]}, which video model "
                f"'{video}' does not have{unknown}; {_fix('video', IMAGE_WITH_REFERENCES)}, or use "
                f"video_mode: reference",
            )
        for field in ("keyframe_candidates", "sheet_candidates"):
            wanted = getattr(story.quality, field)
            if wanted > 1 and (not image_info.can(BATCH) or wanted > image_info.max_candidates):
                yield self.report(
                    ctx,
                    ("quality", field),
                    f"{field}: {wanted} needs {wanted} images per request, which image model '{image}' does not "
                    f"offer (at most {image_info.max_candidates}); {_fix('image', BATCH)}",
                )


class E312SeamlessCutImpossible(Rule):
    """A seamless cut makes the parent scene's clip end exactly on this scene's keyframe, so the
    parent must be a clip that starts from a keyframe (video_mode image), and only one scene can
    claim a parent's last frame.

    Bad::

        - scene_id: 1
          video_mode: reference
        - scene_id: 2
          chain_source: seamless     # scene 1's clip has no first frame to interpolate from
        - scene_id: 3
          chain_from: 1
          chain_source: seamless     # scene 1's clip already ends on scene 2's keyframe

    Good::

        - scene_id: 1
        - scene_id: 2
          chain_source: seamless
        - scene_id: 3
          chain_from: 1
          chain_source: keyframe
    """

    code = "E312"
    summary = "a seamless cut that cannot be made"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        story = ctx.story
        claimed: dict[int, int] = {}  # parent index → the scene that claimed its last frame
        for i, scene in enumerate(story.scenes):
            if scene.chain_source != "seamless":
                continue
            parent = story.chain_parent_index(i)
            if parent is None:
                continue  # W412: a chain source without a chain
            where = ("scenes", i, "chain_source")
            source = story.scenes[parent]
            if source.video_mode == "reference":
                yield self.report(
                    ctx,
                    where,
                    f"scene {scene.scene_id}: a seamless cut needs scene {source.scene_id} in video_mode image "
                    f"(a reference clip has no first frame to interpolate from); use chain_source keyframe",
                )
            elif parent in claimed:
                other = story.scenes[claimed[parent]].scene_id
                yield self.report(
                    ctx,
                    where,
                    f"scene {scene.scene_id}: scene {source.scene_id}'s clip already ends on scene {other}'s "
                    f"keyframe; only one scene can cut seamlessly from it (use chain_source keyframe)",
                )
            else:
                claimed[parent] = i


class W418SeamlessNotAdjacent(Rule):
    """A seamless cut joins the end of the parent's clip to the start of this one; in the final
    video they only meet when the parent is the scene right before.

    Bad::

        - scene_id: 1
        - scene_id: 2
        - scene_id: 3
          chain_from: 1
          chain_source: seamless    # scene 2 plays in between

    Good::

        - scene_id: 2
        - scene_id: 3
          chain_source: seamless    # chains from scene 2, the one before
    """

    code = "W418"
    summary = "seamless cut from a scene that does not come right before"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        story = ctx.story
        for i, scene in enumerate(story.scenes):
            parent = story.chain_parent_index(i) if scene.chain_source == "seamless" else None
            if parent is not None and parent != i - 1:
                yield self.report(
                    ctx,
                    ("scenes", i, "chain_source"),
                    f"scene {scene.scene_id} cuts seamlessly from scene {story.scenes[parent].scene_id}, but "
                    f"scene {story.scenes[i - 1].scene_id} plays in between: the frames only meet in the graph",
                )


def describe_clip(plan: ClipPlan) -> str:
    """'2 segments: 15 s + 5 s extension, 15 s + 5 s extension'."""
    parts = []
    for seg in plan.segments:
        text = f"{seg.base_s} s" + ("" if seg.mode == "image" else " from references")
        text += "".join(f" + {e} s extension" for e in seg.extensions)
        parts.append(text)
    count = len(plan.segments)
    return f"{count} segment{'s' if count != 1 else ''}: " + ", ".join(parts)


def clip_cost(plan: ClipPlan, model: str) -> float:
    """The video calls of a clip plan at the price table's rates (no checks, no corrections)."""
    seconds = sum(s.base_s + sum(s.extensions) for s in plan.segments)
    return prices.video_cost(seconds, plan.resolution, model)


class W420LongSceneCost(Rule):
    """A scene longer than one generation (15 s) is rendered by video extension or as segments
    chained by their last frames with a match cut: several paid video calls, each drift-checked,
    and no video-edit correction for a segment over 8.7 s. The warning says how the scene is
    cut and what its video calls cost at the price table's rates.

    Bad::

        duration_seconds: 45     # without meaning to: 2 segments, ~$3.15 at 720p

    Good::

        duration_seconds: 45     # meant: the warning's figure is the price
        # or split it into scenes of at most 15 s
    """

    code = "W420"
    summary = "a scene longer than 15 s: several paid video calls"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        story = ctx.story
        for i, scene in enumerate(story.scenes):
            if scene.duration_seconds <= MAX_DURATION_S and scene.video_mode == "image":
                continue
            plan = clip_plan(story, i)
            if not plan.long:
                continue
            correctable = sum(1 for s in plan.segments if s.seconds <= VIDEO_EDIT_MAX_S)
            note = "" if correctable else f"; no segment is short enough ({VIDEO_EDIT_MAX_S} s) for a correction"
            calls = f"{plan.generations} generation{'s' if plan.generations != 1 else ''}"
            if plan.extensions:
                calls += f" and {plan.extensions} extension{'s' if plan.extensions != 1 else ''}"
            yield self.report(
                ctx,
                ("scenes", i, "duration_seconds"),
                f"scene {scene.scene_id} lasts {scene.duration_seconds} s: {describe_clip(plan)} ({calls}, about "
                f"${clip_cost(plan, story.models.video):.2f} of video at {plan.resolution}){note}",
            )


class W421ResolutionCapped(Rule):
    """Reference-to-video and video extension render at most 720p: in a 1080p story those
    scenes come out at 720p and are scaled up in the final video.

    Bad::

        resolution: 1080p
        scenes:
          - scene_id: 2
            video_mode: reference     # rendered at 720p

    Good::

        resolution: 1080p
        scenes:
          - scene_id: 2               # video_mode image, at most 15 s: 1080p
    """

    code = "W421"
    summary = "a scene renders below the story's resolution (720p cap)"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        story = ctx.story
        if not info_of(story.models.video, "video").offers(story.resolution):
            return  # E311 says so
        for i, scene in enumerate(story.scenes):
            if scene.video_mode == "image" and scene.duration_seconds <= MAX_DURATION_S:
                continue
            plan = clip_plan(story, i)
            if plan.resolution != story.resolution:
                why = "reference-to-video" if plan.mode == "reference" else "video extension"
                where = ("scenes", i, "video_mode") if _written(ctx, "scenes", i, "video_mode") else ("scenes", i)
                yield self.report(
                    ctx,
                    where,
                    f"scene {scene.scene_id} renders at {plan.resolution}, not {story.resolution}: {why} is capped "
                    f"at {plan.resolution}",
                )
