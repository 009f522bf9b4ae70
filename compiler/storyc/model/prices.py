"""xAI price table and per-call cost estimates (USD).

Media prices are the public ones in ../shared/design/xai-facts.md: an image is $0.02,
an edit also bills its input images (counted here at the same $0.02 each, which is the
conservative reading), video is about $0.05/s at 480p and $0.07/s at 720p. Text to speech
is billed per character (an unverified figure, see PRICES).

Chat prices are APPROXIMATE: a per-token table for grok-4-1-fast ($0.20 per million
input tokens, $0.50 per million output tokens, reasoning tokens billed as output).
When a response reports its own cost (`usage.cost_in_usd_ticks`) or token counts, the
backend uses those; these tables are the fallback and the basis of `build --dry-run`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

PRICES: dict[str, Any] = {
    "image": 0.02,  # per generated image
    "image_input": 0.02,  # per input image of an edit
    "video_per_s": {"480p": 0.05, "720p": 0.07},
    "chat_per_token": {"input": 0.20e-6, "output": 0.50e-6},
    # Token counts assumed when a chat response reports none (dry-run and fallback).
    "chat_default_tokens": {"input": 2_000, "output": 600},
    "vision_tokens_per_image": 1_800,
    # Text to speech, per character of text sent. Third-party pages quote $4.20 (beta) and
    # $15 per million characters; the higher one, until xAI's own page says otherwise.
    "tts_per_char": 15.00e-6,
}

USD_PER_TICK = 1e-10  # xAI reports cost in ticks of 1e-10 USD (usage.cost_in_usd_ticks)


def image_cost(n_inputs: int = 0) -> float:
    """One generated image; an edit with `n_inputs` source images also bills those."""
    return round(PRICES["image"] + PRICES["image_input"] * max(0, n_inputs), 6)


def video_cost(duration_s: float, resolution: str = "720p") -> float:
    """A clip of `duration_s` seconds (unknown resolutions are priced as 720p)."""
    per_s = PRICES["video_per_s"].get(resolution, PRICES["video_per_s"]["720p"])
    return round(per_s * max(0.0, float(duration_s)), 6)


def tts_cost(text: str) -> float:
    """One text-to-speech request for `text`."""
    return round(PRICES["tts_per_char"] * len(text), 8)


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


def chat_cost(usage: Any = None, *, n_images: int = 0) -> float:
    """A chat/vision call: the service's reported cost, else its token counts priced with
    the table, else an estimate from default token counts (+ image tokens for vision)."""
    reported = usage_reported_cost(usage)
    if reported is not None:
        return reported
    rates = PRICES["chat_per_token"]
    prompt = _usage_field(usage, "prompt_tokens")
    completion = _usage_field(usage, "completion_tokens")
    reasoning = _usage_field(usage, "reasoning_tokens") or 0
    if prompt is None and completion is None:
        defaults = PRICES["chat_default_tokens"]
        prompt = defaults["input"] + PRICES["vision_tokens_per_image"] * max(0, n_images)
        completion = defaults["output"]
    return round((prompt or 0) * rates["input"] + ((completion or 0) + reasoning) * rates["output"], 8)
