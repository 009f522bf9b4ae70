"""Prices of xAI calls (USD), over the one table of models: storyc.model.capabilities,
whose rows carry each model's price (a row per model, video prices per resolution).

Every cost storyc reports or estimates comes from here, unless the service reported the
call's own cost (`usage.cost_in_usd_ticks`), which always wins (`reported_or`). Sources of
the figures are listed in capabilities.py.

A model the table does not know is priced as its kind's default model (the seed's
models), and a resolution a row does not list as that row's most expensive one: an
estimate errs high, never low.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storyc.model import capabilities
from storyc.model.capabilities import ALIASES, DEFAULT_MODEL, Kind, ModelPrice

__all__ = ["ALIASES", "DEFAULT_MODEL", "MODELS", "Kind", "ModelPrice"]

USD_PER_TICK = 1e-10  # xAI reports cost in ticks of 1e-10 USD (usage.cost_in_usd_ticks)

# name → price: a view of the capability table, not a second table
MODELS: dict[str, ModelPrice] = {name: row.price for name, row in capabilities.MODELS.items()}

# Token counts assumed when a chat response reports none (dry-run and fallback).
CHAT_DEFAULT_TOKENS = {"input": 2_000, "output": 600}
VISION_TOKENS_PER_IMAGE = 1_800


def price_of(model: str | None, kind: Kind) -> ModelPrice:
    """The price of `model`; an unknown (or no) model gets its kind's default row."""
    return capabilities.info_of(model, kind).price


def image_cost(n_inputs: int = 0, model: str | None = None, n: int = 1) -> float:
    """`n` generated images; an edit with `n_inputs` source images also bills those."""
    row = price_of(model, "image")
    return round(row.per_image * max(1, n) + row.per_input_image * max(0, n_inputs), 6)


def video_cost(duration_s: float, resolution: str = "720p", model: str | None = None, input_s: float = 0.0) -> float:
    """A clip of `duration_s` output seconds; a video edit also bills its `input_s`. An
    extension is priced by its new seconds (`duration_s`), no input seconds."""
    row = price_of(model, "video")
    return round(row.second(resolution) * max(0.0, float(duration_s)) + row.per_input_second * max(0.0, input_s), 6)


def tts_cost(text: str, model: str | None = None) -> float:
    """One text-to-speech request for `text`."""
    return round(price_of(model, "tts").per_character * len(text), 8)


def _usage_field(usage: Any, name: str) -> int | None:
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        value = usage.get(name)
    else:
        value = getattr(usage, name, None)
    return int(value) if value else None


def usage_reported_cost(usage: Any) -> float | None:
    """The cost the service reported itself, if any (`cost_in_usd_ticks`)."""
    if usage is None:
        return None
    if isinstance(usage, Mapping):
        ticks = usage.get("cost_in_usd_ticks")
    else:
        has_field = getattr(usage, "HasField", None)
        try:
            present = has_field("cost_in_usd_ticks") if has_field else hasattr(usage, "cost_in_usd_ticks")
        except ValueError:  # a proto without that field
            present = False
        ticks = getattr(usage, "cost_in_usd_ticks", None) if present else None
    return None if ticks is None else round(int(ticks) * USD_PER_TICK, 8)


def reported_or(usage: Any, table_usd: float) -> tuple[float, str]:
    """(cost, source): the service's own figure when it reported one, else the table's."""
    reported = usage_reported_cost(usage)
    return (reported, "usage") if reported is not None else (round(table_usd, 8), "price_table")


def chat_cost(usage: Any = None, *, n_images: int = 0, model: str | None = None) -> float:
    """A chat/vision call: the service's reported cost, else its token counts priced with
    the table, else an estimate from default token counts (+ image tokens for vision)."""
    reported = usage_reported_cost(usage)
    if reported is not None:
        return reported
    row = price_of(model, "chat")
    prompt = _usage_field(usage, "prompt_tokens")
    completion = _usage_field(usage, "completion_tokens")
    reasoning = _usage_field(usage, "reasoning_tokens") or 0
    if prompt is None and completion is None:
        prompt = CHAT_DEFAULT_TOKENS["input"] + VISION_TOKENS_PER_IMAGE * max(0, n_images)
        completion = CHAT_DEFAULT_TOKENS["output"]
    return round((prompt or 0) * row.per_input_token + ((completion or 0) + reasoning) * row.per_output_token, 8)
