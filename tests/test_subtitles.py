"""Timing of spoken lines (storyc.model.speech) and the subtitle files (storyc.media.subtitles)."""

from __future__ import annotations

from pathlib import Path

import pysubs2
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storyc.media.subtitles import (
    Cue,
    SceneSpeech,
    SpokenLine,
    cues_for,
    time_scenes,
    write_burn_style,
    write_subtitles,
)
from storyc.model import speech
from storyc.model.speech import GAP_S, LEAD_IN_S, MIN_GAP_S, TAIL_S, estimate_seconds, place_lines

pytestmark = pytest.mark.unit

# ─── placement ───────────────────────────────────────────────────────────────


def test_lines_that_fit_get_the_normal_spacing():
    placement = place_lines([2.0, 1.0], 8)
    assert placement.fits and placement.overflow_s == 0
    assert placement.slots[0].start_s == LEAD_IN_S
    assert placement.slots[1].start_s == pytest.approx(LEAD_IN_S + 2.0 + GAP_S)
    assert placement.comfortable_s == pytest.approx(LEAD_IN_S + 3.0 + GAP_S + TAIL_S)


def test_a_tight_scene_squeezes_the_gaps_but_keeps_every_line_inside():
    placement = place_lines([2.0, 2.0, 2.0], 6.5)
    assert placement.fits
    gaps = [b.start_s - a.end_s for a, b in zip(placement.slots, placement.slots[1:], strict=False)]
    assert all(MIN_GAP_S - 1e-9 <= gap < GAP_S for gap in gaps)
    assert placement.slots[-1].end_s <= 6.5 - speech.MIN_TAIL_S + 1e-9
    assert placement.first_late() is None


def test_lines_that_cannot_fit_are_placed_in_order_and_reported():
    placement = place_lines([3.0, 3.0], 4)
    assert not placement.fits
    assert placement.overflow_s == pytest.approx(3.0 + 3.0 + 0.1 + 0.1 + MIN_GAP_S - 4)
    assert placement.first_late() == 1
    assert placement.slots[1].start_s > placement.slots[0].end_s
    assert speech.suggested_duration(placement, 15) == 7
    assert speech.suggested_duration(place_lines([20.0], 15), 15) is None


@settings(max_examples=200, deadline=None)
@given(
    durations=st.lists(st.floats(0.05, 6.0), max_size=8),
    scene=st.integers(3, 15),
)
def test_placement_invariants(durations, scene):
    placement = place_lines(durations, scene)
    assert len(placement.slots) == len(durations)
    for slot, duration in zip(placement.slots, durations, strict=True):
        assert slot.duration_s == pytest.approx(duration, abs=1e-5)
    for a, b in zip(placement.slots, placement.slots[1:], strict=False):
        assert b.start_s >= a.end_s + MIN_GAP_S - 1e-5  # in order, never overlapping
    if placement.fits and durations:
        assert placement.slots[0].start_s >= speech.MIN_LEAD_IN_S - 1e-9
        assert placement.slots[-1].end_s <= scene - speech.MIN_TAIL_S + 1e-5
    assert placement.fits == (placement.first_late() is None)


def test_estimates_count_words_at_the_stated_rate():
    assert speech.WORDS_PER_SECOND == 2.5
    assert estimate_seconds("Sage, what is that glow between the roots?") == pytest.approx(8 / 2.5)
    assert estimate_seconds("Oh.") == speech.MIN_LINE_S
    assert speech.word_count("don't stop — it's 42 o'clock, Ünïcödé") == 6


# ─── the timeline and cues ───────────────────────────────────────────────────


def scenes() -> list[SceneSpeech]:
    return [
        SceneSpeech(1, 0.0, 4.0, [SpokenLine("narration", "The old oak kept a secret.", 2.0)]),
        SceneSpeech(
            2,
            3.5,
            4.0,
            [
                SpokenLine("dialogue", "What is that <glow> & why?", 1.2, "Ember"),
                SpokenLine("dialogue", "Something old.", 0.9, "Sage"),
            ],
        ),
        SceneSpeech(3, 7.5, 3.0, [SpokenLine("dialogue", "A very long line that cannot fit here.", 4.0, "Sage")]),
    ]


def test_lines_are_placed_on_the_video_timeline_and_overflows_reported():
    timeline = time_scenes(scenes())
    starts = [(t.scene_id, t.index, round(t.start_s, 3)) for t in timeline.lines]
    assert starts[0] == (1, 0, LEAD_IN_S)
    assert starts[1] == (2, 0, 3.5 + LEAD_IN_S)
    assert starts[2] == (2, 1, round(3.5 + LEAD_IN_S + 1.2 + GAP_S, 3))
    assert [o.scene_id for o in timeline.overflows] == [3]
    assert timeline.overflows[0].overflow_s == pytest.approx(4.0 + 0.2 - 3.0)


def test_cues_caption_each_line_with_its_speaker_and_stop_at_the_end_of_the_video():
    timeline = time_scenes(scenes())
    cues = cues_for(timeline.lines, video_s=10.0)
    assert [c.text for c in cues] == [
        "The old oak kept a secret.",
        "Ember: What is that <glow> & why?",
        "Sage: Something old.",
        "Sage: A very long line that cannot fit here.",
    ]
    assert cues[-1].end_s == 10.0  # cut at the video's end
    for cue, timed in zip(cues, timeline.lines, strict=True):
        assert cue.start_s == timed.start_s
    assert cues_for(timeline.lines, video_s=8.0)[-1].end_s == 8.0
    assert len(cues_for(timeline.lines, video_s=7.0)) == 3  # a line starting after the end is dropped


def test_srt_and_vtt_beside_the_video_read_back_with_the_same_times_and_text(tmp_path: Path):
    cues = cues_for(time_scenes(scenes()).lines, video_s=10.0)
    srt, vtt = write_subtitles(cues, tmp_path / "final_video.mp4")
    assert (srt.name, vtt.name) == ("final_video.srt", "final_video.vtt")
    for path in (srt, vtt):
        events = pysubs2.load(str(path), encoding="utf-8")
        assert [(e.start, e.end) for e in events] == [(round(c.start_s * 1000), round(c.end_s * 1000)) for c in cues]
    srt_text, vtt_text = srt.read_text(encoding="utf-8"), vtt.read_text(encoding="utf-8")
    assert "00:00:00,300 --> 00:00:02,300" in srt_text and "<i>The old oak kept a secret.</i>" in srt_text
    assert vtt_text.startswith("WEBVTT") and "00:00:00.300 --> 00:00:02.300" in vtt_text
    assert "What is that &lt;glow&gt; &amp; why?" in vtt_text  # markup characters stay text in WebVTT
    assert not list(tmp_path.glob(".*tmp*"))  # written atomically, no temp files left


def test_the_burn_style_is_sized_to_the_picture(tmp_path: Path):
    cues = [Cue(0.5, 1.5, "Ember: Hello.", "dialogue")]
    subs = pysubs2.load(str(write_burn_style(cues, tmp_path / "b.ass", 1280, 720)))
    assert subs.info["PlayResY"] == "720"
    style = subs.styles["Default"]
    assert style.fontsize == round(720 * 0.055) and style.outline >= 3
    assert style.alignment == pysubs2.Alignment.BOTTOM_CENTER
    small = pysubs2.load(str(write_burn_style(cues, tmp_path / "s.ass", 128, 72)))
    assert small.styles["Default"].fontsize == 12  # never unreadably small


# ─── the story's sound fields ────────────────────────────────────────────────

BASE = """title: T
style: s
color_palette: c
characters:
  - {name: Ember, role: r, visual_description: d, personality_cues: []}
scenes:
  - {scene_id: 1, title: t, description: d, characters_present: [Ember], setting: s, camera: c, mood: m, action: a, duration_seconds: 8}
"""


def test_a_story_without_sound_fields_keeps_todays_silent_behaviour():
    from storyc.load.loader import load_story_text

    story = load_story_text(BASE).story
    assert not story.has_sound()
    assert story.audio.native and story.audio.subtitles == "soft" and story.audio.music is None
    assert story.scenes[0].dialogue == [] and story.scenes[0].narration is None
    assert story.characters[0].voice is None
    with_narration = load_story_text(BASE.replace("duration_seconds: 8}", 'duration_seconds: 8, narration: "Once."}'))
    assert with_narration.story.has_sound()
    assert load_story_text(BASE + "audio: {native: false}\n").story.has_sound()
    script = speech.scene_script(with_narration.story.scenes[0])
    assert [(line.kind, line.text, line.loc) for line in script] == [("narration", "Once.", ("narration",))]
