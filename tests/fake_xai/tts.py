"""A fake of xAI's text-to-speech REST endpoint (`POST /v1/tts`) on loopback, for storyc's
TTS client and xai builds with narration. storyc reaches it through its real httpx client.

It answers what the real service answers: the audio bytes (a WAV of a tone, as long as the
words take at 2.5 words per second, pitched by the voice), and refuses what the real
service would refuse: a missing or wrong bearer key (401), a body that is not JSON, an
empty text or one over 15,000 characters, an unknown voice, a missing language (400).
Every request is recorded (headers, JSON body); faults are injected in order:

    tts.inject("unavailable", times=2)     # 503 twice, then the next request is answered
    tts.inject("hang", after=1)            # the first request is answered, the second held

Faults: unavailable (503), rate_limited (429), server_error (500), echo_key (401 whose body
echoes the Authorization header), not_audio (200 with an HTML page), slow (answers after
`slow_s` seconds), hang (holds the request until `release()` or `hang_s`, then 503: a request
the service never completed, so never billed; a test kills the client meanwhile), moderation
(400 naming the content policy).
"""

from __future__ import annotations

import array
import json
import math
import threading
import time
import wave
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

VOICES = {"eve": 260.0, "ara": 210.0, "leo": 110.0, "rex": 140.0, "sal": 175.0}
LANGUAGES = {"auto", "en", "fr", "de", "es-ES", "es-MX", "it", "ja", "ko", "pt-BR", "pt-PT", "ru", "zh"}
MAX_TEXT = 15_000
WORDS_PER_SECOND = 2.5
RATE = 24_000
FAULTS = {
    "unavailable": 503,
    "rate_limited": 429,
    "server_error": 500,
    "echo_key": 401,
    "not_audio": 200,
    "slow": 200,
    "hang": 503,
    "moderation": 400,
}


def speech_wav(text: str, voice: str, rate: int = RATE) -> bytes:
    """A mono 16-bit WAV as long as `text` takes to say: a voiced tone in syllable-like bursts."""
    words = max(1, len(text.split()))
    seconds = max(0.5, words / WORDS_PER_SECOND)
    pitch = VOICES.get(voice, 200.0)
    n = int(seconds * rate)
    samples = array.array("h", bytes(2 * n))
    for i in range(n):
        t = i / rate
        burst = 0.55 + 0.45 * math.sin(2 * math.pi * 4.0 * t)  # about four syllables a second
        tone = math.sin(2 * math.pi * pitch * t) + 0.5 * math.sin(2 * math.pi * 2 * pitch * t)
        tone += 0.3 * math.sin(2 * math.pi * 1500 * t) + 0.2 * math.sin(2 * math.pi * 2500 * t)  # formant-ish
        samples[i] = int(7000 * burst * tone / 2.0)
    out = BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(samples.tobytes())
    return out.getvalue()


@dataclass
class TtsRequest:
    headers: dict[str, str]
    body: Any  # the parsed JSON (None when it was not JSON)
    status: int  # what the fake answered
    at: float

    @property
    def authorization(self) -> str:
        return self.headers.get("authorization", "")


class FakeTts:
    """`POST /v1/tts` on 127.0.0.1; `base_url` is what STORYC_XAI_REST_URL points at."""

    def __init__(self, api_key: str):
        self.api_key = api_key
        self.requests: list[TtsRequest] = []  # answered requests, in the order they were answered
        self.arrived = 0  # requests received, answered or not yet
        self.slow_s = 2.0
        self.hang_s = 60.0
        self._release = threading.Event()
        self._faults: list[list] = []
        self._lock = threading.Lock()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # keep test output clean
                pass

            def do_POST(self) -> None:
                with fake._lock:
                    fake.arrived += 1
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length)
                status, content_type, body = fake._answer(self.path, dict(self.headers.items()), raw)
                try:
                    self.send_response(status)
                    self.send_header("Content-Type", content_type)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):  # the client was killed meanwhile
                    self.close_connection = True

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fake-xai-tts", daemon=True)

    # ── lifecycle ─────────────────────────────────────────────────────────
    def start(self) -> FakeTts:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    @property
    def base_url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}/v1"

    def env(self) -> dict[str, str]:
        """Environment pointing storyc's TTS client here (plain http on loopback needs INSECURE)."""
        return {"STORYC_XAI_REST_URL": self.base_url, "STORYC_XAI_INSECURE": "1"}

    def reset(self) -> None:
        self.release()
        with self._lock:
            self.requests.clear()
            self._faults.clear()
            self.arrived = 0
        self._release = threading.Event()

    def release(self) -> None:
        """End every held (hang) request now."""
        self._release.set()

    def inject(self, fault: str, times: int = 1, *, after: int = 0) -> None:
        """`fault` for the next `times` requests, once `after` more requests have passed."""
        assert fault in FAULTS, fault
        with self._lock:
            self._faults.append([fault, times, after])

    def answered(self) -> list[TtsRequest]:
        """The requests answered with audio (each one billed by the real service)."""
        with self._lock:
            return [r for r in self.requests if r.status == 200 and isinstance(r.body, dict)]

    # ── the endpoint ─────────────────────────────────────────────────────
    def _next_fault(self) -> str | None:
        for entry in self._faults:
            if entry[2] > 0:  # not yet: this request passes
                entry[2] -= 1
                return None
            if entry[1] > 0:
                entry[1] -= 1
                return entry[0]
        return None

    def _answer(self, path: str, headers: dict[str, str], raw: bytes) -> tuple[int, str, bytes]:
        headers = {k.lower(): v for k, v in headers.items()}
        try:
            body = json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            body = None
        with self._lock:
            fault = self._next_fault()
        status, content_type, answer = self._respond(path, headers, body, fault)
        with self._lock:
            self.requests.append(TtsRequest(headers, body, status, time.monotonic()))
        return status, content_type, answer

    def _respond(self, path: str, headers: dict[str, str], body: Any, fault: str | None) -> tuple[int, str, bytes]:
        def error(status: int, message: str) -> tuple[int, str, bytes]:
            return status, "application/json", json.dumps({"error": message}).encode()

        if path.split("?", 1)[0] != "/v1/tts":
            return error(404, f"no route {path}")
        if fault == "echo_key":
            return error(401, f"invalid credentials: {headers.get('authorization', '')}")
        if fault in ("unavailable", "rate_limited", "server_error"):
            return error(FAULTS[fault], f"fake {fault}")
        if fault == "moderation":
            return error(400, "the text violates the content policy")
        if fault == "hang":
            self._release.wait(self.hang_s)
            return error(503, "fake hang: the request was never completed")
        if headers.get("authorization") != f"Bearer {self.api_key}":
            return error(401, "missing or invalid API key")
        problem = _problem(body)
        if problem:
            return error(400, problem)
        if fault == "not_audio":
            return 200, "text/html", b"<html><body>gateway says hello</body></html>"
        if fault == "slow":
            time.sleep(self.slow_s)
        return 200, "audio/wav", speech_wav(body["text"], body["voice_id"])


def _problem(body: Any) -> str | None:
    """Why the real service would refuse this body (400), else None."""
    if not isinstance(body, dict):
        return "the body must be a JSON object"
    text = body.get("text")
    if not isinstance(text, str) or not text.strip():
        return "text is required"
    if len(text) > MAX_TEXT:
        return f"text is over {MAX_TEXT} characters"
    if str(body.get("voice_id", "eve")).lower() not in VOICES:
        return f"unknown voice_id {body.get('voice_id')!r}"
    if body.get("language") not in LANGUAGES:
        return "language is required (a BCP-47 code or auto)"
    fmt = body.get("output_format", {})
    if not isinstance(fmt, dict) or fmt.get("codec", "mp3") not in ("mp3", "wav", "pcm", "mulaw", "ulaw", "alaw"):
        return "output_format.codec is not a codec the service writes"
    return None
