"""Dry-run estimates: the paid calls and the cost each step may take, and their sum for a
build (`storyc build --dry-run`). min = every check passes first time, max = every loop
exhausted. Prices come from storyc.model.prices, per the story's models (the same table
prices the budget's per-call estimates in storyc.run and the xai backend's bill)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from storyc.graph.steps import StepGraph
from storyc.model import prices
from storyc.model.clips import ClipPlan
from storyc.model.story import VIDEO_EDIT_MAX_S, Models, Quality

API_KINDS = ("image", "video", "vision", "chat", "tts")


@dataclass(frozen=True)
class StepEstimate:
    calls_min: dict[str, int]
    calls_max: dict[str, int]
    cost_min: float
    cost_max: float


def character_estimate(quality: Quality, models: Models, input_images: int, candidates: int = 1) -> StepEstimate:
    """A sheet (or a location's plate; an edit of the user's reference image when
    input_images is 1) and its checks, `candidates` per request, up to
    max_character_attempts requests."""
    attempts = quality.max_character_attempts
    one = prices.image_cost(input_images, models.image, n=candidates) + candidates * prices.chat_cost(
        None, n_images=1, model=models.vision
    )
    return StepEstimate(
        calls_min={"image": 1, "vision": candidates},
        calls_max={"image": attempts, "vision": attempts * candidates},
        cost_min=one,
        cost_max=attempts * one,
    )


def keyframe_estimate(
    quality: Quality, models: Models, reference_images: int, judged_sheets: int, candidates: int = 1
) -> StepEstimate:
    """The composing edit (`candidates` per request, each checked), then fix edits and fresh
    compositions in turn, up to max_keyframe_iterations requests."""
    compose = prices.image_cost(reference_images, models.image, n=candidates)
    fix = prices.image_cost(2, models.image)  # the keyframe + the target's sheet
    vision = prices.chat_cost(None, n_images=1 + judged_sheets, model=models.vision)
    iterations = quality.max_keyframe_iterations
    composes, fixes = (iterations + 1) // 2, iterations // 2
    return StepEstimate(
        calls_min={"image": 1, "vision": candidates},
        calls_max={"image": iterations, "vision": composes * candidates + fixes},
        cost_min=compose + candidates * vision,
        cost_max=composes * (compose + candidates * vision) + fixes * (fix + vision),
    )


def video_estimate(quality: Quality, models: Models, plan: ClipPlan, judged_sheets: int) -> StepEstimate:
    """A clip as its plan makes it: each segment's generation and extensions and its
    last-frame check, plus max_video_corrections edits of each segment short enough for the
    video-edit API (not of one that must end on a pinned frame). A correction is a video
    edit: it bills its input seconds too."""
    vision = prices.chat_cost(None, n_images=1 + judged_sheets, model=models.vision)
    video_calls = plan.generations + plan.extensions
    clip = prices.video_cost(plan.seconds, plan.resolution, models.video)
    corrections, edits = 0, 0.0
    for segment in plan.segments:
        pinned = plan.end_on is not None and segment is plan.segments[-1]
        if segment.seconds <= VIDEO_EDIT_MAX_S and not pinned:
            corrections += quality.max_video_corrections
            edit = prices.video_cost(segment.seconds, plan.resolution, models.video, input_s=segment.seconds)
            edits += quality.max_video_corrections * (edit + vision)
    # a clip pinned to end on the next keyframe is not judged again: that keyframe was
    checks = len(plan.segments) - (1 if plan.end_on is not None else 0)
    return StepEstimate(
        calls_min={"video": video_calls, "vision": checks},
        calls_max={"video": video_calls + corrections, "vision": checks + corrections},
        cost_min=clip + checks * vision,
        cost_max=clip + checks * vision + edits,
    )


def speech_estimate(tts_texts: list[str]) -> StepEstimate:
    """One text-to-speech request per line the service voices (offline speech and lines the
    clip speaks cost nothing)."""
    if not tts_texts:
        return StepEstimate({}, {}, 0.0, 0.0)
    cost = sum(prices.tts_cost(text) for text in tts_texts)
    calls = {"tts": len(tts_texts)}
    return StepEstimate(calls, dict(calls), cost, cost)


def planned_calls(graph: StepGraph, steps: Iterable[str]) -> dict[str, Any]:
    """Calls per kind and estimated cost for running `steps` (dry-run)."""
    chosen = [graph.steps[sid] for sid in steps]
    return estimate_totals(StepEstimate(s.calls_min, s.calls_max, s.cost_min, s.cost_max) for s in chosen)


def estimate_totals(estimates: Iterable[StepEstimate]) -> dict[str, Any]:
    """The calls per kind, their totals and the cost range of `estimates` together, as the
    dry run and report.json print them."""
    mins: dict[str, int] = dict.fromkeys(API_KINDS, 0)
    maxs: dict[str, int] = dict.fromkeys(API_KINDS, 0)
    cost_min = cost_max = 0.0
    for estimate in estimates:
        for k, n in estimate.calls_min.items():
            mins[k] += n
        for k, n in estimate.calls_max.items():
            maxs[k] += n
        cost_min += estimate.cost_min
        cost_max += estimate.cost_max
    return {
        "calls_min": mins,
        "calls_max": maxs,
        "calls_min_total": sum(mins.values()),
        "calls_max_total": sum(maxs.values()),
        "cost_min_usd": round(cost_min, 4),
        "cost_max_usd": round(cost_max, 4),
    }
