"""report.json's data: what a build did, step by step, with its calls, cost and time."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

from storyc.run.context import BuildContext
from storyc.run.executor import ExecResult
from storyc.run.outcome import StepOutcome

CALL_KINDS = ("image", "video", "vision", "chat", "tts")


def build_report(ctx: BuildContext, selected: Collection[str], exec_info: ExecResult | None, wall_s: float) -> dict:
    """The report of this build: every step of the graph in order (finished, failed, or
    not run), and the calls, cost, retries and replays summed over the steps that ran."""
    by_id = {**ctx.failed, **ctx.outcomes}  # every step that ran (finished or failed)
    ran = [by_id[sid] for sid in ctx.graph.order if sid in by_id]
    calls = _calls_by_kind(ran)
    report: dict[str, Any] = {
        "backend": ctx.graph.backend,
        "story": str(ctx.graph.story_path),
        "draft": ctx.graph.draft,  # storyc build --draft: 480p, no video corrections, fast encoding
        "api_calls": calls,
        "api_calls_total": sum(calls.values()),
        "cache_hits": sum(1 for o in ctx.outcomes.values() if o.cached),
        "cost_usd": round(sum(o.record.cost_usd for o in ran), 6),
        "wall_s": round(wall_s, 3),
        "retries": sum(o.retries for o in ran),
        # paid calls whose outcome is unknown (deadline exceeded): in api_calls and cost_usd
        # as billed, never repeated automatically
        "possibly_billed": sum(o.possibly_billed for o in ran),
        "calls_replayed": sum(o.replayed for o in ran),  # finished calls of an interrupted build, not paid again
        "steps": [
            _step_entry(by_id[sid]) if sid in by_id else _not_run_entry(sid, sid in selected) for sid in ctx.graph.order
        ],
    }
    if exec_info is not None and not exec_info.local:
        report["prefect"] = {
            "startup_s": round(exec_info.startup_s, 3),
            "flow_s": round(exec_info.flow_s, 3),
            "flow_run_id": exec_info.flow_run_id,
        }
    speech = _speech_summary(ctx, calls)
    if speech is not None:
        report["speech"] = speech
    if "assemble" in ctx.outcomes:
        outputs = ctx.outcomes["assemble"].outputs
        report["final_video"] = outputs["final_video"]
        subtitles = {fmt: outputs[f"subtitles_{fmt}"] for fmt in ("srt", "vtt") if f"subtitles_{fmt}" in outputs}
        if subtitles:
            report["subtitles"] = subtitles
    # every kept take, generated now or restored, whose check ended below the threshold
    threshold = ctx.story.quality.consistency_threshold
    report["threshold"] = threshold
    report["below_threshold"] = [
        {"id": sid, "score": outcome.record.score, "cached": outcome.record.cached}
        for sid in ctx.graph.order
        if (outcome := ctx.outcomes.get(sid)) is not None
        and outcome.record.score is not None
        and outcome.record.score < threshold
    ]
    return report


def _speech_summary(ctx: BuildContext, calls: dict[str, int]) -> dict[str, Any] | None:
    """The story's lines as rendered (every finished speech step, from the cache or not):
    how many, by what, how long; and what text to speech cost in this build: its paid calls
    and the seconds of audio of the steps that ran (a step from the cache paid nothing)."""
    steps = [o for sid, o in ctx.outcomes.items() if ctx.graph.steps[sid].kind == "speech"]
    if not steps:
        return None
    lines = [line for o in steps for line in o.record.lines]
    by_source = dict.fromkeys(("local", "tts", "clip"), 0)
    for line in lines:
        by_source[line.source] += 1
    ran_tts = [line for o in steps if not o.cached for line in o.record.lines if line.source == "tts"]
    return {
        "lines": len(lines),
        "seconds": round(sum(line.duration_s for line in lines), 3),
        "by_source": by_source,
        "tts_calls": calls.get("tts", 0),
        "tts_seconds": round(sum(line.duration_s for line in ran_tts), 3),
        "tts_characters": sum(len(line.text) for line in ran_tts),
    }


def _calls_by_kind(ran: list[StepOutcome]) -> dict[str, int]:
    calls = dict.fromkeys(CALL_KINDS, 0)
    for outcome in ran:
        for kind, n in outcome.calls.items():
            calls[kind] = calls.get(kind, 0) + n
    return calls


def _step_entry(outcome: StepOutcome) -> dict[str, Any]:
    rec = outcome.record
    return {
        "id": rec.id,
        "status": rec.status,
        "cached": rec.cached,
        "api_calls": rec.api_calls,
        "attempts": rec.attempts,
        "score": rec.score,
        "wall_s": rec.wall_s,
        "retries": outcome.retries,
        "cost_usd": rec.cost_usd,
        "calls": dict(outcome.calls),
    }


def _not_run_entry(sid: str, selected: bool) -> dict[str, Any]:
    return {
        "id": sid,
        "status": "pending" if selected else "skipped",
        "cached": False,
        "api_calls": 0,
        "attempts": 0,
        "score": None,
        "wall_s": 0.0,
        "retries": 0,
        "calls": {},
    }
