"""The xai backend's text to speech (backends/xai/tts.py) through the real httpx client
against the fake TTS endpoint on loopback (tests/fake_xai/tts.py): the request the service
documents, the bearer key and nothing else, the audio written atomically, the retry bound,
a request with an unknown outcome never repeated, the key never in an error, the
plaintext rules."""

from __future__ import annotations

import wave

import pytest

from fake_xai.fixtures import TEST_KEY
from fake_xai.tts import FakeTts
from storyc.backends.base import BackendError, ModerationBlocked, SpeechRequest
from storyc.backends.xai.backend import PossiblyBilled, XaiBackend, XaiConfig
from storyc.backends.xai.tts import DEFAULT_REST_URL, rest_base_url
from storyc.model.prices import tts_cost
from storyc.model.voices import TTS_OUTPUT_FORMAT

pytestmark = pytest.mark.integration

LINE = "Deep in the forest, the old oak kept a secret."


@pytest.fixture(scope="module")
def server():
    fake = FakeTts(TEST_KEY).start()
    yield fake
    fake.stop()


@pytest.fixture
def tts(server):
    server.reset()
    server.slow_s = 2.0
    yield server
    server.reset()


def backend(fake: FakeTts, monkeypatch, **config) -> XaiBackend:
    """The real backend, its gRPC client unused (text to speech is REST)."""
    monkeypatch.setenv("STORYC_XAI_REST_URL", fake.base_url)
    settings = {"api_key": TEST_KEY, "api_host": "127.0.0.1:1", "insecure": True, "retry_base_s": 0.01}
    return XaiBackend(XaiConfig(**{**settings, "max_retries": 3, **config}), client=object())


def speak(xai: XaiBackend, dest, text: str = LINE, voice: str = "eve"):
    try:
        return xai.text_to_speech(SpeechRequest(text, voice, dest, {"step_id": "speech:1", "scene_id": 1, "line": 1}))
    finally:
        xai.close()


def test_a_line_is_one_documented_request_and_a_wav_file(tts, tmp_path, monkeypatch):
    dest = tmp_path / "speech" / "line.wav"
    result = speak(backend(tts, monkeypatch), dest)
    [request] = tts.requests
    assert request.body == {"text": LINE, "voice_id": "eve", "language": "en", "output_format": TTS_OUTPUT_FORMAT}
    assert request.authorization == f"Bearer {TEST_KEY}"
    assert request.headers["content-type"] == "application/json"
    with wave.open(str(dest)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.getnframes() / 24000 == pytest.approx(len(LINE.split()) / 2.5, abs=0.01)
    assert result.kind == "tts" and result.calls == 1 and result.retries == 0
    assert result.cost_usd == pytest.approx(tts_cost(LINE)) and tts_cost(LINE) > 0 and result.path == dest
    assert result.meta["cost_source"] == "price_table"
    assert [p.name for p in dest.parent.iterdir()] == ["line.wav"]  # no temp file left


def test_transient_answers_are_retried_within_the_bound_and_counted(tts, tmp_path, monkeypatch):
    tts.inject("unavailable", times=1)
    tts.inject("rate_limited", times=1)
    result = speak(backend(tts, monkeypatch), tmp_path / "a.wav", voice="ara")
    assert [r.status for r in tts.requests] == [503, 429, 200]
    assert result.retries == 2 and result.calls == 1


def test_a_persistent_failure_is_final_after_the_bound(tts, tmp_path, monkeypatch):
    tts.inject("server_error", times=10)
    with pytest.raises(BackendError, match=r"HTTP 500.*after 3 retries") as caught:
        speak(backend(tts, monkeypatch), tmp_path / "a.wav")
    assert not caught.value.retryable  # the build's own retries must not multiply the bound
    assert caught.value.spent_calls == 0 and caught.value.spent_retries == 3
    assert len(tts.requests) == 4 and not (tmp_path / "a.wav").exists()


def test_a_timeout_is_possibly_billed_and_never_repeated(tts, tmp_path, monkeypatch):
    tts.slow_s = 1.0
    tts.inject("slow", times=2)
    with pytest.raises(PossiblyBilled, match="possibly billed") as caught:
        speak(backend(tts, monkeypatch, timeout_s=0.2), tmp_path / "a.wav")
    error = caught.value
    assert error.spent_calls == 1 and error.possibly_billed == 1 and error.spent_usd == pytest.approx(tts_cost(LINE))
    assert tts.arrived == 1  # sent once: the service may have done it


def test_the_key_is_never_in_an_error(tts, tmp_path, monkeypatch):
    tts.inject("echo_key")
    with pytest.raises(BackendError) as caught:
        speak(backend(tts, monkeypatch), tmp_path / "a.wav")
    text = str(caught.value)
    assert "HTTP 401" in text and "check XAI_API_KEY" in text and TEST_KEY not in text
    assert tts.requests[0].authorization == f"Bearer {TEST_KEY}"  # the fake did echo it


def test_refusals_are_clear_final_errors(tts, tmp_path, monkeypatch):
    with pytest.raises(BackendError, match=r"HTTP 401.*check XAI_API_KEY"):
        speak(backend(tts, monkeypatch, api_key="xai-wrong-key-0123"), tmp_path / "a.wav")
    with pytest.raises(BackendError, match=r"HTTP 400.*unknown voice_id") as caught:
        speak(backend(tts, monkeypatch), tmp_path / "a.wav", voice="ava")
    assert not caught.value.retryable
    tts.inject("moderation")
    with pytest.raises(ModerationBlocked, match=r"refused line 1 of scene 1.*rewrite it"):
        speak(backend(tts, monkeypatch), tmp_path / "a.wav")
    assert len(tts.requests) == 3 and not (tmp_path / "a.wav").exists()


def test_an_answer_that_is_not_audio_was_billed_and_is_final(tts, tmp_path, monkeypatch):
    tts.inject("not_audio")
    with pytest.raises(BackendError, match="not a WAV file") as caught:
        speak(backend(tts, monkeypatch), tmp_path / "a.wav")
    error = caught.value
    assert not error.retryable and error.spent_calls == 1 and error.spent_usd == pytest.approx(tts_cost(LINE))
    assert not (tmp_path / "a.wav").exists() and len(tts.requests) == 1


@pytest.mark.parametrize(
    "env,insecure,expected",
    [
        ({}, False, DEFAULT_REST_URL),
        ({"STORYC_XAI_REST_URL": "https://eu.api.x.ai/v1/"}, False, "https://eu.api.x.ai/v1"),
        ({"STORYC_XAI_REST_URL": "http://127.0.0.1:8080/v1"}, True, "http://127.0.0.1:8080/v1"),
        ({"STORYC_XAI_REST_URL": "http://[::1]:8080/v1"}, True, "http://[::1]:8080/v1"),
        ({"STORYC_XAI_REST_URL": "http://127.0.0.1:8080/v1"}, False, "plaintext"),
        ({"STORYC_XAI_REST_URL": "http://api.x.ai/v1"}, True, "plaintext"),
        ({"STORYC_XAI_REST_URL": "ftp://api.x.ai/v1"}, False, "not an http"),
        ({"STORYC_XAI_REST_URL": "api.x.ai"}, False, "not an http"),
    ],
)
def test_the_rest_url_is_https_or_loopback_with_insecure(env, insecure, expected):
    if expected.startswith("http"):
        assert rest_base_url(env, insecure=insecure) == expected
    else:
        with pytest.raises(BackendError, match=expected):
            rest_base_url(env, insecure=insecure)


def test_the_backend_refuses_a_plaintext_rest_url_before_any_call(monkeypatch):
    monkeypatch.setenv("STORYC_XAI_REST_URL", "http://tts.example.com/v1")
    with pytest.raises(BackendError, match="plaintext"):
        XaiBackend(XaiConfig(api_key=TEST_KEY, api_host="127.0.0.1:1", insecure=True), client=object())
