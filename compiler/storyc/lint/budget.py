"""Rules about what the image and video APIs can do with a scene."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence

from storyc.diagnostics import Diagnostic, Severity
from storyc.lint.base import LintContext, Rule
from storyc.model.capabilities import info_of
from storyc.model.story import MAX_DURATION_S, MAX_REFERENCE_IMAGES, VIDEO_EDIT_MAX_S
from storyc.prompts.slots import SlotPlan, allocate_slots  # the single source of the slot table


class W401ReferenceImageBudget(Rule):
    """The keyframe edit takes at most 3 reference images: the scene's character sheets first,
    its chain frame last (design section 6); a reference clip (video_mode reference) takes 7.
    Characters beyond the budget are drawn from text only and drift. The slot table itself
    is storyc.prompts.slots.allocate_slots.

    Bad::

        - scene_id: 4
          characters_present: [Ember, Sage, Moss]   # + the chain frame = 4 images

    Good::

        - scene_id: 4
          characters_present: [Ember, Sage, Moss]
          chain_from: none                         # 3 sheets, no chain frame
    """

    code = "W401"
    summary = "scene needs more than 3 reference images; some characters will be text-only"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        story = ctx.story
        slot_plans: dict[tuple[tuple[str, ...], bool], SlotPlan] = {}
        video_budget = info_of(story.models.video, "video").max_reference_images
        for i, scene in enumerate(story.scenes):
            if scene.video_mode == "reference" and len(scene.characters_present) > video_budget:
                video_text_only = allocate_slots(story, i).video_text_only
                first = _first_position(scene.characters_present, video_text_only)
                if video_text_only and first is not None:
                    yield self.report(
                        ctx,
                        ("scenes", i, "characters_present", first),
                        f"scene {scene.scene_id}'s reference clip takes {video_budget} reference images: "
                        f"{', '.join(video_text_only)} will have none and may drift; keep at most {video_budget} characters",
                    )
            if scene.keyframe_image is not None:  # a pinned keyframe is not composed from references
                continue
            # Cheap O(1) pre-filter: only a scene that can overflow pays for a slot plan.
            chained = ctx.story.chain_parent_index(i) is not None
            if len(scene.characters_present) + (1 if chained else 0) <= MAX_REFERENCE_IMAGES:
                continue
            # allocate_slots is pure and its text-only list depends only on the cast and on whether
            # the scene is chained, so plan once per distinct case instead of once per scene.
            case = (tuple(scene.characters_present), chained)
            if case not in slot_plans:
                slot_plans[case] = allocate_slots(story, i)
            slot_plan = slot_plans[case]
            text_only = list(slot_plan.text_only)
            if not text_only:
                continue
            names = ", ".join(text_only)
            need = len(slot_plan.slots) + len(text_only)
            fix = (
                "keep at most 2 characters in a chained scene, or set chain_from: none"
                if chained
                else "keep at most 3 characters"
            )
            first = _first_position(scene.characters_present, text_only)
            yield self.report(
                ctx,
                ("scenes", i, "characters_present", first)
                if first is not None
                else ("scenes", i, "characters_present"),
                f"scene {scene.scene_id} needs {need} reference images but the image API takes {MAX_REFERENCE_IMAGES}: "
                f"{names} will be text-only and may drift; {fix}",
            )


def _first_position(present: Sequence[str], names: Iterable[str]) -> int | None:
    wanted = set(names)
    return next((j for j, name in enumerate(present) if name in wanted), None)


class W402DurationBeyondVideoEdit(Rule):
    """The video-edit correction pass only accepts clips of at most 8.7 s, so a longer scene
    cannot have its character drift corrected (design step 5d).

    Bad::

        duration_seconds: 12

    Good::

        duration_seconds: 8     # or split the scene in two
    """

    code = "W402"
    summary = "duration above 8.7 s: the video-edit correction cannot run"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for i, scene in enumerate(ctx.story.scenes):
            # over one generation (15 s) W420 says how the scene is cut, and which parts can be corrected
            if VIDEO_EDIT_MAX_S < scene.duration_seconds <= MAX_DURATION_S:
                yield self.report(
                    ctx,
                    ("scenes", i, "duration_seconds"),
                    f"scene {scene.scene_id} lasts {scene.duration_seconds} s; drift correction by video edit needs at most "
                    f"{VIDEO_EDIT_MAX_S} s (use 8 or split the scene)",
                )
