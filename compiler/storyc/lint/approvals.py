"""Rules about approved takes: pins that `storyc approve` wrote and what they were approved against."""

from __future__ import annotations

from collections.abc import Iterator

from storyc.diagnostics import Diagnostic, Severity
from storyc.lint.base import LintContext, Rule
from storyc.model.targets import pinned_targets
from storyc.prompts.promptset import PromptSet
from storyc.store.approvals import ApprovalsError, check_pins, load_approvals


class W417StaleApproval(Rule):
    """A pinned take was approved against inputs that have changed since: a character's
    visual_description, the scene, a sheet or keyframe re-approved after it, a template.
    The build still uses the pinned file as it is (no call); look at it again and approve a
    new take (`storyc approve`), or `storyc unapprove` it to let the build render a new one.
    `approved/approvals.json` (written by `storyc approve`) records what each pin was
    approved against; a pin written by hand is not checked.

    Bad::

        characters:
          - name: Ember
            sheet_image: approved/sheet_Ember.png       # re-approved after scene 2's keyframe
        scenes:
          - scene_id: 2
            keyframe_image: approved/keyframe_scene_2.jpg   # approved with Ember's previous sheet

    Good::

        scenes:
          - scene_id: 2
            keyframe_image: approved/keyframe_scene_2.jpg   # approved again after the new sheet
    """

    code = "W417"
    summary = "approved take is stale: an input changed since it was approved"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        story = ctx.story
        pinned = list(pinned_targets(story))
        if not pinned:
            return
        try:
            approvals = load_approvals(ctx.loaded.base_dir)
        except ApprovalsError as exc:
            yield self.report(ctx, pinned[0].loc, f"cannot check the approved pins: {exc}")
            return
        if not approvals.pins:
            return
        prompts = PromptSet(story, story_path=ctx.loaded.path)
        for check in check_pins(story, prompts, ctx.loaded.base_dir, approvals):
            if check.status in ("stale", "changed"):
                more = f" (and {len(check.reasons) - 1} more)" if len(check.reasons) > 1 else ""
                yield self.report(
                    ctx,
                    check.target.loc,
                    f"{check.reasons[0]}{more}; review it, then approve a take again or unapprove it",
                )
