"""The sound pass on real renders: a two-scene story with narration, dialogue, music and
subtitles goes through offline speech, the timeline, the subtitle files and ONE assembling
ffmpeg run (after a measuring run); the result is measured, not trusted.

Clips are tiny lavfi renders with a quiet tone like the offline backend's; the music is a
6 kHz tone (1.3 s, so it must loop), which the Goertzel measurement separates from speech.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
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
from storyc.backends.offline.speech import render_speech, story_cast
from storyc.load.loader import load_story
from storyc.media import ffmpeg as media
from storyc.media.assemble import Clip, assemble_picture, build_assembly_graph
from storyc.media.audio_mix import (
    PlacedSpeech,
    SoundPlan,
    assemble_with_sound,
    clip_starts,
    filter_path,
    mix_onto_picture,
    parse_loudnorm,
    sound_extension,
)
from storyc.media.ffmpeg import MediaError
from storyc.media.probe import probe
from storyc.media.subtitles import (
    Cue,
    SceneSpeech,
    SpokenLine,
    Timeline,
    cues_for,
    time_scenes,
    write_burn_style,
    write_subtitles,
)
from storyc.model.speech import scene_script

pytestmark = [pytest.mark.integration, pytest.mark.slow]

WIDTH, HEIGHT = 192, 108
RATE = 16000  # analysis sample rate
MUSIC_HZ = 6000
NATIVE_HZ = 220

STORY = """\
title: The Glow
style: watercolour
color_palette: amber and green
models: {video: grok-imagine-video-1.5}
characters:
  - {name: Ember, role: protagonist, visual_description: a red fox, personality_cues: [curious], voice: ara}
  - {name: Sage, role: mentor, visual_description: an old owl, personality_cues: [calm]}
scenes:
  - scene_id: 1
    title: The oak
    description: d
    characters_present: [Ember]
    setting: forest
    camera: wide shot
    mood: warm
    action: Ember walks
    duration_seconds: 4
    narration: "Deep in the forest, the old oak kept a secret."
  - scene_id: 2
    title: The question
    description: d
    characters_present: [Ember, Sage]
    setting: forest
    camera: medium shot
    mood: warm
    action: Ember looks up
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


@dataclass
class Render:
    video: Path
    cues: list[Cue]
    timeline: Timeline
    total_s: float
    plan: SoundPlan


def make_clip(dest: Path, seconds: float, colour: str) -> Path:
    # like the offline backend's clips: a picture and a quiet tone
    media.run_ffmpeg(
        [
            *("-f", "lavfi", "-i", f"color=c={colour}:s={WIDTH}x{HEIGHT}:r=24:d={seconds}"),
            *("-f", "lavfi", "-i", f"sine=frequency={NATIVE_HZ}:sample_rate=44100:duration={seconds}"),
            *("-filter_complex", "[1:a]volume=0.06,aformat=channel_layouts=stereo[a]", "-map", "0:v", "-map", "[a]"),
            *media.encoder_args(),
            str(dest),
        ]
    )
    return dest


@pytest.fixture(scope="module")
def story_dir(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("sound")
    (folder / "story.yaml").write_text(STORY, encoding="utf-8")
    media.run_ffmpeg(
        [
            *("-f", "lavfi", "-i", f"sine=frequency={MUSIC_HZ}:sample_rate=44100:duration=1.3"),
            *("-c:a", "pcm_s16le", str(folder / "music.wav")),
        ]
    )
    return folder


def render_story(story_dir: Path, out: Path, **changes) -> Render:
    """The whole sound flow the build will run, step by step (the integration's reference)."""
    out.mkdir(parents=True, exist_ok=True)
    story = load_story(story_dir / "story.yaml").story
    colours = ["darkgreen", "navy"]
    clips = [
        Clip(
            make_clip(out / f"clip{i}.mp4", scene.duration_seconds, colours[i]),
            scene.duration_seconds,
            scene.transition,
        )
        for i, scene in enumerate(story.scenes)
    ]
    starts, total = clip_starts(clips)
    cast = story_cast(story)
    scenes = []
    for i, scene in enumerate(story.scenes):
        spoken = []
        for k, line in enumerate(scene_script(scene)):
            rendered = render_speech(line.text, cast.voice_of(line), out / f"scene{scene.scene_id}_{k}.wav")
            spoken.append(SpokenLine(line.kind, line.text, rendered.duration_s, line.speaker, rendered.path))
        scenes.append(SceneSpeech(scene.scene_id, starts[i], scene.duration_seconds, spoken))
    timeline = time_scenes(scenes)
    video = out / "final_video.mp4"
    cues = cues_for(timeline.lines, total)
    srt, _ = write_subtitles(cues, video)
    settings_ = story.audio.model_copy(update=changes)
    subtitle_file = {"soft": srt, "burned": None, "none": None}[settings_.subtitles]
    if settings_.subtitles == "burned":
        odd = out / "sub: it's [odd], isn't it;"  # the filter graph must escape all of these
        odd.mkdir()
        subtitle_file = write_burn_style(cues, odd / "final_video.ass", WIDTH, HEIGHT)
    plan = SoundPlan(
        speech=tuple(PlacedSpeech(t.line.audio, t.start_s) for t in timeline.lines),
        native=settings_.native,
        music=story_dir / settings_.music if settings_.music else None,
        music_volume_db=settings_.music_volume_db,
        loudness_lufs=settings_.loudness_lufs,
        subtitles=settings_.subtitles,
        subtitle_file=subtitle_file,
    )
    assemble_with_sound(clips, video, WIDTH, HEIGHT, plan)
    return Render(video, cues, timeline, total, plan)


@pytest.fixture(scope="module")
def soft(story_dir, tmp_path_factory) -> Render:
    return render_story(story_dir, tmp_path_factory.mktemp("soft"))


@pytest.fixture(scope="module")
def soft_samples(soft):
    return read_samples(soft.video, RATE)


@pytest.fixture(scope="module")
def burned(story_dir, tmp_path_factory) -> Render:
    return render_story(story_dir, tmp_path_factory.mktemp("burned"), subtitles="burned")


@pytest.fixture(scope="module")
def plain(story_dir, tmp_path_factory) -> Render:
    """No subtitles, no music, another loudness target."""
    return render_story(story_dir, tmp_path_factory.mktemp("plain"), subtitles="none", music=None, loudness_lufs=-23)


def quiet_between_lines(render: Render) -> tuple[float, float]:
    """The longest stretch without speech between two cues (music and native sound only)."""
    gaps = [(a.end_s, b.start_s) for a, b in zip(render.cues, render.cues[1:], strict=False)]
    start, end = max(gaps, key=lambda g: g[1] - g[0])
    assert end - start > 0.6, gaps
    return start + 0.4, end - 0.05  # after the ducking's release


# ─── the final video ─────────────────────────────────────────────────────────


def test_the_render_has_every_line_and_the_videos_length(soft):
    info = probe(soft.video)
    assert info.duration_s == pytest.approx(soft.total_s, abs=0.05) and soft.total_s == 8.5
    assert info.has_audio and info.audio_codec == "aac"
    assert [c.text for c in soft.cues] == [
        "Deep in the forest, the old oak kept a secret.",
        "Ember: Sage, what is that glow?",
        "Sage: Something old.",
    ]
    assert not soft.timeline.overflows
    assert (soft.video.with_suffix(".srt")).is_file() and (soft.video.with_suffix(".vtt")).is_file()


@pytest.fixture(scope="module")
def soft_speech_band(soft_samples):
    """The mix in the speech band: the native 220 Hz and music 6 kHz tones filtered out."""
    return speech_band(soft_samples, RATE)


def test_speech_energy_inside_every_cue(soft, soft_samples, soft_speech_band):
    gap = quiet_between_lines(soft)
    quiet, quiet_band = rms_db(soft_samples, RATE, *gap), rms_db(soft_speech_band, RATE, *gap)
    for cue in soft.cues:
        assert rms_db(soft_samples, RATE, cue.start_s, cue.end_s) > quiet + 12, cue.text
        # throughout: no 300 ms stretch of a cue is without speech
        windows = windowed_rms_db(soft_speech_band[int(cue.start_s * RATE) : int(cue.end_s * RATE)], RATE, 0.3)
        assert min(windows) > quiet_band + 20, (cue.text, windows, quiet_band)


def test_cues_start_and_end_within_100_ms_of_the_speech(soft, soft_speech_band):
    step = 0.01
    levels = windowed_rms_db(soft_speech_band, RATE, step)
    threshold = rms_db(soft_speech_band, RATE, *quiet_between_lines(soft)) + 15

    def loud(t: float) -> bool:
        i = round(t / step)
        return 0 <= i < len(levels) and levels[i] > threshold

    for n, cue in enumerate(soft.cues):
        # search between the neighbouring cues (the pauses between lines are 0.25 s)
        after = soft.cues[n - 1].end_s + 0.05 if n else 0.0
        before = soft.cues[n + 1].start_s - 0.05 if n + 1 < len(soft.cues) else soft.total_s
        search = [after + k * step for k in range(int((before - after) / step))]
        onset = next(t for t in search if loud(t))
        offset = next(t for t in reversed(search) if loud(t)) + step
        assert abs(onset - cue.start_s) <= 0.1, (cue.text, onset, cue.start_s)
        assert abs(offset - cue.end_s) <= 0.1, (cue.text, offset, cue.end_s)


def test_integrated_loudness_is_within_1_lu_of_the_target(soft, plain):
    assert integrated_loudness(soft.video) == pytest.approx(-16, abs=1.0)
    assert integrated_loudness(plain.video) == pytest.approx(-23, abs=1.0)


def test_music_is_lower_during_speech_than_between_lines(soft, soft_samples):
    between = tone_db(soft_samples, RATE, MUSIC_HZ, *quiet_between_lines(soft))
    for cue in soft.cues:
        middle = (cue.start_s + cue.end_s) / 2
        during = tone_db(soft_samples, RATE, MUSIC_HZ, middle - 0.2, middle + 0.2)
        assert during < between - 6, (cue.text, during, between)
    # and the music loops under the whole video (the file is 1.3 s long)
    assert tone_db(soft_samples, RATE, MUSIC_HZ, soft.total_s - 0.6, soft.total_s - 0.1) > between - 3


def test_without_music_there_is_no_music_and_the_native_sound_stays(plain, soft_samples):
    samples = read_samples(plain.video, RATE)
    gap = quiet_between_lines(plain)
    assert tone_db(samples, RATE, MUSIC_HZ, *gap) < tone_db(soft_samples, RATE, MUSIC_HZ, *gap) - 30
    assert tone_db(samples, RATE, NATIVE_HZ, *gap) > -50  # the clips' own tone (-23 LUFS here)


def test_soft_subtitles_are_a_tagged_mov_text_stream_with_the_cues(soft):
    assert subtitle_streams(soft.video) == [("mov_text", "eng")]
    shown = subtitle_cues(soft.video)
    assert [text for _, text in shown] == [c.text for c in soft.cues]
    for (start, _), cue in zip(shown, soft.cues, strict=True):
        assert start == pytest.approx(cue.start_s, abs=0.002)


def test_burned_subtitles_are_drawn_at_cue_times_only(burned, plain):
    assert subtitle_streams(burned.video) == []
    for cue in burned.cues:
        middle = (cue.start_s + cue.end_s) / 2
        with_text, without = frame_at(burned.video, middle), frame_at(plain.video, middle)
        diff = ImageChops.difference(with_text, without).convert("L")
        bottom = ImageStat.Stat(diff.crop((0, HEIGHT * 2 // 3, WIDTH, HEIGHT))).mean[0]
        top = ImageStat.Stat(diff.crop((0, 0, WIDTH, HEIGHT // 3))).mean[0]
        assert bottom > 2.0 and top < 0.5, (cue.text, bottom, top)
    gap_start, gap_end = quiet_between_lines(burned)
    between = ImageChops.difference(
        frame_at(burned.video, (gap_start + gap_end) / 2), frame_at(plain.video, (gap_start + gap_end) / 2)
    )
    assert ImageStat.Stat(between.convert("L")).mean[0] < 0.5  # no text between lines


def test_same_story_same_bytes(soft, story_dir, tmp_path):
    """Rendered again elsewhere (other paths, other process history): the same final video.
    The ducking's compressor gets fixed-size frames; without them its output varied run to run."""
    again = render_story(story_dir, tmp_path / "again")
    assert again.video.read_bytes() == soft.video.read_bytes()
    graph = ";".join(sound_extension(soft.plan, soft.total_s, 2).filters)
    assert "asetnsamples=n=1024:p=0[speech_level]" in graph


def _packets(path: Path, kind: str) -> list[bytes]:
    import av

    with av.open(str(path)) as container:
        stream = getattr(container.streams, kind)[0]
        return [bytes(packet) for packet in container.demux(stream) if packet.size]


def test_mixing_onto_a_joined_picture_copies_it_and_makes_the_same_sound(soft, tmp_path):
    """The picture joined alone and the sound mixed onto it: the picture's packets copied as
    they are, the sound the one pass's, the subtitles the same track."""
    clips = [Clip(soft.video.parent / f"clip{i}.mp4", d, t) for i, (d, t) in enumerate([(4, "cut"), (5, "crossfade")])]
    picture = assemble_picture(clips, tmp_path / "picture.mp4", WIDTH, HEIGHT)
    assert not probe(picture).has_audio and probe(picture).duration_s == pytest.approx(soft.total_s, abs=0.05)
    mixed = mix_onto_picture(picture, clips, tmp_path / "final_video.mp4", soft.plan)
    assert _packets(mixed, "video") == _packets(picture, "video")
    assert _packets(mixed, "video") == _packets(soft.video, "video")  # the same picture as the one pass
    assert _packets(mixed, "audio") == _packets(soft.video, "audio")  # and the same sound
    assert subtitle_streams(mixed) == [("mov_text", "eng")]
    with pytest.raises(MediaError, match="burned"):
        mix_onto_picture(picture, clips, tmp_path / "x.mp4", SoundPlan(subtitles="burned", subtitle_file=picture))


def test_native_false_drops_the_clips_sound(story_dir, tmp_path):
    render = render_story(story_dir, tmp_path / "silent", native=False, music=None, subtitles="none")
    samples = read_samples(render.video, RATE)
    gap = quiet_between_lines(render)
    assert tone_db(samples, RATE, NATIVE_HZ, *gap) < -60
    assert integrated_loudness(render.video) == pytest.approx(-16, abs=1.0)


def test_nothing_to_hear_renders_silence_without_normalizing(tmp_path):
    clip = make_clip(tmp_path / "c.mp4", 1.0, "red")
    out = assemble_with_sound(
        [Clip(clip, 1.0)], tmp_path / "silent.mp4", WIDTH, HEIGHT, SoundPlan(native=False, loudness_lufs=-16)
    )
    samples = read_samples(out, RATE)
    assert max(abs(x) for x in samples) < 1e-4
    assert probe(out).duration_s == pytest.approx(1.0, abs=0.05)


# ─── the graph ───────────────────────────────────────────────────────────────


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from([0.3, 0.5, 1.0, 3.0, 4.5, 8.0]), st.sampled_from(["cut", "crossfade", "match-cut"])),
        min_size=1,
        max_size=8,
    )
)
def test_clip_starts_follow_the_assembly_graph(specs):
    clips = [Clip(Path(f"{i}.mp4"), d, t) for i, (d, t) in enumerate(specs)]
    starts, total = clip_starts(clips)
    _, graph_total = build_assembly_graph(clips, [True] * len(clips), 64, 36)
    sound, sound_total = build_assembly_graph(clips, [True] * len(clips), 64, 36, video=False)
    assert total == pytest.approx(graph_total) == pytest.approx(sound_total)
    assert ":v]" not in sound and "xfade" not in sound and "[aout]" in sound and "[vout]" not in sound
    picture, picture_total = build_assembly_graph(clips, [True] * len(clips), 64, 36, audio=False)
    assert picture_total == pytest.approx(total)
    assert ":a]" not in picture and "acrossfade" not in picture and "[vout]" in picture and "[aout]" not in picture
    assert starts[0] == 0 and all(b >= a for a, b in itertools.pairwise(starts))
    for start, clip in zip(starts, clips, strict=True):
        assert start + clip.duration_s <= total + 1e-6


def test_the_extension_plugs_into_the_assembly_labels():
    plan = SoundPlan(
        speech=(PlacedSpeech(Path("a.wav"), 1.25), PlacedSpeech(Path("b.wav"), 3.0)),
        music=Path("m.mp3"),
        subtitles="soft",
        subtitle_file=Path("final_video.srt"),
    )
    ext = sound_extension(plan, 8.5, first_input=2)
    assert ext.inputs == ("-i", "a.wav", "-i", "b.wav", "-stream_loop", "-1", "-i", "m.mp3", "-i", "final_video.srt")
    graph = ";".join(ext.filters)
    assert "[2:a]" in graph and "adelay=delays=1250:all=1" in graph and "adelay=delays=3000:all=1" in graph
    assert "[aout]" in graph and "sidechaincompress" in graph and "loudnorm=I=-16" in graph
    assert ext.video_label == "vout" and ext.audio_label == "mixed"
    assert ext.output_args[:2] == ("-map", "5:s:0") and "language=eng" in ext.output_args
    measuring = sound_extension(plan, 8.5, first_input=2, measuring=True)
    assert measuring.video_label is None and "vout" not in ";".join(measuring.filters)
    assert "print_format=json" in ";".join(measuring.filters) and "5:s:0" not in measuring.output_args


def test_filter_path_escapes_both_levels():
    assert filter_path("/tmp/a b/c.ass") == "/tmp/a b/c.ass"
    assert filter_path("/x:y/it's[1],;.ass") == r"/x\\:y/it\\\'s\[1\]\,\;.ass"


def test_a_loudnorm_log_is_parsed_and_silence_means_no_normalization():
    log = """[Parsed_loudnorm_3 @ 0x1]
{
\t"input_i" : "-20.47",
\t"input_tp" : "-3.10",
\t"input_lra" : "4.20",
\t"input_thresh" : "-30.66",
\t"output_i" : "-16.02",
\t"output_tp" : "-1.50",
\t"output_lra" : "3.90",
\t"output_thresh" : "-26.20",
\t"normalization_type" : "dynamic",
\t"target_offset" : "0.02"
}
"""
    measured = parse_loudnorm(log)
    assert measured is not None and measured.input_i == -20.47 and measured.target_offset == 0.02
    assert parse_loudnorm(log.replace('"-20.47"', '"-inf"').replace('"-3.10"', '"-inf"')) is None
    with pytest.raises(MediaError):
        parse_loudnorm("no json here")


def test_a_subtitle_mode_needs_its_file():
    with pytest.raises(ValueError, match="subtitle_file"):
        SoundPlan(subtitles="soft")
