"""The one xAI price table: a row per model, video prices per resolution (USD).

Every cost storyc reports or estimates comes from here, unless the service reported the
call's own cost (`usage.cost_in_usd_ticks`), which always wins (`reported_or`).

Sources (../shared/design/xai-facts.md):
- grok-imagine-image: $0.02 per generated image; an edit also bills each input image,
  about $0.002 (docs: "billed for both the input image and the generated output image").
- grok-imagine-video: $0.05/s at 480p, $0.07/s at 720p (docs).
- grok-imagine-video-1.5: about $0.08 / $0.14 / $0.25 per s at 480p / 720p / 1080p (unverified).
- A video edit also bills its input seconds, about $0.01/s (unverified).
- Chat (grok-4-1-fast*): $0.20 per million input tokens, $0.50 per million output tokens,
  reasoning tokens billed as output; a vision image is counted as ~1,800 input tokens.
- Text to speech (`POST /v1/tts`, no model parameter: the row `grok-tts`): billed per
  character of text; third-party pages quote $4.20 (beta) and $15 per million characters,
  the higher one is used (unverified).

A model the table does not know is priced as its kind's default model (the seed's
models), and a resolution a row does not list as that row's most expensive one: an
estimate errs high, never low. Another issue adds a capability table per model next to
this one; `MODELS` is keyed the same way.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

Kind = Literal["image", "video", "chat", "tts"]
USD_PER_TICK = 1e-10  # xAI reports cost in ticks of 1e-10 USD (usage.cost_in_usd_ticks)


@dataclass(frozen=True)
class ModelPrice:
    kind: Kind
    per_image: float = 0.0  # one generated image
    per_input_image: float = 0.0  # each input image of an edit
    per_second: Mapping[str, float] = field(default_factory=dict)  # output resolution → USD per second
    per_input_second: float = 0.0  # each input second of a video edit
    per_input_token: float = 0.0
    per_output_token: float = 0.0  # reasoning tokens are billed as output
    per_character: float = 0.0  # text to speech: each character of text sent
    verified: bool = True  # False: a third-party figure (xai-facts.md marks it so)

    def second(self, resolution: str) -> float:
        """USD per output second at `resolution` (the row's most expensive if unlisted)."""
        return self.per_second.get(resolution, max(self.per_second.values(), default=0.0))


_CHAT = ModelPrice("chat", per_input_token=0.20e-6, per_output_token=0.50e-6)

MODELS: dict[str, ModelPrice] = {
    "grok-imagine-image": ModelPrice("image", per_image=0.02, per_input_image=0.002),
    "grok-imagine-video": ModelPrice("video", per_second={"480p": 0.05, "720p": 0.07}, per_input_second=0.01),
    "grok-imagine-video-1.5": ModelPrice(
        "video", per_second={"480p": 0.08, "720p": 0.14, "1080p": 0.25}, per_input_second=0.01, verified=False
    ),
    "grok-4-1-fast": _CHAT,
    "grok-4-1-fast-reasoning": _CHAT,
    "grok-4-1-fast-non-reasoning": _CHAT,
    "grok-tts": ModelPrice("tts", per_character=15.00e-6, verified=False),
}
ALIASES = {"grok-imagine-video-1.5-preview": "grok-imagine-video-1.5"}
DEFAULT_MODEL: dict[Kind, str] = {
    "image": "grok-imagine-image",
    "video": "grok-imagine-video",
    "chat": "grok-4-1-fast-reasoning",
    "tts": "grok-tts",
}

# Token counts assumed when a chat response reports none (dry-run and fallback).
CHAT_DEFAULT_TOKENS = {"input": 2_000, "output": 600}
VISION_TOKENS_PER_IMAGE = 1_800


def price_of(model: str | None, kind: Kind) -> ModelPrice:
    """The row of `model`; an unknown (or no) model gets its kind's default row."""
    row = MODELS.get(ALIASES.get(model or "", model or ""))
    if row is None or row.kind != kind:
        row = MODELS[DEFAULT_MODEL[kind]]
    return row


def image_cost(n_inputs: int = 0, model: str | None = None, n: int = 1) -> float:
    """`n` generated images; an edit with `n_inputs` source images also bills those."""
    row = price_of(model, "image")
    return round(row.per_image * max(1, n) + row.per_input_image * max(0, n_inputs), 6)


def video_cost(duration_s: float, resolution: str = "720p", model: str | None = None, input_s: float = 0.0) -> float:
    """A clip of `duration_s` output seconds; a video edit also bills its `input_s`."""
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
