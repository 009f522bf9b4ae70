"""xAI text to speech: `POST {STORYC_XAI_REST_URL}/tts` (default https://api.x.ai/v1/tts),
the REST endpoint the Python SDK does not cover (xai-facts.md), called with httpx.

The request: JSON `text`, `voice_id`, `language`, `output_format`, the API key as a bearer
token; the answer is the audio bytes. storyc asks for WAV (24 kHz mono 16-bit), so a line's
length is exact and ffmpeg mixes it as is. The bytes are checked to be a WAV file, capped in
size, and written atomically to the line's file.

Money rules, as for the gRPC calls (backend.py): 429 and 5xx answers and a connection that
never reached the service are retried with backoff and jitter, at most `max_retries` times;
a timeout once; anything else, and an error after those retries, is final (the build's own
step retries do not multiply the bound). An answer that is not audio was still billed: the
error says so (`spent_calls`, `spent_usd`) and is final. Every message is scrubbed of the
key; the key is only ever in the Authorization header.

Plain http is allowed only for a loopback host with STORYC_XAI_INSECURE=1 (a local test
service), as for gRPC. httpx is imported when the first line is spoken.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from storyc.backends.base import BackendError, CallResult, RateLimited, TransientError
from storyc.backends.download import is_loopback_host
from storyc.model import prices as pricing
from storyc.redact import redact
from storyc.store.fsutil import atomic_write_bytes

REST_URL_ENV = "STORYC_XAI_REST_URL"
DEFAULT_REST_URL = "https://api.x.ai/v1"
TTS_PATH = "tts"
TTS_LANGUAGE = "en"
TTS_OUTPUT_FORMAT = {"codec": "wav", "sample_rate": 24000}
MAX_TTS_BYTES = 64 << 20  # 15,000 characters at 24 kHz 16-bit is about 30 MB
RETRYABLE_STATUS = frozenset({429, 500, 502, 503, 504})


def request_settings() -> dict[str, object]:
    """What besides the text and the voice decides a TTS answer, for cache keys."""
    return {"endpoint": TTS_PATH, "language": TTS_LANGUAGE, "output_format": dict(TTS_OUTPUT_FORMAT)}


def rest_base_url(env: Mapping[str, str], *, insecure: bool) -> str:
    """The REST base URL from STORYC_XAI_REST_URL: https, or http for loopback with insecure."""
    url = (env.get(REST_URL_ENV) or "").strip().rstrip("/") or DEFAULT_REST_URL
    parts = urlsplit(url)
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise BackendError(f"{REST_URL_ENV}={url!r} is not an http(s) URL (expected e.g. {DEFAULT_REST_URL})")
    if parts.scheme == "http" and not (insecure and is_loopback_host(parts.hostname)):
        raise BackendError(
            f"{REST_URL_ENV}={url!r} would send the API key in plaintext; plain http is only allowed for a "
            "loopback host with STORYC_XAI_INSECURE=1 (a local test service)"
        )
    return url


def is_wav(data: bytes) -> bool:
    return len(data) > 44 and data[:4] == b"RIFF" and data[8:12] == b"WAVE"


@dataclass
class TtsConfig:
    base_url: str
    api_key: str = field(repr=False)
    timeout_s: float = 300.0
    max_retries: int = 5
    deadline_retries: int = 1
    retry_base_s: float = 1.0
    retry_max_delay_s: float = 30.0

    def backoff(self, attempt: int) -> float:
        """Delay before retry number `attempt` (0-based): exponential, capped, jittered 50-100 %."""
        return min(self.retry_max_delay_s, self.retry_base_s * (2**attempt)) * random.uniform(0.5, 1.0)


class TtsClient:
    """One httpx client (thread-safe, created on first use) for every line of a build."""

    def __init__(self, config: TtsConfig, *, closed: threading.Event | None = None):
        self.config = config
        self._closed = closed or threading.Event()
        self._client: Any = None
        self._lock = threading.Lock()

    def _http(self) -> Any:
        with self._lock:
            if self._client is None:
                import httpx

                self._client = httpx.Client(
                    base_url=self.config.base_url + "/",
                    timeout=self.config.timeout_s,
                    headers={"Authorization": f"Bearer {self.config.api_key}", "Accept": "audio/wav"},
                    follow_redirects=False,  # the key goes to the configured host only
                )
            return self._client

    def close(self) -> None:
        self._closed.set()
        with self._lock:
            if self._client is not None:
                self._client.close()
                self._client = None

    def speak(self, text: str, voice: str, dest: Path, *, step: str) -> CallResult:
        """`text` in `voice`, written to `dest` (WAV); the table price, one billed call."""
        import httpx

        body = {"text": text, "voice_id": voice, "language": TTS_LANGUAGE, "output_format": dict(TTS_OUTPUT_FORMAT)}
        retries = transient = deadline = 0
        while True:
            if self._closed.is_set():
                raise BackendError(f"{step}: stopped (the backend was closed)")
            try:
                response = self._http().post(TTS_PATH, json=body)
            except httpx.TimeoutException as exc:
                if deadline < self.config.deadline_retries:
                    deadline += 1
                    retries += 1
                    continue
                raise BackendError(redact(f"{step}: xAI text to speech timed out: {exc}")) from None
            except httpx.TransportError as exc:  # refused or reset before an answer
                if transient < self.config.max_retries:
                    self._closed.wait(self.config.backoff(transient))
                    transient += 1
                    retries += 1
                    continue
                raise BackendError(
                    redact(f"{step}: xAI text to speech unreachable after {transient} retries: {exc}")
                ) from None
            status = response.status_code
            if status in RETRYABLE_STATUS and transient < self.config.max_retries:
                self._closed.wait(self.config.backoff(transient))
                transient += 1
                retries += 1
                continue
            if status != 200:
                raise _status_error(step, status, response.text, transient)
            data = response.content
            cost = pricing.tts_cost(text)
            if len(data) > MAX_TTS_BYTES or not is_wav(data):
                error = BackendError(
                    f"{step}: xAI text to speech answered {len(data)} bytes that are not a WAV file "
                    f"({response.headers.get('content-type', 'no content type')})"
                )
                error.spent_calls = 1  # type: ignore[attr-defined]  # billed all the same
                error.spent_usd = cost  # type: ignore[attr-defined]
                raise error
            atomic_write_bytes(Path(dest), data)
            meta = {"voice": voice, "characters": len(text), "cost_source": "price_table"}
            return CallResult(path=Path(dest), cost_usd=cost, kind="tts", calls=1, retries=retries, meta=meta)


def _status_error(step: str, status: int, text: str, transient: int) -> BackendError:
    detail = " ".join(text.split())[:300]
    message = f"{step}: xAI text to speech failed: HTTP {status}: {detail}"
    if status in RETRYABLE_STATUS:
        message += f" (still failing after {transient} retries)"
        cls: type[BackendError] = RateLimited if status == 429 else TransientError
        error = cls(redact(message))
        error.retryable = False  # final: the retries above are the bound
        return error
    if status in (401, 403):
        message += " (check XAI_API_KEY)"
    return BackendError(redact(message))
