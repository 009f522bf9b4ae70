"""Local speech for the offline backend: espeak-ng, from the espeakng-loader wheel (which ships
libespeak-ng and its data; no system package), driven through its C API with ctypes.

Each line becomes a 22050 Hz mono 16-bit WAV whose length is exactly the speech (leading and
trailing silence trimmed to a few milliseconds), so the animatic's timing and the subtitles
follow the real audio. Every character gets a voice of its own (storyc.model.voices: the xAI
voice ids map to fixed local voices, and a character without one gets a voice from its name).

Determinism and threads: libespeak-ng keeps global state (function-level statics such as the
pitch flutter phase survive even espeak_Terminate), so the same text would come out slightly
different depending on what was said before. Each synthesis therefore loads the library
afresh and unloads it after (a few milliseconds), under one process-wide lock: espeak is not
thread-safe, and the reload makes the same line in the same voice the same bytes in any process,
in any order. The synthesis itself is fast (a 3 s line takes a few milliseconds).
"""

from __future__ import annotations

import array
import ctypes
import math
import os
import sys
import threading
import wave
from dataclasses import dataclass
from pathlib import Path

from storyc.model.voices import (
    EDGE_KEEP_S,
    EMPTY_LINE_S,
    LINE_PEAK_DB,
    LINE_RMS_DB,
    NAME_VOICES,
    SAMPLE_RATE,
    SILENCE_LEVEL,
    VOICES,
    LocalVoice,
    SpeechError,
    StoryCast,
    cast_voices,
    story_cast,
    voice_for,
)
from storyc.store.fsutil import atomic_output

# The voices and the rendering settings live in storyc.model.voices (the graph keys speech on
# them); they are this module's public names too.
__all__ = [
    "EDGE_KEEP_S",
    "EMPTY_LINE_S",
    "LINE_PEAK_DB",
    "LINE_RMS_DB",
    "NAME_VOICES",
    "SAMPLE_RATE",
    "SILENCE_LEVEL",
    "VOICES",
    "LocalVoice",
    "Speech",
    "SpeechError",
    "StoryCast",
    "cast_voices",
    "engine_version",
    "level",
    "render_speech",
    "story_cast",
    "synthesize",
    "trim_silence",
    "voice_for",
    "write_wav",
]

SAMPLE_WIDTH = 2

# espeak-ng's C API (speak_lib.h)
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report a data error instead of calling exit()
_POS_CHARACTER = 1
_CHARS_UTF8 = 1
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4
_SYNTH_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p)


# ─── the engine ──────────────────────────────────────────────────────────────

_LOCK = threading.Lock()


def _library_paths() -> tuple[str, bytes]:
    try:
        import espeakng_loader
    except ImportError:
        raise SpeechError("local speech needs the espeakng-loader package (pip install espeakng-loader)") from None
    return espeakng_loader.get_library_path(), os.fsencode(espeakng_loader.get_data_path())


def _open_library(path: str):
    lib = ctypes.CDLL(path, mode=ctypes.RTLD_LOCAL)
    lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    lib.espeak_Initialize.restype = ctypes.c_int
    lib.espeak_SetSynthCallback.argtypes = [_SYNTH_CALLBACK]
    lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
    lib.espeak_SetVoiceByName.restype = ctypes.c_int
    lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
    lib.espeak_SetParameter.restype = ctypes.c_int
    lib.espeak_Synth.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_uint,
        ctypes.c_int,
        ctypes.c_uint,
        ctypes.c_uint,
        ctypes.c_void_p,
        ctypes.c_void_p,
    ]
    lib.espeak_Synth.restype = ctypes.c_int
    lib.espeak_Info.argtypes = [ctypes.POINTER(ctypes.c_char_p)]
    lib.espeak_Info.restype = ctypes.c_char_p
    return lib


def _close_library(lib) -> None:
    import _ctypes

    handle = lib._handle
    del lib
    if sys.platform != "win32":
        _ctypes.dlclose(handle)  # the next load starts from the library's initial state


def _synthesize_locked(text: str, voice: LocalVoice) -> array.array:
    lib_path, data_path = _library_paths()
    try:
        lib = _open_library(lib_path)
    except OSError as exc:
        raise SpeechError(f"cannot load libespeak-ng: {exc}") from None
    samples = array.array("h")

    def collect(wav, count, _events) -> int:
        if count > 0 and wav:
            samples.frombytes(ctypes.string_at(wav, count * SAMPLE_WIDTH))
        return 0  # 0: go on

    callback = _SYNTH_CALLBACK(collect)  # referenced until the library is closed
    try:
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if rate != SAMPLE_RATE:
            raise SpeechError(f"espeak-ng failed to start (returned {rate}; data folder {os.fsdecode(data_path)})")
        try:
            lib.espeak_SetSynthCallback(callback)
            if lib.espeak_SetVoiceByName(voice.espeak_name.encode("ascii")) != 0:
                raise SpeechError(f"espeak-ng has no voice '{voice.espeak_name}'")
            for parameter, value in (
                (_PARAM_RATE, voice.rate),
                (_PARAM_PITCH, voice.pitch),
                (_PARAM_RANGE, voice.range),
                (_PARAM_VOLUME, 100),
            ):
                lib.espeak_SetParameter(parameter, value, 0)
            encoded = text.encode("utf-8") + b"\0"
            status = lib.espeak_Synth(encoded, len(encoded), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None)
            if status != 0:
                raise SpeechError(f"espeak-ng could not speak the line (error {status})")
        finally:
            lib.espeak_Terminate()
    finally:
        _close_library(lib)
        del callback
    return samples


def synthesize(text: str, voice: LocalVoice) -> array.array:
    """The samples (signed 16-bit, mono, 22050 Hz) of `text` spoken in `voice`, untrimmed.
    Safe to call from any thread; calls are serialized."""
    with _LOCK:
        return _synthesize_locked(text, voice)


def engine_version() -> str:
    """libespeak-ng's version, for cache keys ('espeak-ng 1.52.0')."""
    lib_path, _ = _library_paths()
    with _LOCK:
        lib = _open_library(lib_path)
        try:
            path = ctypes.c_char_p()
            version = lib.espeak_Info(ctypes.byref(path))
            return f"espeak-ng {version.decode('ascii', 'replace')}"
        finally:
            _close_library(lib)


def trim_silence(samples: array.array) -> array.array:
    """`samples` without the silence before and after the speech (EDGE_KEEP_S kept on each side)."""
    first = next((i for i, value in enumerate(samples) if abs(value) > SILENCE_LEVEL), None)
    if first is None:
        return array.array("h")
    last = next(i for i in range(len(samples) - 1, -1, -1) if abs(samples[i]) > SILENCE_LEVEL)
    keep = int(EDGE_KEEP_S * SAMPLE_RATE)
    return samples[max(0, first - keep) : min(len(samples), last + 1 + keep)]


def level(samples: array.array) -> array.array:
    """`samples` scaled to LINE_RMS_DB (less if a peak would pass LINE_PEAK_DB)."""
    if not samples:
        return samples
    rms = math.sqrt(sum(x * x for x in samples) / len(samples))
    peak = max(abs(x) for x in samples)
    if rms < 1 or peak < 1:
        return samples
    full_scale = 32767
    gain = min(full_scale * 10 ** (LINE_RMS_DB / 20) / rms, full_scale * 10 ** (LINE_PEAK_DB / 20) / peak)
    return array.array("h", (max(-32768, min(32767, round(x * gain))) for x in samples))


@dataclass(frozen=True)
class Speech:
    """A rendered line: the WAV file and its exact length."""

    path: Path
    samples: int
    sample_rate: int = SAMPLE_RATE

    @property
    def duration_s(self) -> float:
        return self.samples / self.sample_rate


def write_wav(samples: array.array, dest: Path | str) -> Path:
    """Write mono 16-bit samples as a WAV, atomically."""
    dest = Path(dest)
    data = samples.tobytes() if sys.byteorder == "little" else _swapped(samples)
    with atomic_output(dest) as tmp, wave.open(str(tmp), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(SAMPLE_WIDTH)
        out.setframerate(SAMPLE_RATE)
        out.writeframes(data)
    return dest


def _swapped(samples: array.array) -> bytes:
    copy = array.array("h", samples)
    copy.byteswap()
    return copy.tobytes()


def render_speech(text: str, voice: LocalVoice, dest: Path | str) -> Speech:
    """Speak `text` in `voice` into the WAV `dest` (22050 Hz mono), trimmed to the speech and
    levelled to LINE_RMS_DB."""
    samples = level(trim_silence(synthesize(text, voice))) if text.strip() else array.array("h")
    if not samples:
        samples = array.array("h", bytes(SAMPLE_WIDTH * int(EMPTY_LINE_S * SAMPLE_RATE)))
    write_wav(samples, dest)
    return Speech(Path(dest), len(samples))
