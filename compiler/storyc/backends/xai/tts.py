"""xAI text to speech: `POST {STORYC_XAI_REST_URL}/tts` (default https://api.x.ai/v1/tts),
the REST endpoint the Python SDK does not cover (xai-facts.md), called with httpx.

The request: JSON `text`, `voice_id`, `language`, `output_format`, the API key as a bearer
token; the answer is the audio bytes. storyc asks for WAV (24 kHz mono 16-bit), so a line's
length is exact and ffmpeg mixes it as is. The bytes are checked to be a WAV file, capped in
size, and written atomically to the line's file.

Paid for exactly once, by the same rules as the gRPC calls (errors.py):

| failure                                         | billed?   | storyc                                 |
|-------------------------------------------------|-----------|----------------------------------------|
| refused or reset before the request was sent    | no        | retried with backoff, counted          |
| HTTP 429, 500, 502, 503, 504                    | no        | retried with backoff, counted          |
| a timeout, a connection lost mid-answer         | maybe     | possibly billed, not repeated          |
| HTTP 200 that is not audio                      | yes       | final, its cost recorded               |
| HTTP 400/422 naming moderation or content policy| no        | final, naming the line to rewrite      |
| anything else (401, 403, 400...)                | no        | final                                  |

What a request asks for besides the text and the voice (language, format) is in
storyc.model.voices, which the graph reads for cache keys. Every request takes a token of
the `tts` rate bucket. Every message is scrubbed of the key;
the key is only ever in the Authorization header. Plain http is allowed only for a loopback
host with STORYC_XAI_INSECURE=1 (a local test service), as for gRPC. httpx is imported when
the first line is spoken.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from storyc.backends.base import BackendError, CallResult, ModerationBlocked, SpeechRequest
from storyc.backends.download import is_loopback_host
from storyc.backends.xai.errors import (
    PossiblyBilled,
    Tally,
    XaiApiError,
    XaiRateLimited,
    XaiUnavailable,
    is_moderation,
    spent_on_error,
)
from storyc.backends.xai.transport import XaiTransport
from storyc.model import prices as pricing
from storyc.model.voices import TTS_LANGUAGE, TTS_OUTPUT_FORMAT, TTS_PATH
from storyc.redact import redact
from storyc.store.fsutil import atomic_write_bytes

REST_URL_ENV = "STORYC_XAI_REST_URL"
DEFAULT_REST_URL = "https://api.x.ai/v1"
MAX_TTS_BYTES = 64 << 20  # 15,000 characters at 24 kHz 16-bit is about 30 MB
RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


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


class SpeechCalls(XaiTransport):
    """Mixed into XaiBackend (uses XaiTransport's config, rate buckets, `_step`, `_check_open`)."""

    def _init_speech(self, env: Mapping[str, str]) -> None:
        # a bad STORYC_XAI_REST_URL fails when the backend is made, before any call
        self._tts_url = rest_base_url(env, insecure=self.config.insecure)
        self._http: Any = None
        self._http_lock = threading.Lock()

    def _http_client(self) -> Any:
        with self._http_lock:
            if self._http is None:
                import httpx

                self._http = httpx.Client(
                    base_url=self._tts_url + "/",
                    timeout=self.config.timeout_s,
                    headers={"Authorization": f"Bearer {self.config.api_key}", "Accept": "audio/wav"},
                    follow_redirects=False,  # the key goes to the configured host only
                )
            return self._http

    def _close_speech(self) -> None:
        with self._http_lock:
            if self._http is not None:
                self._http.close()
                self._http = None

    def text_to_speech(self, req: SpeechRequest) -> CallResult:
        """`req.text` in `req.voice`, written to `req.dest` (WAV); billed at the table's price."""
        import httpx

        step = self._step(req, "tts")
        body = {
            "text": req.text,
            "voice_id": req.voice,
            "language": TTS_LANGUAGE,
            "output_format": dict(TTS_OUTPUT_FORMAT),
        }
        table = pricing.tts_cost(req.text)
        tally = Tally(meta={"voice": req.voice, "characters": len(req.text)})
        with spent_on_error(tally):
            while True:
                self._check_open(step)
                self.rate_limiter.acquire("tts")
                try:
                    response = self._http_client().post(TTS_PATH, json=body)
                except (httpx.ConnectError, httpx.ConnectTimeout) as exc:  # the request never left
                    self._retry_or_raise(step, tally, XaiUnavailable, f"unreachable: {exc}")
                    continue
                except httpx.TransportError as exc:  # sent: the service may have done (and billed) it
                    tally.bill(table, "price_table")
                    tally.possibly_billed += 1
                    raise PossiblyBilled(
                        redact(
                            f"{step}: the xAI text-to-speech request got no answer ({type(exc).__name__}: {exc}); "
                            f"the service may have done and billed it, so it is not repeated: counted as possibly "
                            f"billed (${table:.4f}); build again to retry"
                        ),
                        code=type(exc).__name__,
                    ) from None
                status = response.status_code
                if status in RETRY_STATUS:
                    error = XaiRateLimited if status == 429 else XaiUnavailable
                    self._retry_or_raise(step, tally, error, f"HTTP {status}: {_detail(response)}")
                    continue
                if status != 200:
                    raise self._refused(step, req, status, _detail(response))
                tally.bill(table, "price_table")  # the answer came: the line was billed
                data = response.content
                if len(data) > MAX_TTS_BYTES or not is_wav(data):
                    kind = response.headers.get("content-type", "no content type")
                    raise BackendError(
                        f"{step}: xAI text to speech answered {len(data)} bytes that are not a WAV file ({kind})"
                    )
                atomic_write_bytes(Path(req.dest), data)
                return tally.result(Path(req.dest), "tts")

    def _retry_or_raise(self, step: str, tally: Tally, error: type[XaiApiError], why: str) -> None:
        """Wait and count one more attempt, or raise `error` (final) once the bound is reached."""
        if tally.retries < self.config.max_retries:
            self._closed.wait(self.config.backoff(tally.retries))  # an interruptible sleep
            tally.retries += 1
            return
        message = f"{step}: xAI text to speech failed: {why} (still failing after {tally.retries} retries)"
        raise error(redact(message), code=why.split(":", 1)[0], retryable=False)

    def _refused(self, step: str, req: SpeechRequest, status: int, detail: str) -> BackendError:
        if status in (400, 422) and is_moderation(detail):
            line = req.hints.get("line")
            what = f"line {line}" if line else "a line"
            scene = req.hints.get("scene_id")
            where = f" of scene {scene}" if scene is not None else ""
            return ModerationBlocked(
                redact(f"{step}: xAI moderation refused {what}{where} (HTTP {status}: {detail}); rewrite it")
            )
        hint = " (check XAI_API_KEY)" if status in (401, 403) else ""
        return XaiApiError(
            redact(f"{step}: xAI text to speech failed: HTTP {status}: {detail}{hint}"), code=str(status)
        )


def _detail(response: Any) -> str:
    return " ".join(response.text.split())[:300]
