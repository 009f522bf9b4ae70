"""The voices of a story's lines: the xAI voice ids as local (offline) voices, a voice for a
character without one, the cast of a story, the settings of offline speech rendering and of
an xAI text-to-speech request. Pure data and arithmetic: the graph keys a speech step on
them; the backends (offline/speech.py, xai/tts.py) speak with them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

from storyc.model.speech import ScriptLine
from storyc.model.story import VOICE_IDS, Story

# The engine: espeak-ng from this wheel (it ships libespeak-ng and its data); its version is
# the engine's, for cache keys, without loading the library.
ENGINE_PACKAGE = "espeakng-loader"
SAMPLE_RATE = 22050  # what libespeak-ng synthesizes at (espeak_Initialize returns it)
# Trimming: samples below this (about -44 dBFS) count as silence; this much is kept around speech.
SILENCE_LEVEL = 200
EDGE_KEEP_S = 0.01
EMPTY_LINE_S = 0.1  # an empty line still gives a (silent) file
# Every line at the same level, whatever the voice (espeak's voices differ by up to 6 dB):
# RMS -23 dBFS, peaks kept below -1 dBFS. The final mix is normalized as a whole after.
LINE_RMS_DB = -23.0
LINE_PEAK_DB = -1.0


# xAI text to speech (backends/xai/tts.py): what storyc asks for besides the text and the
# voice. WAV, so a line's length is exact and ffmpeg mixes it as is.
TTS_PATH = "tts"
TTS_LANGUAGE = "en"
TTS_OUTPUT_FORMAT = {"codec": "wav", "sample_rate": 24000}


def tts_request_settings() -> dict[str, object]:
    """What besides the text and the voice decides a TTS answer, for cache keys."""
    return {"endpoint": TTS_PATH, "language": TTS_LANGUAGE, "output_format": dict(TTS_OUTPUT_FORMAT)}


class SpeechError(Exception):
    """Local speech failed (library missing or broken, a voice not found). For users."""


def render_settings(engine: str) -> dict[str, object]:
    """Everything besides the text and the voice that decides a rendered line's bytes, for
    cache keys: the engine (its package and version) and how its output is trimmed and levelled."""
    return {
        "engine": engine,
        "sample_rate": SAMPLE_RATE,
        "silence_level": SILENCE_LEVEL,
        "edge_keep_s": EDGE_KEEP_S,
        "empty_line_s": EMPTY_LINE_S,
        "rms_db": LINE_RMS_DB,
        "peak_db": LINE_PEAK_DB,
    }


@dataclass(frozen=True)
class LocalVoice:
    """An espeak-ng voice: a language voice with a variant ('en-us+f4'), and its pitch (0-100),
    intonation range (0-100) and speed (words per minute)."""

    espeak_name: str
    pitch: int = 50
    range: int = 50
    rate: int = 175

    def cache_key(self) -> str:
        """Everything that decides the sound, for cache keys (with engine_version())."""
        return f"{self.espeak_name}/pitch={self.pitch}/range={self.range}/rate={self.rate}"


# The xAI voices, as local voices of the same kind: eve bright and female, ara warm and
# female, leo low and male, rex male, sal in between.
VOICES: dict[str, LocalVoice] = {
    "eve": LocalVoice("en-us+f4", pitch=62, range=60, rate=180),
    "ara": LocalVoice("en-us+f1", pitch=45, range=45, rate=165),
    "leo": LocalVoice("en-us+m3", pitch=30, range=40, rate=160),
    "rex": LocalVoice("en-us+m1", pitch=55, range=60, rate=180),
    "sal": LocalVoice("en-us+m6", pitch=82, range=35, rate=170),
}
assert set(VOICES) == set(VOICE_IDS)

# Voices for characters without a voice id, each a different variant and pitch. Only variants
# whose output is deterministic are used (f2, f3, f5 and Alicia add random breath noise).
NAME_VOICES: tuple[LocalVoice, ...] = (
    LocalVoice("en-us+m2", pitch=50, range=50, rate=170),
    LocalVoice("en-us+linda", pitch=55, range=55, rate=175),
    LocalVoice("en-us+m4", pitch=35, range=45, rate=165),
    LocalVoice("en-us+belinda", pitch=45, range=60, rate=175),
    LocalVoice("en-us+m7", pitch=65, range=50, rate=180),
    LocalVoice("en-us+Annie", pitch=55, range=50, rate=170),
    LocalVoice("en-us+m8", pitch=40, range=40, rate=160),
    LocalVoice("en-us+aunty", pitch=50, range=55, rate=170),
    LocalVoice("en-us+m5", pitch=60, range=45, rate=175),
    LocalVoice("en-us+grandma", pitch=50, range=40, rate=160),
)


def _name_index(name: str) -> int:
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return int.from_bytes(digest[:4], "big") % len(NAME_VOICES)


def voice_for(voice_id: str | None, name: str = "") -> LocalVoice:
    """The local voice of an xAI voice id, or, without one, the one `name` hashes to."""
    if voice_id is not None:
        try:
            return VOICES[voice_id]
        except KeyError:
            raise SpeechError(f"unknown voice '{voice_id}' (voices: {', '.join(VOICE_IDS)})") from None
    return NAME_VOICES[_name_index(name)]


def cast_voices(characters: Iterable[tuple[str, str | None]]) -> dict[str, LocalVoice]:
    """Voices for (name, voice id) pairs. A character with a voice id gets that voice; the others
    get the voice their name hashes to, moved on to the next free one when another character
    without a voice id already has it, so two of them never sound alike (up to 10 of them).
    Depends only on the names, never on their order in the story."""
    cast: dict[str, LocalVoice] = {}
    unvoiced: list[str] = []
    for name, voice_id in characters:
        if voice_id is not None:
            cast[name] = voice_for(voice_id, name)
        else:
            unvoiced.append(name)
    taken: set[int] = set()
    for name in sorted(set(unvoiced)):
        index = _name_index(name)
        for step in range(len(NAME_VOICES)):
            candidate = (index + step) % len(NAME_VOICES)
            if candidate not in taken:
                index = candidate
                break
        taken.add(index)
        cast[name] = NAME_VOICES[index]
    return cast


@dataclass(frozen=True)
class StoryCast:
    """Every voice of a story: its characters' and the narrator's."""

    characters: dict[str, LocalVoice]
    narrator: LocalVoice

    def voice_of(self, line: ScriptLine) -> LocalVoice:
        if line.kind == "narration" or line.speaker is None:
            return self.narrator
        # a speaker lint would reject (E307) still gets a voice of its own
        return self.characters.get(line.speaker) or voice_for(None, line.speaker)


def story_cast(story: Story) -> StoryCast:
    return StoryCast(cast_voices((c.name, c.voice) for c in story.characters), voice_for(story.audio.narration_voice))
