"""Offline speech: real espeak-ng (from the espeakng-loader wheel) through its C API.
Lengths, WAV format, voices that sound different, determinism across order, threads and
processes, and the cast of a story."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import sys
import threading
import wave
from pathlib import Path

import pytest

from _audio import pitch_hz, read_samples, rms_db, speech_spans
from storyc.backends.offline import speech
from storyc.backends.offline.speech import NAME_VOICES, VOICES, SpeechError, cast_voices, story_cast, voice_for
from storyc.load.loader import load_story_text
from storyc.model.speech import scene_script

pytestmark = pytest.mark.integration

SENTENCE = "Hello Sage. What is that glowing thing between the roots?"


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_the_reference_sentence_takes_about_3_2_seconds_in_a_22khz_mono_wav(tmp_path):
    rendered = speech.render_speech(SENTENCE, speech.LocalVoice("en-us"), tmp_path / "line.wav")
    assert 3.0 <= rendered.duration_s <= 3.4, rendered.duration_s
    with wave.open(str(rendered.path)) as wav:
        assert (wav.getframerate(), wav.getnchannels(), wav.getsampwidth()) == (22050, 1, 2)
        assert wav.getnframes() == rendered.samples
    assert rendered.duration_s == rendered.samples / 22050


def test_the_file_is_trimmed_to_the_speech(tmp_path):
    rendered = speech.render_speech(SENTENCE, VOICES["rex"], tmp_path / "line.wav")
    samples = read_samples(rendered.path, 16000)
    spans = speech_spans(samples, 16000, threshold_db=-50, window_s=0.01)
    assert spans, "no speech energy"
    assert spans[0][0] <= 0.03 and spans[-1][1] >= rendered.duration_s - 0.03, spans
    untrimmed = speech.synthesize(SENTENCE, VOICES["rex"])
    assert rendered.samples < len(untrimmed)  # espeak's own leading and trailing silence is gone


def test_each_xai_voice_has_its_own_pitch(tmp_path):
    pitches = {}
    for name, voice in VOICES.items():
        rendered = speech.render_speech("What is that glow between the roots?", voice, tmp_path / f"{name}.wav")
        pitches[name] = pitch_hz(read_samples(rendered.path, 8000), 8000)
    ordered = sorted(pitches.values())
    assert all(b / a >= 1.12 for a, b in itertools.pairwise(ordered)), pitches
    assert pitches["leo"] < pitches["rex"] < 150 < pitches["ara"] < pitches["eve"], pitches  # low men, high women


def test_same_line_same_voice_same_bytes_whatever_was_said_before(tmp_path):
    first = speech.render_speech(SENTENCE, VOICES["eve"], tmp_path / "a.wav")
    speech.render_speech("Something else entirely, and longer, with other sounds.", VOICES["leo"], tmp_path / "x.wav")
    speech.render_speech("Oh!", NAME_VOICES[3], tmp_path / "y.wav")
    again = speech.render_speech(SENTENCE, VOICES["eve"], tmp_path / "b.wav")
    assert sha(first.path) == sha(again.path)


def test_same_bytes_in_another_process(tmp_path):
    here = speech.render_speech(SENTENCE, VOICES["ara"], tmp_path / "here.wav")
    code = (
        "import sys; from storyc.backends.offline import speech as s; "
        "s.render_speech('Warm up.', s.VOICES['leo'], sys.argv[1] + '.warm.wav'); "
        "s.render_speech(sys.argv[2], s.VOICES['ara'], sys.argv[1])"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "there.wav"), SENTENCE], check=True)
    assert sha(here.path) == sha(tmp_path / "there.wav")


def test_threads_get_the_same_bytes_as_one_at_a_time(tmp_path):
    jobs = [(f"Line number {i}, said by someone.", list(VOICES.values())[i % 5]) for i in range(8)]
    serial = [
        sha(speech.render_speech(text, voice, tmp_path / f"s{i}.wav").path) for i, (text, voice) in enumerate(jobs)
    ]
    results: dict[int, str] = {}
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            text, voice = jobs[i]
            results[i] = sha(speech.render_speech(text, voice, tmp_path / f"t{i}.wav").path)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(len(jobs))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors
    assert [results[i] for i in range(len(jobs))] == serial


@pytest.mark.parametrize("text", ["", "   ", "...", "<speak>x</speak> & Ünïcödé 中文 — 42!"])
def test_odd_lines_still_give_a_valid_file(tmp_path, text):
    rendered = speech.render_speech(text, VOICES["sal"], tmp_path / "odd.wav")
    with wave.open(str(rendered.path)) as wav:
        assert wav.getnframes() == rendered.samples > 0


def test_unknown_voice_is_a_speech_error():
    with pytest.raises(SpeechError, match="unknown voice 'ava'"):
        voice_for("ava")
    with pytest.raises(SpeechError, match="no voice"):
        speech.synthesize("x", speech.LocalVoice("xx-nowhere+f9"))


def test_characters_without_a_voice_id_never_share_one_and_order_does_not_matter():
    names = [f"Character {i}" for i in range(len(NAME_VOICES))]
    cast = cast_voices((name, None) for name in names)
    assert len(set(cast.values())) == len(NAME_VOICES)
    assert cast_voices((name, None) for name in reversed(names)) == cast
    with_ids = cast_voices([("Ember", "ara"), ("Sage", None), ("Moss", "ara")])
    assert with_ids["Ember"] == with_ids["Moss"] == VOICES["ara"] and with_ids["Sage"] in NAME_VOICES


def test_story_cast_voices_every_line(tmp_path):
    loaded = load_story_text(
        """
title: T
style: s
color_palette: c
models: {video: grok-imagine-video-1.5}
characters:
  - {name: Ember, role: r, visual_description: d, personality_cues: [], voice: ara}
  - {name: Sage, role: r, visual_description: d, personality_cues: []}
scenes:
  - scene_id: 1
    title: t
    description: d
    characters_present: [Ember, Sage]
    setting: s
    camera: c
    mood: m
    action: a
    duration_seconds: 8
    narration: "The old oak kept a secret."
    dialogue:
      - {speaker: Ember, line: "What is that?"}
      - {speaker: Sage, line: "Something old."}
audio: {narration_voice: leo}
"""
    )
    cast = story_cast(loaded.story)
    script = scene_script(loaded.story.scenes[0])
    assert [line.kind for line in script] == ["narration", "dialogue", "dialogue"]
    voices = [cast.voice_of(line) for line in script]
    assert voices[0] == VOICES["leo"] and voices[1] == VOICES["ara"] and voices[2] in NAME_VOICES
    assert len(set(voices)) == 3


def test_cache_key_and_engine_version():
    assert speech.engine_version().startswith("espeak-ng 1.")
    assert VOICES["eve"].cache_key() != VOICES["ara"].cache_key()
    assert "pitch=" in VOICES["eve"].cache_key()


def test_every_voice_speaks_at_the_same_level(tmp_path):
    levels = []
    for i, voice in enumerate([*VOICES.values(), *NAME_VOICES]):
        rendered = speech.render_speech("Something old, and what is that glow?", voice, tmp_path / f"{i}.wav")
        samples = read_samples(rendered.path, 16000)
        levels.append(rms_db(samples, 16000, 0, rendered.duration_s))
        assert max(abs(x) for x in samples) < 10 ** (speech.LINE_PEAK_DB / 20) + 0.01
    assert max(levels) - min(levels) < 1.0, levels
