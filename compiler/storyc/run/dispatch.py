"""Running one step (what the executor schedules): its cache key, a cache hit restored,
or its runner run and its record and files stored."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from typing import Any, cast

from storyc.model.state import StepKind, StepRecord, StepStatus
from storyc.run.assemble import run_assemble
from storyc.run.calls import StepRun
from storyc.run.character import run_character
from storyc.run.context import BuildContext
from storyc.run.errors import Cancelled
from storyc.run.keyframe import run_keyframe
from storyc.run.location import run_location
from storyc.run.outcome import StepOutcome, StepResult
from storyc.run.pinned import run_pinned
from storyc.run.script import run_script
from storyc.run.speech import run_speech
from storyc.run.video import run_video

Runner = Callable[[BuildContext, StepRun], StepResult]

RUNNERS: dict[str, Runner] = {
    "character": run_character,
    "location": run_location,
    "keyframe": run_keyframe,
    "video": run_video,
    "speech": run_speech,
    "assemble": run_assemble,
    "script": run_script,
}


def restore_cached(ctx: BuildContext, sid: str, key: str, entry: dict, *, save: bool = True) -> StepOutcome:
    """Put a cached step's files in the output folder and record it, without any call."""
    for rel, sha in entry["files"].items():
        ctx.cache.materialize(sha, ctx.path(rel))
    this_build = {"cached": True, "api_calls": 0, "wall_s": 0.0, "cost_usd": 0.0, "status": "done", "error": None}
    record = StepRecord.model_validate({**entry["record"], **this_build, "key": key})
    outcome = StepOutcome(record=record, files=dict(entry["files"]))
    ctx.outcomes[sid] = outcome
    ctx.store.record(record, save=save)
    ctx.emit("step_finished", step=sid, cached=True, record=record, threshold=ctx.story.quality.consistency_threshold)
    return outcome


def run_step(ctx: BuildContext, sid: str) -> StepOutcome:
    """Compute the step's key from its upstream outputs; serve it from the cache when the
    key is there (an upstream that re-ran but produced the same bytes keeps it valid);
    otherwise run its loop, store every file and the entry in the cache, record state."""
    step = ctx.graph.steps[sid]
    if ctx.cancel.is_set():
        raise Cancelled()
    key = ctx.key_of(step)
    if sid not in ctx.force:
        entry = ctx.cache.get_step(key)
        if entry is not None:
            return restore_cached(ctx, sid, key, entry)
    ctx.emit("step_started", step=sid)
    started = time.perf_counter()
    run = StepRun(ctx, step, key)
    try:
        result = (run_pinned if step.pinned else RUNNERS[step.kind])(ctx, run)
    except BaseException as exc:
        _record_failure(ctx, run, exc, time.perf_counter() - started)
        raise
    for rel, sha in run.files.items():
        ctx.cache.put_file(ctx.path(rel), sha)
    record = _record(
        run,
        "done",
        time.perf_counter() - started,
        attempts=result.attempts,
        edit_passes=result.edit_passes,
        score=result.score,
        outputs=result.outputs,
        sha256={role: run.files[rel] for role, rel in result.outputs.items()},
        urls=result.urls,
        duration_s=result.duration_s,
        lines=list(result.lines),
    )
    ctx.cache.put_step(
        key, {"step": sid, "files": run.files, "outputs": result.outputs, "record": record.model_dump(mode="json")}
    )
    outcome = _outcome(run, record)
    ctx.outcomes[sid] = outcome
    ctx.store.record(record)
    ctx.emit(
        "step_finished",
        step=sid,
        cached=False,
        record=record,
        retries=run.retries,
        threshold=ctx.story.quality.consistency_threshold,
    )
    return outcome


def _record(run: StepRun, status: StepStatus, wall_s: float, **fields: Any) -> StepRecord:
    """The step's record in this build: what its calls did, plus the runner's `fields`."""
    return StepRecord(
        id=run.step.id,
        kind=cast(StepKind, run.step.kind),  # the graph makes steps of these kinds only
        key=run.key,
        status=status,
        api_calls=sum(run.calls.values()),
        wall_s=round(wall_s, 3),
        cost_usd=round(run.cost, 6),
        prompts=run.prompts,
        attempt_scores=run.attempt_scores,
        **fields,
    )


def _outcome(run: StepRun, record: StepRecord) -> StepOutcome:
    return StepOutcome(
        record=record,
        files=run.files,
        retries=run.retries,
        calls=dict(run.calls),
        replayed=run.replayed,
        possibly_billed=run.possibly_billed,
    )


def _record_failure(ctx: BuildContext, run: StepRun, exc: BaseException, wall_s: float) -> None:
    record = _record(run, "failed", wall_s, error=_describe(exc))
    ctx.failed[run.step.id] = _outcome(run, record)
    with contextlib.suppress(Exception):
        ctx.store.record(record)
    ctx.emit("step_failed", step=run.step.id, record=record, error=record.error)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, (Cancelled, KeyboardInterrupt)):  # Ctrl-C in an API-free step (the assembly)
        return "interrupted"
    if isinstance(exc, OSError) and exc.strerror:  # "No space left on device: out/videos/scene_1.mp4"
        return f"{exc.strerror}: {exc.filename}" if exc.filename else exc.strerror
    text = str(exc) or type(exc).__name__
    return text.splitlines()[0][:300]
