"""The script step: the storyboard documents (script.md and storyboard.html) from the
build state as it stands once every other step has finished."""

from __future__ import annotations

from storyc.model.state import StepRecord
from storyc.report.documents import write_script_md
from storyc.report.html import write_storyboard_html
from storyc.run.calls import StepRun
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult

DRAFT_NOTICE = (
    "Draft (storyc build --draft): the final video is 480p and fast-encoded{paid}. Build without --draft for the final."
)


def run_script(ctx: BuildContext, run: StepRun) -> StepResult:
    state = ctx.store.snapshot()
    # the page's build table lists this step too: it is the one writing the page (no call)
    state.steps["script"] = StepRecord(id="script", kind="script", key=run.key, status="done")
    review = ctx.review(state) if ctx.review is not None else None
    notice = None
    if run.step.static.get("draft"):
        paid = "; every take is 480p, and clips get no video corrections" if ctx.graph.backend != "offline" else ""
        notice = DRAFT_NOTICE.format(paid=paid)
    script = write_script_md(ctx.out_dir, ctx.story, state, notice, review=review)
    storyboard = write_storyboard_html(ctx.out_dir, ctx.story, state, notice, review=review)
    return StepResult({"script": run.keep(script), "storyboard": run.keep(storyboard)}, score=None, attempts=1)
