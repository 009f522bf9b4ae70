"""Subtitles from timed speech: where each spoken line falls on the final video's timeline,
the cues that caption them, and the files (final_video.srt, final_video.vtt, and an .ass
with a readable style for burning), written with pysubs2.

Timing: a scene's lines (narration first, then the dialogue, in order) are placed within the
scene by storyc.model.speech.place_lines, the same arithmetic lint uses with estimated
durations; here the durations are the rendered speech's. A cue spans exactly its speech.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from storyc.model.speech import place_lines
from storyc.store.fsutil import atomic_output

if TYPE_CHECKING:
    import pysubs2

LineKind = Literal["narration", "dialogue"]
SUBTITLE_LANGUAGE = "eng"  # ISO 639-2, the tag of the MP4's subtitle track
# Burned style, relative to the picture's height: readable on any background (white with a dark
# outline and shadow), bottom centre, clear of the edge.
BURN_FONT = "DejaVu Sans"
BURN_FONT_SCALE = 0.055
BURN_MIN_FONT_PX = 12


@dataclass(frozen=True)
class SpokenLine:
    """One line to place: its words, who says it, and how long the speech lasts."""

    kind: LineKind
    text: str
    duration_s: float
    speaker: str | None = None  # None for narration
    audio: Path | None = None  # the rendered speech, when there is a file to mix


@dataclass(frozen=True)
class SceneSpeech:
    """A scene's lines (narration first, then dialogue) and where the scene is on the timeline."""

    scene_id: int
    start_s: float
    duration_s: float
    lines: Sequence[SpokenLine]


@dataclass(frozen=True)
class TimedLine:
    """A line placed on the final video's timeline."""

    scene_id: int
    index: int  # its order within the scene
    line: SpokenLine
    start_s: float

    @property
    def end_s(self) -> float:
        return self.start_s + self.line.duration_s

    @property
    def caption(self) -> str:
        if self.line.kind == "dialogue" and self.line.speaker:
            return f"{self.line.speaker}: {self.line.text}"
        return self.line.text


@dataclass(frozen=True)
class Overflow:
    """A scene too short for its lines: by how much, and the first line that runs over."""

    scene_id: int
    overflow_s: float
    first_late: int | None


@dataclass
class Timeline:
    lines: list[TimedLine] = field(default_factory=list)
    overflows: list[Overflow] = field(default_factory=list)


def time_scenes(scenes: Sequence[SceneSpeech]) -> Timeline:
    """Place every scene's lines on the video's timeline, in order within each scene, and
    report the scenes whose lines do not fit (they are still placed, in order, running over)."""
    timeline = Timeline()
    for scene in scenes:
        placement = place_lines([line.duration_s for line in scene.lines], scene.duration_s)
        if not placement.fits:
            timeline.overflows.append(Overflow(scene.scene_id, round(placement.overflow_s, 3), placement.first_late()))
        for index, (line, slot) in enumerate(zip(scene.lines, placement.slots, strict=True)):
            timeline.lines.append(TimedLine(scene.scene_id, index, line, round(scene.start_s + slot.start_s, 6)))
    return timeline


@dataclass(frozen=True)
class Cue:
    start_s: float
    end_s: float
    text: str
    kind: LineKind


def cues_for(lines: Sequence[TimedLine], video_s: float | None = None) -> list[Cue]:
    """One cue per line, spanning its speech; dialogue prefixed with the speaker's name.
    With `video_s`, cues are cut at the video's end (and dropped when they start after it)."""
    cues: list[Cue] = []
    for timed in sorted(lines, key=lambda t: (t.start_s, t.scene_id, t.index)):
        start, end = timed.start_s, timed.end_s
        if video_s is not None:
            if start >= video_s:
                continue
            end = min(end, video_s)
        if end > start and timed.caption.strip():
            cues.append(Cue(start, end, timed.caption.strip(), timed.line.kind))
    return cues


def _ms(seconds: float) -> int:
    return round(seconds * 1000)


def _subtitle_file(
    cues: Sequence[Cue], *, italic_narration: bool = True, escape_markup: bool = False
) -> pysubs2.SSAFile:
    import pysubs2

    subs = pysubs2.SSAFile()
    for cue in cues:
        event = pysubs2.SSAEvent(start=_ms(cue.start_s), end=_ms(cue.end_s))
        # WebVTT reads '<' and '&' as markup: a line like "a <glow>" must stay text
        event.plaintext = html.escape(cue.text, quote=False) if escape_markup else cue.text
        if italic_narration and cue.kind == "narration":
            event.text = r"{\i1}" + event.text + r"{\i0}"
        subs.append(event)
    return subs


def _save(subs: pysubs2.SSAFile, dest: Path, format_: str) -> Path:
    with atomic_output(dest) as tmp:
        subs.save(str(tmp), encoding="utf-8", format_=format_)
    return dest


def write_srt(cues: Sequence[Cue], dest: Path | str) -> Path:
    """SubRip subtitles (narration in <i>), written atomically."""
    return _save(_subtitle_file(cues), Path(dest), "srt")


def write_vtt(cues: Sequence[Cue], dest: Path | str) -> Path:
    """WebVTT subtitles, written atomically."""
    return _save(_subtitle_file(cues, escape_markup=True), Path(dest), "vtt")


def write_subtitles(cues: Sequence[Cue], video: Path | str) -> tuple[Path, Path]:
    """final_video.srt and final_video.vtt beside `video` (final_video.mp4)."""
    video = Path(video)
    return write_srt(cues, video.with_suffix(".srt")), write_vtt(cues, video.with_suffix(".vtt"))


def write_burn_style(
    cues: Sequence[Cue], dest: Path | str, width: int, height: int, *, clear_bottom_px: int = 0
) -> Path:
    """An .ass file for burning: sized in the video's pixels, white text with a dark outline
    and shadow at the bottom centre, lines wrapped by libass; `clear_bottom_px` keeps the
    text above a band of the picture (the offline animatic's caption band)."""
    import pysubs2

    subs = _subtitle_file(cues)
    subs.info["PlayResX"] = str(width)
    subs.info["PlayResY"] = str(height)
    subs.info["WrapStyle"] = "0"
    subs.info["ScaledBorderAndShadow"] = "yes"
    size = max(BURN_MIN_FONT_PX, round(height * BURN_FONT_SCALE))
    subs.styles["Default"] = pysubs2.SSAStyle(
        fontname=BURN_FONT,
        fontsize=size,
        primarycolor=pysubs2.Color(255, 255, 255, 0),
        outlinecolor=pysubs2.Color(0, 0, 0, 0),
        backcolor=pysubs2.Color(0, 0, 0, 96),
        bold=False,
        borderstyle=1,
        outline=max(1.0, size / 12),
        shadow=max(0.5, size / 24),
        alignment=pysubs2.Alignment.BOTTOM_CENTER,
        marginl=max(2, width // 20),
        marginr=max(2, width // 20),
        marginv=max(2, height // 18) + max(0, clear_bottom_px),
    )
    return _save(subs, Path(dest), "ass")
