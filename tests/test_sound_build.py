"""Sound on real `storyc build` renders (offline, tiny: STORYC_RENDER_SCALE=0.1): a story with
narration, dialogue, music and soft subtitles is built by the real command in a subprocess,
and its final video is measured, not trusted: speech energy inside every subtitle cue, cues
within 100 ms of the speech, loudness within 1 LU of the target, the music lower during
speech than between lines, a tagged subtitle stream. Then the same story rebuilt with burned
subtitles, with one dialogue line edited (only that scene's speech and the mix run, without
Prefect) and with silent clips (audio.native: false).

The music is a 6 kHz tone (1.3 s, so it must loop), which the Goertzel measurement separates
from speech; the offline clips' own quiet tone (180-520 Hz) stays below the speech band
measured here (1.1-4 kHz, where espeak's formants are).
"""

from __future__ import annotations

import html
import itertools
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pysubs2
import pytest
from PIL import ImageChops, ImageStat

from _audio import (
    frame_at,
    integrated_loudness,
    read_samples,
    rms_db,
    speech_band,
    subtitle_cues,
    subtitle_streams,
    tone_db,
    windowed_rms_db,
)
from storyc.media import ffmpeg as media
from storyc.media.probe import probe

pytestmark = [pytest.mark.integration, pytest.mark.slow]

RATE = 16000  # analysis sample rate
MUSIC_HZ = 6000
BAND = (1100.0, 4000.0)
SCALE = "0.1"

STORY = """\
title: The Glow
style: soft watercolour illustration with ink outlines, warm light and paper texture
color_palette: amber, moss green, cream
models: {video: grok-imagine-video-1.5}
characters:
  - {name: Ember, role: protagonist, visual_description: a small red fox with a white-tipped tail, personality_cues: [curious], voice: ara}
  - {name: Sage, role: mentor, visual_description: an old grey owl with round spectacles, personality_cues: [calm]}
scenes:
  - scene_id: 1
    title: The oak
    description: Ember walks to the old oak.
    characters_present: [Ember]
    setting: autumn forest
    camera: wide shot
    mood: warm
    action: Ember walks between the roots
    duration_seconds: 5
    narration: "Deep in the forest, the old oak kept a secret."
  - scene_id: 2
    title: The question
    description: Ember asks Sage about the glow.
    characters_present: [Ember, Sage]
    setting: autumn forest
    camera: medium shot
    mood: warm
    action: Ember looks up at Sage
    duration_seconds: 5
    transition: crossfade
    dialogue:
      - {speaker: Ember, line: "Sage, what is that glow?"}
      - {speaker: Sage, line: "Something old."}
audio:
  music: music.wav
  music_volume_db: -18
  subtitles: soft
  loudness_lufs: -16
"""

EDITED_LINE = "Something very old and kind."


@dataclass
class Built:
    out: Path
    video: Path
    cues: list[tuple[float, float, str]]  # from final_video.srt
    report: dict


def storyc_build(story: Path, out: Path, cache: Path) -> dict:
    """The real command in a subprocess; report.json back."""
    env = {**os.environ, "STORYC_RENDER_SCALE": SCALE}
    env.pop("XAI_API_KEY", None)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "storyc",
            "build",
            str(story),
            "--out",
            str(out),
            "--cache",
            str(cache),
            "--backend",
            "offline",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


def built(out: Path, report: dict) -> Built:
    video = out / "final_video.mp4"
    srt = out / "final_video.srt"
    cues = [(e.start / 1000, e.end / 1000, e.plaintext) for e in pysubs2.load(str(srt))] if srt.exists() else []
    return Built(out, video, cues, report)


def ran(report: dict) -> set[str]:
    return {s["id"] for s in report["steps"] if s["status"] == "done" and not s["cached"]}


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sound-build")
    (folder / "story.yaml").write_text(STORY, encoding="utf-8")
    (folder / "burned.yaml").write_text(STORY.replace("subtitles: soft", "subtitles: burned"), encoding="utf-8")
    (folder / "edited.yaml").write_text(STORY.replace("Something old.", EDITED_LINE), encoding="utf-8")
    (folder / "silent.yaml").write_text(STORY.replace("audio:\n", "audio:\n  native: false\n"), encoding="utf-8")
    (folder / "captioned.yaml").write_text(STORY.replace("subtitles: soft", "subtitles: none"), encoding="utf-8")
    media.run_ffmpeg(
        [
            *("-f", "lavfi", "-i", f"sine=frequency={MUSIC_HZ}:sample_rate=44100:duration=1.3"),
            *("-c:a", "pcm_s16le", str(folder / "music.wav")),
        ]
    )
    return folder


@pytest.fixture(scope="module")
def soft(folder) -> Built:
    out = folder / "out-soft"
    return built(out, storyc_build(folder / "story.yaml", out, folder / "cache"))


@pytest.fixture(scope="module")
def samples(soft):
    return read_samples(soft.video, RATE)


@pytest.fixture(scope="module")
def band(samples):
    """The mix in the speech band: the clips' own tone and the music filtered out."""
    return speech_band(samples, RATE, *BAND)


@pytest.fixture(scope="module")
def burned(folder, soft) -> Built:
    out = folder / "out-burned"
    return built(out, storyc_build(folder / "burned.yaml", out, folder / "cache"))


@pytest.fixture(scope="module")
def edited(folder, soft) -> Built:
    out = folder / "out-edited"
    return built(out, storyc_build(folder / "edited.yaml", out, folder / "cache"))


def quiet_between_lines(cues) -> tuple[float, float]:
    """The longest stretch without speech between two cues (music and the clips' sound only)."""
    gaps = [(a[1], b[0]) for a, b in itertools.pairwise(cues)]
    start, end = max(gaps, key=lambda g: g[1] - g[0])
    assert end - start > 0.6, gaps
    return start + 0.4, end - 0.05  # after the ducking's release


# ─── the soft build ──────────────────────────────────────────────────────────


def test_the_build_speaks_every_line_and_writes_the_subtitle_files(soft):
    assert [text for _, _, text in soft.cues] == [
        "Deep in the forest, the old oak kept a secret.",
        "Ember: Sage, what is that glow?",
        "Sage: Something old.",
    ]
    vtt = (soft.out / "final_video.vtt").read_text()
    assert vtt.startswith("WEBVTT") and "Ember: Sage, what is that glow?" in vtt
    info = probe(soft.video)
    assert info.has_audio and info.duration_s == pytest.approx(9.5, abs=0.05)  # 5 + 5 - a 0.5 s crossfade
    assert soft.report["speech"] == {
        "lines": 3,
        "seconds": pytest.approx(sum(e - s for s, e, _ in soft.cues), abs=0.01),
        "by_source": {"local": 3, "tts": 0, "clip": 0},
        "tts_calls": 0,
        "tts_seconds": 0,
        "tts_characters": 0,
    }
    assert soft.report["subtitles"] == {"srt": "final_video.srt", "vtt": "final_video.vtt"}
    assert {"speech:1", "speech:2"} <= ran(soft.report)


def test_speech_energy_inside_every_cue(soft, samples, band):
    gap = quiet_between_lines(soft.cues)
    quiet, quiet_band = rms_db(samples, RATE, *gap), rms_db(band, RATE, *gap)
    for start, end, text in soft.cues:
        assert rms_db(samples, RATE, start, end) > quiet + 10, text
        # throughout: no 300 ms stretch of a cue is without speech
        windows = windowed_rms_db(band[int(start * RATE) : int(end * RATE)], RATE, 0.3)
        assert min(windows) > quiet_band + 15, (text, windows, quiet_band)


def test_cues_start_and_end_within_100_ms_of_the_speech(soft, band):
    step = 0.01
    levels = windowed_rms_db(band, RATE, step)
    threshold = rms_db(band, RATE, *quiet_between_lines(soft.cues)) + 15
    total = probe(soft.video).duration_s

    def loud(t: float) -> bool:
        i = round(t / step)
        return 0 <= i < len(levels) and levels[i] > threshold

    for n, (start, end, text) in enumerate(soft.cues):
        after = soft.cues[n - 1][1] + 0.05 if n else 0.0
        before = soft.cues[n + 1][0] - 0.05 if n + 1 < len(soft.cues) else total
        search = [after + k * step for k in range(int((before - after) / step))]
        onset = next(t for t in search if loud(t))
        offset = next(t for t in reversed(search) if loud(t)) + step
        assert abs(onset - start) <= 0.1, (text, onset, start)
        assert abs(offset - end) <= 0.1, (text, offset, end)


def test_integrated_loudness_is_within_1_lu_of_the_target(soft):
    assert integrated_loudness(soft.video) == pytest.approx(-16, abs=1.0)


def test_music_is_lower_during_speech_than_between_lines(soft, samples):
    between = tone_db(samples, RATE, MUSIC_HZ, *quiet_between_lines(soft.cues))
    assert between > -60  # the music plays
    for start, end, text in soft.cues:
        middle = (start + end) / 2
        during = tone_db(samples, RATE, MUSIC_HZ, middle - 0.2, middle + 0.2)
        assert during < between - 6, (text, during, between)


def test_the_mp4_has_a_tagged_subtitle_stream_with_the_cues(soft):
    assert subtitle_streams(soft.video) == [("mov_text", "eng")]
    shown = subtitle_cues(soft.video)
    assert [text for _, text in shown] == [text for _, _, text in soft.cues]
    for (at, _), (start, _, _) in zip(shown, soft.cues, strict=True):
        assert at == pytest.approx(start, abs=0.002)


def test_the_storyboard_lists_each_line_with_its_times_and_voice_and_plays_the_scene(soft):
    script = (soft.out / "script.md").read_text()
    start, end, _ = soft.cues[1]
    assert f"| {start:.2f}–{end:.2f} s |" in script  # the time in the video, as the subtitle shows it
    assert "| Ember | Sage, what is that glow? | ara (offline: en-us+f1) · offline speech |" in script
    assert "*Deep in the forest, the old oak kept a secret.*" in script  # narration in italics
    page = (soft.out / "storyboard.html").read_text()
    assert '<audio controls preload="none" src="speech/scene_2.wav">' in page
    assert "media-src 'self' file:" in html.unescape(page)  # the CSP lets it play its own folder's audio
    track = soft.out / "speech" / "scene_2.wav"
    assert read_samples(track, RATE) and probe_audio_seconds(track) == pytest.approx(5.0, abs=0.01)


def probe_audio_seconds(path: Path) -> float:
    from storyc.media.probe import audio_duration

    return audio_duration(path)


# ─── rebuilds ────────────────────────────────────────────────────────────────


def test_burned_subtitles_are_drawn_at_cue_times_only_and_only_the_mix_reran(soft, burned):
    from storyc.backends.offline import captions

    assert ran(burned.report) == {"assemble", "script"}  # the clips and the speech come from the cache
    assert "prefect" not in burned.report  # API-free steps ran in the process
    assert subtitle_streams(burned.video) == []
    width, height = probe(burned.video).width, probe(burned.video).height

    def differs(t: float, box: tuple[int, int, int, int]) -> float:  # burned against soft, same clips
        diff = ImageChops.difference(frame_at(burned.video, t), frame_at(soft.video, t)).convert("L")
        return ImageStat.Stat(diff.crop(box)).mean[0]

    # the text sits at the bottom centre, above the offline animatic's caption band
    band_top = captions.Layout(width, height).band_top
    text_rows, band, top = (
        (0, height * 2 // 5, width, band_top),
        (0, band_top, width, height),
        (0, 0, width, height // 4),
    )
    drawn = []
    for start, end, text in burned.cues:
        middle = (start + end) / 2
        at_text, above, in_band = differs(middle, text_rows), differs(middle, top), differs(middle, band)
        # the rest of the picture differs only by the encoder's noise (the text moves its bits)
        assert at_text > 5.0 and above < at_text / 5 and in_band < at_text / 3, (text, at_text, above, in_band)
        drawn.append(at_text)
    gap_start, gap_end = quiet_between_lines(burned.cues)
    assert differs((gap_start + gap_end) / 2, text_rows) < min(drawn) / 5  # no text between lines
    assert (burned.out / "final_video.srt").read_text() == (soft.out / "final_video.srt").read_text()


def test_editing_one_line_reruns_only_that_scenes_speech_and_the_mix(soft, edited):
    assert ran(edited.report) == {"speech:2", "assemble", "script"}
    assert "prefect" not in edited.report  # offline speech pays for nothing: no flow to start
    assert edited.cues[2][2] == f"Sage: {EDITED_LINE}" and edited.cues[:2] == soft.cues[:2]
    assert edited.cues[2][1] - edited.cues[2][0] > soft.cues[2][1] - soft.cues[2][0] + 0.3  # longer words
    for name in ("videos/scene_2.mp4", "speech/scene_2_line_1.wav", "speech/scene_1_line_1.wav"):
        assert (edited.out / name).read_bytes() == (soft.out / name).read_bytes(), name
    assert (edited.out / "speech/scene_2_line_2.wav").read_bytes() != (
        soft.out / "speech/scene_2_line_2.wav"
    ).read_bytes()


def test_a_line_edit_mixes_the_sound_onto_the_joined_picture_without_encoding_video(folder, soft, monkeypatch):
    """The picture of the same clips is joined once and kept in the cache: the rebuild runs
    ffmpeg for the sound only (watched at the OS boundary: every process it starts)."""
    from storyc.build.options import BuildOptions
    from storyc.build.pipeline import run_build

    story = folder / "edited_again.yaml"
    story.write_text(STORY.replace("Something old.", "Something old and dear."), encoding="utf-8")
    started: list[list[str]] = []

    def watch(event: str, args: tuple) -> None:
        if event == "subprocess.Popen":
            started.append([str(a) for a in (args[1] or [])])

    monkeypatch.setenv("STORYC_RENDER_SCALE", SCALE)
    monkeypatch.delenv("XAI_API_KEY", raising=False)
    sys.addaudithook(watch)  # hooks cannot be removed: `watch` only appends to this test's list
    result = run_build(BuildOptions(story=story, out_dir=folder / "out-again", cache_dir=folder / "cache"))
    runs = list(started)
    started.clear()
    assert result.status == "built", result.message
    assert ran(result.report) == {"speech:2", "assemble", "script"}
    ffmpeg = [argv for argv in runs if argv and "ffmpeg" in Path(argv[0]).name]
    assert ffmpeg and not any("libx264" in argv for argv in ffmpeg), ffmpeg  # no picture encoded
    assert any("copy" in argv and "-c:v" in argv for argv in ffmpeg)  # the picture copied into the video
    assert probe(folder / "out-again" / "final_video.mp4").duration_s == pytest.approx(9.5, abs=0.05)
    assert subtitle_streams(folder / "out-again" / "final_video.mp4") == [("mov_text", "eng")]


def test_native_false_renders_silent_clips_and_the_mix_keeps_its_loudness(folder, soft):
    out = folder / "out-silent"
    report = storyc_build(folder / "silent.yaml", out, folder / "cache")
    assert {"video:1", "video:2", "assemble"} <= ran(report)
    assert not {"speech:1", "speech:2"} & ran(report)  # the same lines, from the cache
    for scene in (1, 2):
        assert not probe(out / "videos" / f"scene_{scene}.mp4").has_audio
    silent = built(out, report)
    assert integrated_loudness(silent.video) == pytest.approx(-16, abs=1.0)
    samples = read_samples(silent.video, RATE)
    gap = quiet_between_lines(silent.cues)
    # between lines only the music is left: nothing in the clips' tone range
    low = max(tone_db(samples, RATE, hz, *gap) for hz in range(180, 521, 20))
    assert low < tone_db(samples, RATE, MUSIC_HZ, *gap) - 30


def test_without_subtitles_the_animatic_shows_each_line_in_its_caption_band_while_it_is_said(folder, soft):
    from storyc.backends.offline import captions

    out = folder / "out-captioned"
    report = storyc_build(folder / "captioned.yaml", out, folder / "cache")
    # the clips take the speech steps' timing now; the lines themselves come from the cache
    assert {"video:1", "video:2", "assemble"} <= ran(report) and not {"speech:1", "speech:2"} & ran(report)
    assert not (out / "final_video.srt").exists() and subtitle_streams(out / "final_video.mp4") == []
    lines = json.loads((out / "speech" / "scene_2.json").read_text())["lines"]
    clip, plain = out / "videos" / "scene_2.mp4", soft.out / "videos" / "scene_2.mp4"
    width, height = probe(clip).width, probe(clip).height
    row = (0, captions.Layout(width, height).subtitle_top, width, height)

    def drawn(t: float) -> float:  # the subtitle row against the same clip without lines
        diff = ImageChops.difference(frame_at(clip, t).crop(row), frame_at(plain, t).crop(row))
        return ImageStat.Stat(diff.convert("L")).mean[0]

    said = [drawn((line["start_s"] + line["end_s"]) / 2) for line in lines]
    assert min(said) > 5.0, said
    # nothing between the lines, nor after the last one (the encoder's noise aside)
    assert drawn((lines[0]["end_s"] + lines[1]["start_s"]) / 2) < min(said) / 5
    assert drawn(lines[-1]["end_s"] + 0.5) < min(said) / 5
