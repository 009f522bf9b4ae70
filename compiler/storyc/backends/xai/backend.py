"""The xai backend: storyc's calls on the real xai-sdk (the only module importing it).

Configuration comes from the environment (see `XaiConfig.from_env`):
  XAI_API_KEY            required; never logged, never in an exception text
  XAI_API_HOST           default api.x.ai
  STORYC_XAI_INSECURE=1  plaintext gRPC (and REST), refused unless the host is loopback (local test services)
  STORYC_XAI_REST_URL    default https://api.x.ai/v1: text to speech (tts.py)
  STORYC_XAI_TIMEOUT, STORYC_XAI_POLL_INTERVAL, STORYC_XAI_VIDEO_TIMEOUT,
  STORYC_XAI_RETRY_BASE, STORYC_XAI_MAX_RETRIES, STORYC_RATE_LIMITS ("image=5,video=1")

Behaviour (xai-facts.md):
- Local inputs (reference photos, extracted frames, pinned keyframes, clips to edit) are
  sent inline as data URIs, downscaled with Pillow when needed to stay well under the
  20 MiB gRPC message cap.
- Video jobs: `video.start`, the request id written to the journal BEFORE polling, then
  our own `video.get` polling; a later call with the same job key re-attaches instead of
  paying again. EXPIRED restarts the job once; FAILED raises with its code and message.
- Retries: RESOURCE_EXHAUSTED and UNAVAILABLE (after the SDK channel's own retries) with
  exponential backoff and jitter, at most `max_retries` per RPC; DEADLINE_EXCEEDED once;
  a moderation block gets one reworded attempt, then `ModerationBlocked` naming the step.
  Nothing else is retried. An error raised after these retries (or after the EXPIRED
  restart, the polling limit, an invalid model answer) is final: `retryable=False`, so the
  build's own step retries do not multiply the bound (they still retry what the backend
  does not: an expired result URL, a truncated or failed download).
- Results are downloaded at once (storyc.backends.download), a truncated body re-downloaded.
"""

from __future__ import annotations

import base64
import io
import os
import random
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import grpc
import pydantic
import xai_sdk
from xai_sdk.chat import image as chat_image
from xai_sdk.chat import system, user
from xai_sdk.proto import deferred_pb2
from xai_sdk.video import VideoResponse

from storyc.backends.base import (
    BackendError,
    CallResult,
    ImageRequest,
    JobJournal,
    JudgeRequest,
    ModerationBlocked,
    RateLimited,
    SpeechRequest,
    TransientError,
    VideoRequest,
)
from storyc.backends.download import (
    MAX_IMAGE_BYTES,
    MAX_VIDEO_BYTES,
    AssetExpired,
    DownloadRefused,
    DownloadTruncated,
    download,
    is_loopback_host,
    sniff_kind,
)
from storyc.backends.ratelimit import RateLimiter
from storyc.backends.xai.tts import TtsClient, TtsConfig, rest_base_url
from storyc.model import prices as pricing
from storyc.model.story import MAX_REFERENCE_IMAGES, VIDEO_EDIT_MAX_S
from storyc.model.story_plan import StoryPlan
from storyc.model.vision import ConsistencyScore
from storyc.redact import redact, register_secret

T = TypeVar("T")

DEFAULT_HOST = "api.x.ai"
# The default softening when no `reword` is given (storyc's builds pass PromptSet.reword).
# It is appended, not prefixed: every prompt must keep starting with the style lock.
REWORD_NOTE = "A family-friendly, non-violent depiction, suitable for all audiences."
MIB = 1 << 20
# gRPC messages are capped at 20 MiB; inline media in one request stays under this budget.
MESSAGE_BUDGET_BYTES = 16 * MIB
MAX_INLINE_IMAGE_BYTES = 6 * MIB  # raw bytes of one inline image (chat images: 10 MiB max)
MAX_INLINE_VIDEO_BYTES = 12 * MIB  # raw bytes of a clip to edit (base64: ~16 MiB)
VIDEO_EDIT_TOLERANCE_S = 0.05  # container durations overshoot by a frame or an AAC packet

TRANSIENT = (grpc.StatusCode.RESOURCE_EXHAUSTED, grpc.StatusCode.UNAVAILABLE)


class XaiApiError(BackendError):
    """A gRPC call failed for good; `code` is the gRPC status name."""

    def __init__(self, message: str, *, code: str, retryable: bool):
        BackendError.__init__(self, message, retryable=retryable)  # not super(): see the mixins below
        self.code = code


class XaiRateLimited(XaiApiError, RateLimited):
    """RESOURCE_EXHAUSTED after storyc's bounded retries (final: `retryable` is False)."""


class XaiUnavailable(XaiApiError, TransientError):
    """UNAVAILABLE / DEADLINE_EXCEEDED after the retries allowed (final: `retryable` is False)."""


def _api_error(message: str, code: grpc.StatusCode | None) -> XaiApiError:
    """The final error of an RPC. Never retryable: the transient codes were already retried
    within storyc's bound (a step-level retry on top would multiply it, e.g. DEADLINE_EXCEEDED
    tried 10 times instead of twice), and every other code is not retried at all."""
    name = code.name if code is not None else "UNKNOWN"
    if code == grpc.StatusCode.RESOURCE_EXHAUSTED:
        return XaiRateLimited(message, code=name, retryable=False)
    if code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
        return XaiUnavailable(message, code=name, retryable=False)
    return XaiApiError(message, code=name, retryable=False)


class InvalidAnswer(BackendError):
    """A structured-output answer that does not validate. `answer` is its raw JSON text
    (so `storyc plan` can still write it for the author to fix), `cost_usd` the call's estimate."""

    def __init__(self, message: str, *, answer: str | None, cost_usd: float):
        super().__init__(message, retryable=False)
        self.answer = answer
        self.cost_usd = cost_usd
        self.spent_calls, self.spent_usd = 1, cost_usd  # as every failed paid call reports it


class _KeepAnswer:
    """Stands in for a pydantic model in `chat.parse(shape)` (which reads the schema from it
    and validates the answer with it) and keeps the raw answer text."""

    def __init__(self, model: type[pydantic.BaseModel]):
        self.model = model
        self.answer: str | None = None

    def model_json_schema(self, *args: Any, **kwargs: Any) -> dict:
        return self.model.model_json_schema(*args, **kwargs)

    def model_validate_json(self, text: Any, *args: Any, **kwargs: Any) -> Any:
        self.answer = text if isinstance(text, str) else bytes(text).decode("utf-8", "replace")
        return self.model.model_validate_json(text, *args, **kwargs)

    def __getattr__(self, name: str) -> Any:  # anything else chat.parse may read
        return getattr(self.model, name)


class VideoJobFailed(BackendError):
    """The provider reported the video job FAILED."""

    def __init__(self, message: str, *, code: str):
        super().__init__(message, retryable=False)
        self.code = code


def _default_reword(prompt: str) -> str:
    return f"{prompt.rstrip()} {REWORD_NOTE}"


def _env_float(env: Mapping[str, str], name: str, default: float) -> float:
    raw = env.get(name)
    if not raw:
        return default
    try:
        return float(raw)
    except ValueError:
        raise BackendError(f"{name}={raw!r} is not a number") from None


@dataclass
class XaiConfig:
    api_key: str = field(repr=False)
    api_host: str = DEFAULT_HOST
    insecure: bool = False
    timeout_s: float = 300.0  # per RPC
    poll_interval_s: float = 2.0
    video_timeout_s: float = 900.0  # polling gives up (the job stays in the journal)
    retry_base_s: float = 1.0
    retry_max_delay_s: float = 30.0
    max_retries: int = 5  # RESOURCE_EXHAUSTED / UNAVAILABLE retries per RPC
    deadline_retries: int = 1
    expired_restarts: int = 1
    download_attempts: int = 3  # a truncated body is fetched again, at most this many times in all
    rate_spec: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> XaiConfig:
        env = os.environ if env is None else env
        api_key = overrides.pop("api_key", None) or env.get("XAI_API_KEY", "").strip()
        if not api_key:
            raise BackendError(
                "the xai backend needs an API key: set XAI_API_KEY (https://console.x.ai), "
                "or render locally with --backend offline"
            )
        values: dict[str, Any] = dict(
            api_key=api_key,
            api_host=env.get("XAI_API_HOST", "").strip() or DEFAULT_HOST,
            insecure=env.get("STORYC_XAI_INSECURE", "") in ("1", "true", "yes"),
            timeout_s=_env_float(env, "STORYC_XAI_TIMEOUT", cls.timeout_s),
            poll_interval_s=_env_float(env, "STORYC_XAI_POLL_INTERVAL", cls.poll_interval_s),
            video_timeout_s=_env_float(env, "STORYC_XAI_VIDEO_TIMEOUT", cls.video_timeout_s),
            retry_base_s=_env_float(env, "STORYC_XAI_RETRY_BASE", cls.retry_base_s),
            max_retries=int(_env_float(env, "STORYC_XAI_MAX_RETRIES", cls.max_retries)),
            rate_spec=env.get("STORYC_RATE_LIMITS") or None,
        )
        values.update(overrides)
        return cls(**values)

    @property
    def host_name(self) -> str:
        host = self.api_host
        if host.startswith("["):
            return host[1 : host.find("]")]
        return host.rsplit(":", 1)[0] if host.count(":") == 1 else host

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (0-based): exponential, capped, jittered 50-100 %."""
        delay = min(self.retry_max_delay_s, self.retry_base_s * (2**attempt))
        return delay * random.uniform(0.5, 1.0)


@dataclass
class _Tally:
    """What one public call spent: billed calls, absorbed retries, cost, facts for the report."""

    calls: int = 0
    retries: int = 0
    cost: float = 0.0
    meta: dict[str, Any] = field(default_factory=dict)

    def result(self, path: Path | None, kind: str) -> CallResult:
        return CallResult(
            path=path, cost_usd=round(self.cost, 6), kind=kind, calls=self.calls, retries=self.retries, meta=self.meta
        )


class _MemoryJournal:
    """Used when the caller gives no journal: ids live only as long as this backend."""

    def __init__(self) -> None:
        self._jobs: dict[str, str] = {}
        self._lock = threading.Lock()

    def pending(self, key: str) -> str | None:
        with self._lock:
            return self._jobs.get(key)

    def started(self, key: str, request_id: str) -> None:
        with self._lock:
            self._jobs[key] = request_id

    def finished(self, key: str) -> None:
        with self._lock:
            self._jobs.pop(key, None)


@contextmanager
def _spent_on_error(tally: _Tally) -> Iterator[None]:
    """A call that fails after paid work (a video delivered to a dead URL, a reworded
    attempt blocked again) still cost money: the error carries `spent_calls` and
    `spent_usd`, so the caller can count it in report.json and against --max-cost."""
    try:
        yield
    except BackendError as exc:
        exc.spent_calls = tally.calls  # type: ignore[attr-defined]
        exc.spent_usd = round(tally.cost, 6)  # type: ignore[attr-defined]
        raise


# ─── inline inputs ───────────────────────────────────────────────────────────


def inline_image(path: Path, max_bytes: int = MAX_INLINE_IMAGE_BYTES, *, step: str = "") -> str:
    """A local image as a data URI: JPEG/PNG as is when small enough, else re-encoded as a
    downscaled JPEG (Pillow, imported only then) until it fits `max_bytes`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackendError(f"{step}: cannot read input image {path}: {exc.strerror or exc}") from None
    kind = sniff_kind(data[:16])
    if kind in ("jpeg", "png") and len(data) <= max_bytes:
        return f"data:image/{kind};base64,{base64.b64encode(data).decode('ascii')}"
    try:
        from PIL import Image, ImageOps

        with Image.open(io.BytesIO(data)) as opened:
            picture = ImageOps.exif_transpose(opened).convert("RGB")
    except Exception as exc:  # Pillow raises many types for bad files
        raise BackendError(f"{step}: input image {path} is not a readable picture ({exc})") from None
    side, quality = min(max(picture.size), 2048), 90
    while True:
        copy = picture.copy()
        copy.thumbnail((side, side))
        out = io.BytesIO()
        copy.save(out, "JPEG", quality=quality, optimize=True)
        if out.tell() <= max_bytes or side <= 256:
            return f"data:image/jpeg;base64,{base64.b64encode(out.getvalue()).decode('ascii')}"
        side, quality = int(side * 0.75), max(70, quality - 5)


def probe_duration(path: Path) -> float | None:
    """A clip's duration in seconds (PyAV, imported only here), None if unknown."""
    try:
        import av

        with av.open(str(path)) as container:
            if container.duration:
                return container.duration / 1_000_000
    except Exception:
        return None
    return None


def inline_video(path: Path, max_bytes: int = MAX_INLINE_VIDEO_BYTES, *, step: str = "") -> str:
    """A local MP4 as a data URI, re-encoded smaller (ffmpeg) when over `max_bytes`."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise BackendError(f"{step}: cannot read input video {path}: {exc.strerror or exc}") from None
    if sniff_kind(data[:16]) != "mp4":
        raise BackendError(f"{step}: input video {path} is not an MP4 file")
    if len(data) > max_bytes:
        import imageio_ffmpeg

        with tempfile.TemporaryDirectory(prefix="storyc-edit-") as tmp:
            smaller = Path(tmp) / "input.mp4"
            proc = subprocess.run(
                [
                    imageio_ffmpeg.get_ffmpeg_exe(),
                    "-v",
                    "error",
                    "-y",
                    "-i",
                    str(path),
                    "-vf",
                    "scale='min(1280,iw)':-2",
                    "-c:v",
                    "libx264",
                    "-crf",
                    "28",
                    "-preset",
                    "veryfast",
                    "-c:a",
                    "aac",
                    "-b:a",
                    "96k",
                    "-movflags",
                    "+faststart",
                    str(smaller),
                ],
                capture_output=True,
            )
            data = smaller.read_bytes() if proc.returncode == 0 and smaller.exists() else data
        if len(data) > max_bytes:
            raise BackendError(f"{step}: input video {path} is too large to send ({len(data)} bytes)")
    return f"data:video/mp4;base64,{base64.b64encode(data).decode('ascii')}"


# ─── the backend ─────────────────────────────────────────────────────────────


class XaiBackend:
    """storyc's `Backend` on xai-sdk's synchronous client (thread-safe: one gRPC channel)."""

    name = "xai"

    def __init__(
        self,
        config: XaiConfig | None = None,
        *,
        rate_limiter: RateLimiter | None = None,
        reword: Callable[[str], str] | None = None,
        client: Any = None,
    ):
        self.config = config or XaiConfig.from_env()
        cfg = self.config
        register_secret(cfg.api_key)  # every storyc message is scrubbed of it from now on
        if cfg.insecure and not is_loopback_host(cfg.host_name):
            raise BackendError(
                f"STORYC_XAI_INSECURE=1 sends the API key in plaintext; it is only allowed for a loopback "
                f"XAI_API_HOST (a local test service), not {cfg.host_name}"
            )
        try:
            self.rate_limiter = rate_limiter or RateLimiter.from_spec(cfg.rate_spec)
        except ValueError as exc:
            raise BackendError(f"STORYC_RATE_LIMITS: {exc}") from None
        self._reword = reword or _default_reword
        # Result URLs are https; plain http only from a local test service on loopback.
        self._allow_loopback_http = is_loopback_host(cfg.host_name)
        if client is None:
            try:
                client = xai_sdk.Client(
                    api_key=cfg.api_key,
                    api_host=cfg.api_host,
                    timeout=cfg.timeout_s,
                    use_insecure_channel=cfg.insecure,
                )
            except Exception as exc:
                raise BackendError(redact(f"cannot set up the xAI client for {cfg.api_host}: {exc}")) from None
        self._client = client
        self._journal = _MemoryJournal()  # used when a caller passes no journal
        self._closed = threading.Event()
        # text to speech is REST, not gRPC (tts.py); a bad STORYC_XAI_REST_URL fails here, before any call
        self._tts = TtsClient(
            TtsConfig(
                base_url=rest_base_url(os.environ, insecure=cfg.insecure),
                api_key=cfg.api_key,
                timeout_s=cfg.timeout_s,
                max_retries=cfg.max_retries,
                deadline_retries=cfg.deadline_retries,
                retry_base_s=cfg.retry_base_s,
                retry_max_delay_s=cfg.retry_max_delay_s,
            ),
            closed=self._closed,
        )

    @classmethod
    def from_env(cls, **config_overrides: Any) -> XaiBackend:
        return cls(XaiConfig.from_env(**config_overrides))

    # ── plumbing ───────────────────────────────────────────────────────────
    def _rpc(self, kind: str, step: str, tally: _Tally, fn: Callable[[], T], *, limited: bool = True) -> T:
        """Run one RPC with storyc's retry rules; other errors become a redacted XaiApiError."""
        transient = deadline = 0
        while True:
            self._check_open(step)
            if limited:
                self.rate_limiter.acquire(kind)
            try:
                return fn()
            except ValueError:
                self._check_open(step)  # "Cannot invoke RPC on closed channel!" after close()
                raise
            except grpc.RpcError as exc:
                if self._closed.is_set():
                    self._check_open(step)
                code = exc.code() if callable(getattr(exc, "code", None)) else None
                details = exc.details() if callable(getattr(exc, "details", None)) else ""
                if code in TRANSIENT and transient < self.config.max_retries:
                    self._closed.wait(self.config.backoff(transient))  # an interruptible sleep
                    transient += 1
                    tally.retries += 1
                    continue
                if code == grpc.StatusCode.DEADLINE_EXCEEDED and deadline < self.config.deadline_retries:
                    deadline += 1
                    tally.retries += 1
                    continue
                name = code.name if code is not None else "UNKNOWN"
                hint = ""
                if code in TRANSIENT:
                    hint = f" (still failing after {transient} retries)"
                elif code == grpc.StatusCode.UNAUTHENTICATED or code == grpc.StatusCode.PERMISSION_DENIED:
                    hint = " (check XAI_API_KEY)"
                raise _api_error(redact(f"{step}: xAI {kind} request failed: {name}: {details}{hint}"), code) from None

    def _download(self, url: str, dest: Path, kinds: tuple[str, ...], cap: int, step: str, tally: _Tally) -> Path:
        for attempt in range(self.config.download_attempts):
            try:
                return download(
                    url, dest, max_bytes=cap, allowed_kinds=kinds, allow_loopback_http=self._allow_loopback_http
                )
            except DownloadTruncated as exc:
                if attempt + 1 >= self.config.download_attempts:
                    raise DownloadTruncated(redact(f"{step}: {exc}")) from None
                tally.retries += 1
            except AssetExpired as exc:
                raise AssetExpired(redact(f"{step}: {exc}")) from None
            except DownloadRefused as exc:
                raise DownloadRefused(redact(f"{step}: {exc}")) from None
        raise AssertionError("unreachable")

    @staticmethod
    def _step(req: Any, default: str) -> str:
        return str(req.hints.get("step_id") or default) if getattr(req, "hints", None) else default

    @staticmethod
    def _blocked(step: str, what: str, req: Any) -> ModerationBlocked:
        """Name what the author must rewrite: the scene (or the character) in story terms."""
        hints = getattr(req, "hints", None) or {}
        if hints.get("scene_id") is not None:
            subject = f"scene {hints['scene_id']}"
            fix = f"rewrite scene {hints['scene_id']}'s action, description or mood"
        elif hints.get("name"):
            subject = f"character {hints['name']}"
            fix = f"rewrite {hints['name']}'s visual_description"
        else:
            subject, fix = "this step", "rewrite this step's text"
        return ModerationBlocked(
            redact(
                f"{step}: xAI moderation blocked the {what} prompt of {subject}, and the reworded prompt too; "
                f"{fix} and build again"
            )
        )

    # ── images ─────────────────────────────────────────────────────────────
    def _image(self, req: ImageRequest, step: str) -> CallResult:
        refs = tuple(req.references)
        if len(refs) > MAX_REFERENCE_IMAGES:
            raise BackendError(
                f"{step}: an image edit takes at most {MAX_REFERENCE_IMAGES} references, got {len(refs)}"
            )
        # The SDK's image resolution is "1k" (~1 MP) or "2k" (~4 MP), not the story's video
        # 720p/480p: 1k already exceeds a 720p frame (0.92 MP), so every story sends 1k.
        kwargs: dict[str, Any] = {"aspect_ratio": req.aspect_ratio, "resolution": "1k", "image_format": "url"}
        if refs:
            budget = min(MAX_INLINE_IMAGE_BYTES, MESSAGE_BUDGET_BYTES * 3 // 4 // len(refs))
            uris = [inline_image(p, budget, step=step) for p in refs]
            if len(uris) == 1:
                kwargs["image_url"] = uris[0]
            else:
                kwargs["image_urls"] = uris  # slot order (design section 6)
        tally = _Tally(meta={"model": req.model, "n_inputs": len(refs)})
        with _spent_on_error(tally):
            prompt = req.prompt
            for attempt in range(2):
                response = self._rpc(
                    "image", step, tally, lambda: self._client.image.sample(prompt=prompt, model=req.model, **kwargs)
                )
                tally.calls += 1
                reported = response.cost_usd
                tally.cost += reported if reported is not None else pricing.image_cost(n_inputs=len(refs))
                try:
                    url = response.url
                except ValueError:
                    if response.respect_moderation:
                        raise BackendError(f"{step}: xAI returned no image URL", retryable=True) from None
                    if attempt == 0:
                        prompt = self._reword(prompt)
                        tally.retries += 1
                        tally.meta["reworded"] = True
                        continue
                    raise self._blocked(step, "image", req) from None
                self._download(url, req.dest, ("jpeg", "png"), MAX_IMAGE_BYTES, step, tally)
                tally.meta["cost_source"] = "usage" if reported is not None else "price_table"
                return tally.result(req.dest, "image")
            raise AssertionError("unreachable")

    def generate_image(self, req: ImageRequest) -> CallResult:
        if req.references:
            return self.edit_image(req)
        return self._image(req, self._step(req, "image"))

    def edit_image(self, req: ImageRequest) -> CallResult:
        step = self._step(req, "image-edit")
        if not req.references:
            raise BackendError(f"{step}: an image edit needs 1-{MAX_REFERENCE_IMAGES} reference images")
        return self._image(req, step)

    # ── videos ─────────────────────────────────────────────────────────────
    def image_to_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        step = self._step(req, job_key)
        if req.image is None:
            raise BackendError(f"{step}: image→video needs a start image")
        start = {
            "image_url": lambda: inline_image(req.image, step=step),
            "duration": int(req.duration_s),
            "aspect_ratio": req.aspect_ratio,
            "resolution": req.resolution,
            "generate_audio": req.generate_audio,  # audio.native: the clip's own sound, or a silent clip
        }
        if req.voices:  # the speakers' voices (grok-imagine-video-1.5), <AUDIO_1>... in the prompt
            start["reference_audios"] = [{"voice_id": voice} for voice in req.voices]
        return self._video_job(req, step, job_key, journal, start, pricing.video_cost(req.duration_s, req.resolution))

    def edit_video(self, req: VideoRequest, *, job_key: str, journal: JobJournal | None = None) -> CallResult:
        step = self._step(req, job_key)
        if req.video is None:
            raise BackendError(f"{step}: a video edit needs an input clip")
        duration = probe_duration(req.video) or float(req.duration_s)
        if duration > VIDEO_EDIT_MAX_S + VIDEO_EDIT_TOLERANCE_S:
            raise BackendError(
                f"{step}: the video edit endpoint takes clips of at most {VIDEO_EDIT_MAX_S} s; this one is {duration:.2f} s"
            )
        # Output keeps the input's duration, ratio and resolution: no custom ones for an edit.
        start = {"video_url": lambda: inline_video(req.video, step=step)}
        return self._video_job(req, step, job_key, journal, start, pricing.video_cost(duration, req.resolution))

    def _video_job(
        self,
        req: VideoRequest,
        step: str,
        job_key: str,
        journal: JobJournal | None,
        start_args: dict[str, Any],
        table_cost: float,
    ) -> CallResult:
        journal = journal if journal is not None else self._journal
        tally = _Tally(meta={"model": req.model})
        prompt = req.prompt
        reworded = False
        restarts = 0
        request_id = journal.pending(job_key)
        reattached = request_id is not None
        if reattached:
            tally.meta["reattached"] = request_id
        inline: dict[str, Any] | None = None  # data URIs built only if a job must be started

        with _spent_on_error(tally):
            while True:
                if request_id is None:
                    if inline is None:
                        inline = {k: (v() if callable(v) else v) for k, v in start_args.items()}
                    started = self._rpc(
                        "video",
                        step,
                        tally,
                        lambda: self._client.video.start(prompt=prompt, model=req.model, **inline),
                    )
                    tally.calls += 1
                    request_id = started.request_id
                    # Persist the id before the first poll: a crash from here on loses no paid job.
                    journal.started(job_key, request_id)
                    reattached = False
                tally.meta["request_id"] = request_id
                try:
                    result = self._poll(request_id, step, tally)
                except XaiApiError as exc:
                    if reattached and exc.code == "NOT_FOUND":
                        # The provider no longer knows the journaled job: start a new one.
                        journal.finished(job_key)
                        request_id, reattached = None, False
                        continue
                    raise

                if result.status == deferred_pb2.DeferredStatus.EXPIRED:
                    journal.finished(job_key)
                    if restarts >= self.config.expired_restarts:
                        # final: a step retry would start (and maybe pay for) more jobs
                        raise BackendError(f"{step}: the video job expired again after a restart")
                    restarts += 1
                    tally.retries += 1
                    request_id = None
                    continue
                if result.status == deferred_pb2.DeferredStatus.FAILED:
                    journal.finished(job_key)
                    code, message = "UNKNOWN", "no error details"
                    if result.HasField("response") and result.response.HasField("error"):
                        code = result.response.error.code or code
                        message = result.response.error.message or message
                    raise VideoJobFailed(redact(f"{step}: video generation failed [{code}]: {message}"), code=code)

                # DONE
                if not result.HasField("response"):
                    journal.finished(job_key)
                    raise BackendError(f"{step}: the video job finished without a result", retryable=True)
                video = VideoResponse(result.response)
                reported = video.cost_usd
                tally.cost += reported if reported is not None else table_cost
                try:
                    url = video.url
                except ValueError:
                    journal.finished(job_key)
                    if video.respect_moderation:
                        raise BackendError(f"{step}: xAI returned no video URL", retryable=True) from None
                    if reworded:
                        raise self._blocked(step, "video", req) from None
                    reworded = True
                    prompt = self._reword(prompt)
                    tally.retries += 1
                    tally.meta["reworded"] = True
                    request_id = None
                    continue
                try:
                    self._download(url, req.dest, ("mp4",), MAX_VIDEO_BYTES, step, tally)
                except (AssetExpired, DownloadRefused):
                    journal.finished(job_key)  # re-attaching would only find the same dead URL
                    raise
                # Other download errors keep the journal entry: the next build re-attaches and
                # downloads again without paying for a new job.
                journal.finished(job_key)
                tally.meta["duration_s"] = video.duration
                tally.meta["cost_source"] = "usage" if reported is not None else "price_table"
                return tally.result(req.dest, "video")

    def _poll(self, request_id: str, step: str, tally: _Tally):
        """Poll until the job leaves PENDING; returns the GetDeferredVideo response."""
        deadline = time.monotonic() + self.config.video_timeout_s
        while True:
            result = self._rpc("video", step, tally, lambda: self._client.video.get(request_id), limited=False)
            if result.status in (
                deferred_pb2.DeferredStatus.DONE,
                deferred_pb2.DeferredStatus.EXPIRED,
                deferred_pb2.DeferredStatus.FAILED,
            ):
                return result
            if time.monotonic() >= deadline:
                raise BackendError(
                    f"{step}: video job {request_id} still pending after {self.config.video_timeout_s:.0f} s; "
                    f"the next build re-attaches to it"
                )  # final: STORYC_XAI_VIDEO_TIMEOUT is the polling limit, not a fifth of it
            self._closed.wait(self.config.poll_interval_s)  # close() ends the wait at once

    # ── chat: vision and planning ──────────────────────────────────────────
    def _parse(self, kind: str, step: str, tally: _Tally, chat: Any, shape: type[T]) -> tuple[Any, T]:
        keeper = _KeepAnswer(shape)
        try:
            return self._rpc(kind, step, tally, lambda: chat.parse(keeper))
        except pydantic.ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {}
            where = ".".join(str(p) for p in first.get("loc", ())) or "answer"
            raise InvalidAnswer(
                redact(
                    f"{step}: the model's answer is not a valid {shape.__name__} ({where}: {first.get('msg', exc)})"
                ),
                answer=keeper.answer,
                cost_usd=pricing.chat_cost(),  # paid, but the usage went down with the parse
            ) from None  # not retried: asking again is a new paid call the rules do not allow

    def judge(self, req: JudgeRequest) -> tuple[ConsistencyScore, CallResult]:
        step = self._step(req, f"judge:{req.kind}")
        images = [req.image, *req.references]  # the image under test first, then references
        budget = min(MAX_INLINE_IMAGE_BYTES, MESSAGE_BUDGET_BYTES * 3 // 4 // len(images))
        uris = [inline_image(p, budget, step=step) for p in images]
        tally = _Tally(meta={"model": req.model, "n_images": len(images)})
        chat = self._client.chat.create(model=req.model)
        chat.append(user(req.prompt, *(chat_image(u) for u in uris)))
        response, score = self._parse("vision", step, tally, chat, ConsistencyScore)
        tally.calls += 1
        tally.cost += pricing.chat_cost(response.usage, n_images=len(images))
        return score, tally.result(None, "vision")

    def plan(self, system_prompt: str, user_prompt: str, model: str) -> tuple[StoryPlan, CallResult]:
        tally = _Tally(meta={"model": model})
        chat = self._client.chat.create(model=model)
        chat.append(system(system_prompt))
        chat.append(user(user_prompt))
        response, story_plan = self._parse("chat", "plan", tally, chat, StoryPlan)
        tally.calls += 1
        tally.cost += pricing.chat_cost(response.usage)
        return story_plan, tally.result(None, "chat")

    # ── speech ─────────────────────────────────────────────────────────────
    def text_to_speech(self, req: SpeechRequest) -> CallResult:
        step = self._step(req, "tts")
        self._check_open(step)
        self.rate_limiter.acquire("tts")
        return self._tts.speak(req.text, req.voice, req.dest, step=step)

    def close(self) -> None:
        """Close the channel. Calls still running (a video poll in a worker thread after
        Ctrl-C) stop at their next wait with a BackendError; their jobs stay journaled."""
        self._closed.set()
        self._tts.close()
        close = getattr(self._client, "close", None)
        if close is not None:
            close()

    def _check_open(self, step: str) -> None:
        if self._closed.is_set():
            raise BackendError(
                f"{step}: stopped (the backend was closed); journaled video jobs are re-attached next build"
            )
