"""The backend interface: every call the pipeline makes to an image/video/vision service.

The executor talks only to this protocol; `offline` (embedded default, local and free)
and `xai` (xai-sdk) implement it. Each media call writes its result to `dest`
atomically (temp file + rename) before returning, because provider URLs are temporary.

Requests carry the rendered prompt (what a real service sees) and `hints`: structured
facts the offline renderer draws from (character names in slot order, setting words,
camera words...). Real backends ignore hints.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Protocol, runtime_checkable

from storyc.model.story_plan import StoryPlan
from storyc.model.vision import ConsistencyScore

CallKind = Literal["image", "video", "chat", "vision", "tts"]
JudgeKind = Literal["sheet", "plate", "keyframe", "last_frame"]


@dataclass(frozen=True)
class ImageRequest:
    prompt: str
    model: str
    aspect_ratio: str
    resolution: str
    dest: Path
    # Up to 3 reference images in slot order (design section 6). Empty: text → image.
    references: tuple[Path, ...] = ()
    hints: Mapping[str, Any] = field(default_factory=dict)
    # Best-of-N: every candidate's destination, `dest` first; one request asks for all of them
    # (xAI's n). The backend writes the candidates it got to the first paths, in order, and
    # says how many in `CallResult.meta["candidates"]`. Empty: one image, at `dest`.
    candidates: tuple[Path, ...] = ()

    @property
    def n(self) -> int:
        return max(1, len(self.candidates))


@dataclass(frozen=True)
class VideoRequest:
    prompt: str
    model: str
    dest: Path
    # image_to_video reads `image` (the first frame), or without one `references` alone
    # (reference-to-video); edit_video and extend_video read `video` (an edit's input ≤ 8.7 s).
    image: Path | None = None
    video: Path | None = None
    # Reference images (sheets, a location plate), in the order the prompt's <IMAGE_N> count them.
    references: tuple[Path, ...] = ()
    # The exact last frame (a seamless cut: the next scene's keyframe).
    last_frame: Path | None = None
    # image_to_video: the clip's length; extend_video: the new seconds added to `video`.
    duration_s: int = 8
    aspect_ratio: str = "16:9"
    resolution: str = "720p"
    hints: Mapping[str, Any] = field(default_factory=dict)
    # Called with the job's progress (0-100) while the provider renders it: the progress line.
    progress: Callable[[int], None] | None = field(default=None, compare=False, repr=False)
    generate_audio: bool = True  # the clip's own sound (audio.native); False: a silent clip
    # Voice ids the clip's speakers speak in (models with voices), referred to in the prompt
    # as <AUDIO_1>, <AUDIO_2>... in this order.
    voices: tuple[str, ...] = ()


@dataclass(frozen=True)
class SpeechRequest:
    """One line to speak (text to speech): its words, the voice id, where the audio goes."""

    text: str
    voice: str
    dest: Path
    hints: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class JudgeRequest:
    kind: JudgeKind
    prompt: str
    model: str
    image: Path  # the image under test
    references: tuple[Path, ...] = ()  # character sheets, in the order of `names`
    names: tuple[str, ...] = ()
    hints: Mapping[str, Any] = field(default_factory=dict)


@dataclass
class CallResult:
    """What one paid call produced."""

    path: Path | None  # the downloaded asset (None for judge/plan)
    cost_usd: float
    kind: CallKind
    calls: int = 1  # billed calls made (a retried call that was billed counts again)
    retries: int = 0  # requests retried inside the backend (each reached the service, none billed)
    meta: dict[str, Any] = field(default_factory=dict)  # e.g. request_id, model, usage


class JobJournal(Protocol):
    """Where a backend records a long-running job's id before it polls, so a crash never
    loses a paid job; the next build re-attaches to it."""

    def pending(self, key: str) -> str | None: ...

    def started(self, key: str, request_id: str) -> None: ...

    def finished(self, key: str) -> None: ...


class BackendError(Exception):
    """A call failed for good (after the retries the backend allows). The message names
    the step; it never contains a secret. A backend sets `spent_calls`, `spent_usd`,
    `spent_retries` and `possibly_billed` on it when the failed call still cost something."""

    def __init__(self, message: str, *, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


class ModerationBlocked(BackendError):
    pass


class TransientError(BackendError):
    """A call failed for a passing reason (service unavailable, reset connection): retry."""

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


class RateLimited(BackendError):
    """The provider refused the call for now (HTTP 429 / RESOURCE_EXHAUSTED): retry later."""

    def __init__(self, message: str):
        super().__init__(message, retryable=True)


@runtime_checkable
class Backend(Protocol):
    name: str  # "offline" | "xai"

    def generate_image(self, req: ImageRequest) -> CallResult:
        """text → image (`req.references` is empty)."""

    def edit_image(self, req: ImageRequest) -> CallResult:
        """Single- or multi-image edit: 1–3 `req.references`, in slot order."""

    def image_to_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        """`req.image` (or, without one, `req.references`) → a clip of `req.duration_s`,
        ending on `req.last_frame` when given; `job_key` names the job in the journal."""

    def edit_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        """`req.video` (≤ 8.7 s) → a corrected clip of the same duration."""

    def extend_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        """`req.video` → the same clip continued by `req.duration_s` new seconds (the
        output holds both)."""

    def judge(self, req: JudgeRequest) -> tuple[ConsistencyScore, CallResult]:
        """Vision check: image + references + description → ConsistencyScore."""

    def text_to_speech(self, req: SpeechRequest) -> CallResult:
        """`req.text` spoken in `req.voice`, written to `req.dest` (a WAV file)."""

    def plan(self, system_prompt: str, user_prompt: str, model: str) -> tuple[StoryPlan, CallResult]:
        """Concept → StoryPlan (structured output)."""

    def close(self) -> None: ...


OnEvent = Callable[[str, Mapping[str, Any]], None]
