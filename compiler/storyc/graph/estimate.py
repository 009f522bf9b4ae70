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
from storyc.model.story import VIDEO_EDIT_MAX_S, Models, Quality

API_KINDS = ("image", "video", "vision", "chat", "tts")


@dataclass(frozen=True)
class StepEstimate:
    calls_min: dict[str, int]
    calls_max: dict[str, int]
    cost_min: float
    cost_max: float


def character_estimate(quality: Quality, models: Models, input_images: int) -> StepEstimate:
    """A sheet (an edit of the user's reference image when input_images is 1) and its check,
    up to max_character_attempts times."""
    attempts = quality.max_character_attempts
    one = prices.image_cost(input_images, models.image) + prices.chat_cost(None, n_images=1, model=models.vision)
    return StepEstimate(
        calls_min={"image": 1, "vision": 1},
        calls_max={"image": attempts, "vision": attempts},
        cost_min=one,
        cost_max=attempts * one,
    )


def keyframe_estimate(quality: Quality, models: Models, reference_images: int, judged_sheets: int) -> StepEstimate:
    """The composing edit and its check, then up to max_keyframe_iterations fix edits and checks."""
    compose = prices.image_cost(reference_images, models.image)
    fix = prices.image_cost(2, models.image)  # the keyframe + the target's sheet
    vision = prices.chat_cost(None, n_images=1 + judged_sheets, model=models.vision)
    iterations = quality.max_keyframe_iterations
    return StepEstimate(
        calls_min={"image": 1, "vision": 1},
        calls_max={"image": iterations, "vision": iterations},
        cost_min=compose + vision,
        cost_max=iterations * (max(compose, fix) + vision),
    )


def video_estimate(
    quality: Quality, models: Models, duration_s: float, resolution: str, judged_sheets: int
) -> StepEstimate:
    """A clip and its last-frame check, plus max_video_corrections edits if the clip is short
    enough for the video-edit API. A correction is a video edit: it bills its input seconds too."""
    correctable = duration_s <= VIDEO_EDIT_MAX_S
    corrections = quality.max_video_corrections if correctable else 0
    clip = prices.video_cost(duration_s, resolution, models.video)
    edit = prices.video_cost(duration_s, resolution, models.video, input_s=duration_s)
    vision = prices.chat_cost(None, n_images=1 + judged_sheets, model=models.vision)
    return StepEstimate(
        calls_min={"video": 1, "vision": 1},
        calls_max={"video": 1 + corrections, "vision": 1 + corrections},
        cost_min=clip + vision,
        cost_max=clip + vision + corrections * (edit + vision),
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
    mins: dict[str, int] = dict.fromkeys(API_KINDS, 0)
    maxs: dict[str, int] = dict.fromkeys(API_KINDS, 0)
    cost_min = cost_max = 0.0
    for sid in steps:
        step = graph.steps[sid]
        for k, n in step.calls_min.items():
            mins[k] += n
        for k, n in step.calls_max.items():
            maxs[k] += n
        cost_min += step.cost_min
        cost_max += step.cost_max
    return {
        "calls_min": mins,
        "calls_max": maxs,
        "calls_min_total": sum(mins.values()),
        "calls_max_total": sum(maxs.values()),
        "cost_min_usd": round(cost_min, 4),
        "cost_max_usd": round(cost_max, 4),
    }
