"""xAI text to speech: `POST {STORYC_XAI_REST_URL}/tts` (default https://api.x.ai/v1/tts),
the REST endpoint the Python SDK does not cover (xai-facts.md).

The request: JSON `text`, `voice_id`, `language`, `output_format`, with the API key as a
bearer token; the answer is the audio bytes. storyc asks for WAV (24 kHz mono 16-bit),
so a line's length is exact and ffmpeg mixes it as is.
"""

from __future__ import annotations

TTS_PATH = "tts"
TTS_LANGUAGE = "en"
TTS_OUTPUT_FORMAT = {"codec": "wav", "sample_rate": 24000}


def request_settings() -> dict[str, object]:
    """What besides the text and the voice decides a TTS answer, for cache keys."""
    return {"endpoint": TTS_PATH, "language": TTS_LANGUAGE, "output_format": dict(TTS_OUTPUT_FORMAT)}
