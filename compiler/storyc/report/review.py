"""What the storyboard shows for reviewing takes: for each target (a sheet, a keyframe, a
clip) its takes numbered as `storyc approve --take N` numbers them, the exact command that
approves each, which take is approved (and whether that approval is stale), and the redo
note the build used. Plain data: the build fills a Review (storyc.build.approvals), the
view matches it to each target's takes."""

from __future__ import annotations

import shlex
from dataclasses import dataclass, field


@dataclass
class PinView:
    file: str  # the pinned file, relative to the story
    take: int | None  # the take it was approved as (None: pinned by hand)
    status: str  # current | stale | changed | missing | unrecorded
    reasons: list[str] = field(default_factory=list)


@dataclass
class Review:
    story: str  # the story path as the build was given it
    out: str | None  # --out, when the build did not use the default folder
    pins: dict[str, PinView] = field(default_factory=dict)  # target id → its pin
    notes: dict[str, str] = field(default_factory=dict)  # target id → the redo note this build used

    def command(self, target: str, take: int | None = None) -> str:
        words = ["storyc", "approve", self.story, target]
        if take is not None:
            words += ["--take", str(take)]
        if self.out:
            words += ["--out", self.out]
        return shlex.join(words)


@dataclass
class TargetReview:
    target: str  # "scene:2"
    pin: PinView | None
    note: str | None
    commands: dict[int, str]  # take number → the command approving it (none for the approved take)
    unapprove: str | None  # the command removing the pin


def target_review(review: Review | None, target: str, take_numbers: list[int]) -> TargetReview | None:
    """The review facts of one target whose takes (as numbered) the storyboard shows."""
    if review is None:
        return None
    pin = review.pins.get(target)
    commands = {n: review.command(target, n) for n in take_numbers}
    unapprove = None
    if pin is not None:
        commands = {}  # its one take is the pinned file: approving happens in the build it came from
        unapprove = shlex.join(["storyc", "unapprove", review.story, target])
    return TargetReview(target, pin, review.notes.get(target), commands, unapprove)
