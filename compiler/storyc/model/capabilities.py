"""The one table of what each xAI model can do and what it costs: a row per model.

Lint reads it (a story asking for a feature its `models:` cannot do is an error naming
the model that can), the graph's dry-run estimates and the run's budget price calls with
it (storyc.model.prices holds the arithmetic, over the `price` of these rows), and the
backends check requests against it. The strict fake service (tests/fake_xai/rules.py)
keeps its own copy of the limits on purpose: it is the service, and this table has to
agree with it.

Sources (../shared/design/xai-facts.md; the SDK, xai-sdk 1.21.0, is the contract):
- image models: `n` up to 10 per request (`sample_batch`), an edit takes up to 3 input
  images, resolutions "1k"/"2k"; `quality` (low/medium) only on grok-imagine-image-2.0.
- grok-imagine-video: 1-15 s, 480p/720p; video edit input at most 8.7 s; reference-to-video
  (`reference_image_urls`) up to 7 images, up to 10 s, 720p at most (docs); extension
  (`video.extend`) 2-10 s per call, input 2-15 s (docs; the SDK docstring says up to
  30 s: the documented limit is the one kept), output capped at 720p.
- grok-imagine-video-1.5 (`-1.5-preview` is an alias): all of that plus 1080p,
  `last_frame_url` (the exact last frame; the SDK says "only supported for
  grok-imagine-video-1.5"), `keyframes`, `reference_audios` (voices), and `image_url`
  together with reference images (the first frame pinned, the references keeping identity).
- Prices: image $0.02 each, an edit's input images $0.002 each (docs); grok-imagine-image-2.0
  $0.048 (third-party, 1k medium: unverified); grok-imagine-video $0.05/s 480p, $0.07/s
  720p (docs); 1.5 $0.08 / $0.14 / $0.25 per s at 480p / 720p / 1080p (unverified); a video
  edit also bills its input seconds, about $0.01/s (unverified); an extension bills its new
  seconds at the model's rate (third-party: "billing is based on the selected duration",
  unverified). Chat (grok-4-1-fast*): $0.20 / $0.50 per million input / output tokens; a
  vision image is counted as ~1,800 input tokens.
- Text to speech (`POST /v1/tts`, no model parameter: the row `grok-tts`): billed per
  character of text; third-party pages quote $4.20 (beta) and $15 per million characters,
  the higher one is used (unverified).

A model the table does not know gets its kind's default row (the seed's models), so an
unknown model is assumed to do no more than the seed's: lint errs toward telling.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal, TypedDict

Kind = Literal["image", "video", "chat", "tts"]

# Features a story can ask for (story field → feature in `Lint`'s messages):
SEAMLESS = "last_frame"  # chain_source: seamless (the parent's clip ends on this keyframe)
REFERENCE_VIDEO = "reference_video"  # video_mode: reference (reference-to-video)
IMAGE_WITH_REFERENCES = "image_with_references"  # image mode + the sheets as reference images
EXTEND = "extend"  # video.extend: scenes longer than one generation
VOICES = "voices"  # reference_audios: a character's own voice
KEYFRAMES = "keyframes"  # mid-clip keyframes (not used by storyc yet)
BATCH = "batch"  # n > 1 candidates per image request
IMAGE_QUALITY = "image_quality"  # quality: low / medium

FEATURE_WORDS = {
    SEAMLESS: "seamless cuts (last_frame_url)",
    REFERENCE_VIDEO: "reference-to-video",
    IMAGE_WITH_REFERENCES: "reference images with a first frame",
    EXTEND: "video extension",
    VOICES: "character voices",
    KEYFRAMES: "mid-clip keyframes",
    BATCH: "several candidates per request",
    IMAGE_QUALITY: "an image quality setting",
}


@dataclass(frozen=True)
class ModelPrice:
    """What a model's calls cost (USD)."""

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


@dataclass(frozen=True)
class ModelInfo:
    """One model: its features, limits and price."""

    name: str
    kind: Kind
    price: ModelPrice
    features: frozenset[str] = frozenset()
    # image models
    max_edit_images: int = 0  # input images of one edit
    max_candidates: int = 1  # images per request (n)
    # video models
    resolutions: tuple[str, ...] = ()  # output resolutions of a generation
    duration_s: tuple[int, int] = (0, 0)  # a generation's length
    edit_input_max_s: float = 0.0  # a video edit's input
    max_reference_images: int = 0  # reference_image_urls of one request
    reference_max_s: int = 0  # a reference-to-video clip's length
    reference_resolutions: tuple[str, ...] = ()
    extension_s: tuple[int, int] = (0, 0)  # one extension's new seconds
    extension_input_s: tuple[int, int] = (0, 0)  # the clip an extension continues
    extension_resolutions: tuple[str, ...] = ()

    def can(self, feature: str) -> bool:
        return feature in self.features

    def offers(self, resolution: str) -> bool:
        return resolution in self.resolutions


_IMAGE_PRICE = ModelPrice("image", per_image=0.02, per_input_image=0.002)
_CHAT_PRICE = ModelPrice("chat", per_input_token=0.20e-6, per_output_token=0.50e-6)


class _VideoLimits(TypedDict):
    """The limits both video models share (typed, so `**_VIDEO_LIMITS` is checked against ModelInfo)."""

    duration_s: tuple[int, int]
    edit_input_max_s: float
    max_reference_images: int
    reference_max_s: int
    reference_resolutions: tuple[str, ...]
    extension_s: tuple[int, int]
    extension_input_s: tuple[int, int]
    extension_resolutions: tuple[str, ...]


_VIDEO_LIMITS: _VideoLimits = {
    "duration_s": (1, 15),
    "edit_input_max_s": 8.7,
    "max_reference_images": 7,
    "reference_max_s": 10,
    "reference_resolutions": ("480p", "720p"),
    "extension_s": (2, 10),
    "extension_input_s": (2, 15),
    "extension_resolutions": ("480p", "720p"),
}

MODELS: dict[str, ModelInfo] = {
    info.name: info
    for info in (
        ModelInfo(
            "grok-imagine-image",
            "image",
            _IMAGE_PRICE,
            frozenset({BATCH}),
            max_edit_images=3,
            max_candidates=10,
            resolutions=("1k", "2k"),
        ),
        ModelInfo(
            "grok-imagine-image-2.0",
            "image",
            ModelPrice("image", per_image=0.048, per_input_image=0.002, verified=False),
            frozenset({BATCH, IMAGE_QUALITY}),
            max_edit_images=3,
            max_candidates=10,
            resolutions=("1k", "2k"),
        ),
        ModelInfo(
            "grok-imagine-video",
            "video",
            ModelPrice("video", per_second={"480p": 0.05, "720p": 0.07}, per_input_second=0.01),
            frozenset({REFERENCE_VIDEO, EXTEND}),
            resolutions=("480p", "720p"),
            **_VIDEO_LIMITS,
        ),
        ModelInfo(
            "grok-imagine-video-1.5",
            "video",
            ModelPrice(
                "video",
                per_second={"480p": 0.08, "720p": 0.14, "1080p": 0.25},
                per_input_second=0.01,
                verified=False,
            ),
            frozenset({SEAMLESS, REFERENCE_VIDEO, IMAGE_WITH_REFERENCES, EXTEND, VOICES, KEYFRAMES}),
            resolutions=("480p", "720p", "1080p"),
            **_VIDEO_LIMITS,
        ),
        ModelInfo("grok-4-1-fast", "chat", _CHAT_PRICE),
        ModelInfo("grok-4-1-fast-reasoning", "chat", _CHAT_PRICE),
        ModelInfo("grok-4-1-fast-non-reasoning", "chat", _CHAT_PRICE),
        ModelInfo("grok-tts", "tts", ModelPrice("tts", per_character=15.00e-6, verified=False)),
    )
}
ALIASES = {"grok-imagine-video-1.5-preview": "grok-imagine-video-1.5"}
DEFAULT_MODEL: dict[Kind, str] = {
    "image": "grok-imagine-image",
    "video": "grok-imagine-video",
    "chat": "grok-4-1-fast-reasoning",
    "tts": "grok-tts",
}
# Every output resolution some video model offers, lowest first (the story's `resolution`).
VIDEO_RESOLUTIONS = ("480p", "720p", "1080p")


def canonical(model: str | None) -> str:
    return ALIASES.get(model or "", model or "")


def info_of(model: str | None, kind: Kind) -> ModelInfo:
    """The row of `model`; an unknown (or no) model, or one of another kind, gets its
    kind's default row."""
    row = MODELS.get(canonical(model))
    if row is None or row.kind != kind:
        row = MODELS[DEFAULT_MODEL[kind]]
    return row


def known(model: str | None) -> bool:
    return canonical(model) in MODELS


def models_with(kind: Kind, feature: str | None = None, resolution: str | None = None) -> list[str]:
    """The table's models of `kind` that have `feature` and offer `resolution`, in table order."""
    return [
        name
        for name, row in MODELS.items()
        if row.kind == kind and (feature is None or row.can(feature)) and (resolution is None or row.offers(resolution))
    ]


def lower_resolution(resolution: str, allowed: tuple[str, ...]) -> str:
    """`resolution` if allowed, else the highest allowed one below it (720p for a 1080p story
    rendered in a mode capped at 720p)."""
    if resolution in allowed or not allowed:
        return resolution
    order = VIDEO_RESOLUTIONS
    below = [r for r in allowed if r in order and order.index(r) <= order.index(resolution)]
    return below[-1] if below else allowed[0]
