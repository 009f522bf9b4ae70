"""What an xAI text-to-speech request is: the endpoint, the language and the audio format
storyc asks for, and where it is sent (STORYC_XAI_REST_URL). No gRPC, no httpx: the graph
reads `request_settings` for cache keys; tts.py makes the calls."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import urlsplit

from storyc.backends.base import BackendError
from storyc.backends.download import is_loopback_host

REST_URL_ENV = "STORYC_XAI_REST_URL"
DEFAULT_REST_URL = "https://api.x.ai/v1"
TTS_PATH = "tts"
TTS_LANGUAGE = "en"
TTS_OUTPUT_FORMAT = {"codec": "wav", "sample_rate": 24000}


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
