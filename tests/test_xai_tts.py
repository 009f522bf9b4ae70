"""storyc's xAI text-to-speech client (backends/xai/tts.py) through the real httpx client
against the fake TTS endpoint on loopback (tests/fake_xai/tts.py): the request the service
documents, the bearer key and nothing else, the audio written atomically, the retry bound,
the key never in an error, the plaintext rules, and the backend's text_to_speech."""

from __future__ import annotations

import wave
from pathlib import Path

import pytest

from fake_xai.fixtures import TEST_KEY
from fake_xai.tts import FakeTts
from storyc.backends.base import BackendError, SpeechRequest
from storyc.backends.xai.tts import (
    DEFAULT_REST_URL,
    TTS_OUTPUT_FORMAT,
    TtsClient,
    TtsConfig,
    rest_base_url,
)
from storyc.model.prices import tts_cost

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


def client(fake: FakeTts, **overrides) -> TtsClient:
    config = {"base_url": fake.base_url, "api_key": TEST_KEY, "retry_base_s": 0.01, "max_retries": 3, **overrides}
    return TtsClient(TtsConfig(**config))


def test_a_line_is_one_documented_request_and_a_wav_file(tts, tmp_path):
    dest = tmp_path / "speech" / "line.wav"
    result = client(tts).speak(LINE, "eve", dest, step="speech:1")
    [request] = tts.requests
    assert request.body == {"text": LINE, "voice_id": "eve", "language": "en", "output_format": TTS_OUTPUT_FORMAT}
    assert request.authorization == f"Bearer {TEST_KEY}"
    assert request.headers["content-type"] == "application/json"
    with wave.open(str(dest)) as wav:
        assert (wav.getnchannels(), wav.getsampwidth(), wav.getframerate()) == (1, 2, 24000)
        assert wav.getnframes() / 24000 == pytest.approx(len(LINE.split()) / 2.5, abs=0.01)
    assert result.kind == "tts" and result.calls == 1 and result.retries == 0
    assert result.cost_usd == tts_cost(LINE) > 0 and result.path == dest
    assert [p.name for p in dest.parent.iterdir()] == ["line.wav"]  # no temp file left


def test_transient_answers_are_retried_within_the_bound(tts, tmp_path):
    tts.inject("unavailable", times=1)
    tts.inject("rate_limited", times=1)
    result = client(tts).speak(LINE, "ara", tmp_path / "a.wav", step="speech:2")
    assert [r.status for r in tts.requests] == [503, 429, 200]
    assert result.retries == 2 and result.calls == 1


def test_a_persistent_failure_is_final_after_the_bound(tts, tmp_path):
    tts.inject("server_error", times=10)
    with pytest.raises(BackendError, match=r"HTTP 500.*after 3 retries") as caught:
        client(tts).speak(LINE, "ara", tmp_path / "a.wav", step="speech:2")
    assert not caught.value.retryable  # the build's own retries must not multiply the bound
    assert len(tts.requests) == 4 and not (tmp_path / "a.wav").exists()


def test_the_key_is_never_in_an_error(tts, tmp_path):
    tts.inject("echo_key")
    with pytest.raises(BackendError) as caught:
        client(tts).speak(LINE, "eve", tmp_path / "a.wav", step="speech:1")
    text = str(caught.value)
    assert "HTTP 401" in text and "check XAI_API_KEY" in text and TEST_KEY not in text
    assert tts.requests[0].authorization == f"Bearer {TEST_KEY}"  # the fake did echo it


def test_a_wrong_key_and_a_refused_request_are_clear_final_errors(tts, tmp_path):
    with pytest.raises(BackendError, match=r"HTTP 401.*check XAI_API_KEY"):
        client(tts, api_key="xai-wrong").speak(LINE, "eve", tmp_path / "a.wav", step="speech:1")
    with pytest.raises(BackendError, match=r"HTTP 400.*unknown voice_id") as caught:
        client(tts).speak(LINE, "ava", tmp_path / "a.wav", step="speech:1")
    assert not caught.value.retryable and len(tts.requests) == 2


def test_an_answer_that_is_not_audio_was_billed_and_is_final(tts, tmp_path):
    tts.inject("not_audio")
    with pytest.raises(BackendError, match="not a WAV file") as caught:
        client(tts).speak(LINE, "eve", tmp_path / "a.wav", step="speech:1")
    error = caught.value
    assert not error.retryable and error.spent_calls == 1 and error.spent_usd == tts_cost(LINE)
    assert not (tmp_path / "a.wav").exists() and len(tts.requests) == 1


def test_a_timeout_is_retried_once(tts, tmp_path):
    tts.slow_s = 1.0
    tts.inject("slow", times=2)
    with pytest.raises(BackendError, match="timed out"):
        client(tts, timeout_s=0.2).speak(LINE, "eve", tmp_path / "a.wav", step="speech:1")
    assert tts.arrived == 2  # the first try and one retry


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


def test_the_backend_speaks_through_the_client_and_refuses_plaintext_elsewhere(tts, tmp_path, monkeypatch):
    from storyc.backends.xai.backend import XaiBackend, XaiConfig

    config = XaiConfig(api_key=TEST_KEY, api_host="127.0.0.1:1", insecure=True, retry_base_s=0.01)
    monkeypatch.setenv("STORYC_XAI_REST_URL", tts.base_url)
    backend = XaiBackend(config, client=object())
    try:
        request = SpeechRequest(text=LINE, voice="leo", dest=tmp_path / "n.wav", hints={"step_id": "speech:1"})
        result = backend.text_to_speech(request)
    finally:
        backend.close()
    assert result.kind == "tts" and Path(result.path).is_file() and tts.requests[0].body["voice_id"] == "leo"
    monkeypatch.setenv("STORYC_XAI_REST_URL", "http://tts.example.com/v1")
    with pytest.raises(BackendError, match="plaintext"):
        XaiBackend(config, client=object())
