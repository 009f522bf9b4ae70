"""When a scene's spoken lines play: estimates and placement. Pure arithmetic, no I/O.

One source for lint (durations estimated from the words), the subtitles and the mix
(durations of the rendered speech), so what lint warns about is what the build does.

A scene's speech is its narration, then its dialogue lines, in order. The first line starts
LEAD_IN_S after the scene's first frame, lines are GAP_S apart, and the last one ends TAIL_S
before the scene's last frame (so it is not cut, and does not run into a 0.5 s crossfade where
the next scene's speech starts). When that does not fit, the spacing shrinks down to the MIN_
values; lines that still do not fit are placed anyway, in order, and the placement says by how
much the scene is too short.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from storyc.model.capabilities import VOICES, info_of
from storyc.model.clips import clip_plan
from storyc.model.story import VOICE_IDS, Scene, Story

# A measured speaking rate to estimate a line's length before it is rendered: ~150 words a
# minute, a little slower than espeak-ng's default 175 (which reads the 10-word line
# "Hello Sage. What is that glowing thing between the roots?" in 3.2 s, 3.1 words/s).
WORDS_PER_SECOND = 2.5
MIN_LINE_S = 0.5  # "Oh." still takes a moment

LEAD_IN_S = 0.3
GAP_S = 0.25
TAIL_S = 0.3
MIN_LEAD_IN_S = 0.1
MIN_GAP_S = 0.08
MIN_TAIL_S = 0.1

_WORD = re.compile(r"[^\W_]+(?:['’][^\W_]+)*")


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def estimate_seconds(text: str) -> float:
    """How long `text` takes to say, at WORDS_PER_SECOND (before any audio exists)."""
    return max(MIN_LINE_S, word_count(text) / WORDS_PER_SECOND)


@dataclass(frozen=True)
class ScriptLine:
    """One thing said in a scene, in the order it is said."""

    kind: Literal["narration", "dialogue"]
    text: str
    speaker: str | None = None  # None for narration
    # where the words are in the story, relative to the scene: ("narration",) or ("dialogue", j, "line")
    loc: tuple[str | int, ...] = ()


def scene_script(scene: Scene) -> list[ScriptLine]:
    """What is said in `scene`, in order: the narration, then the dialogue lines."""
    script = [ScriptLine("narration", scene.narration, None, ("narration",))] if scene.narration else []
    script += [
        ScriptLine("dialogue", line.line, line.speaker, ("dialogue", j, "line"))
        for j, line in enumerate(scene.dialogue)
    ]
    return script


@dataclass(frozen=True)
class Slot:
    """One line's time within its scene, in seconds from the scene's first frame."""

    start_s: float
    end_s: float

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True)
class ScenePlacement:
    slots: tuple[Slot, ...]
    scene_s: float
    comfortable_s: float  # the scene length the lines need at the normal spacing
    minimum_s: float  # ... and at the tightest spacing

    @property
    def fits(self) -> bool:
        return self.minimum_s <= self.scene_s + 1e-9

    @property
    def overflow_s(self) -> float:
        """How many seconds the scene is too short for its lines (0 when they fit)."""
        return max(0.0, self.minimum_s - self.scene_s)

    def first_late(self) -> int | None:
        """Index of the first line that ends after the scene's last usable moment, or None."""
        limit = self.scene_s - MIN_TAIL_S + 1e-9
        return next((i for i, slot in enumerate(self.slots) if slot.end_s > limit), None)


def placement_settings() -> dict[str, float]:
    """The spacing place_lines uses, for cache keys of placed lines."""
    return {
        "lead_in_s": LEAD_IN_S,
        "gap_s": GAP_S,
        "tail_s": TAIL_S,
        "min_lead_in_s": MIN_LEAD_IN_S,
        "min_gap_s": MIN_GAP_S,
        "min_tail_s": MIN_TAIL_S,
    }


def _spacing(n: int, lead: float, gap: float, tail: float) -> float:
    return lead + tail + gap * max(0, n - 1) if n else 0.0


def place_lines(durations: Sequence[float], scene_s: float) -> ScenePlacement:
    """Place lines of the given durations, in order, within a scene of `scene_s` seconds."""
    n = len(durations)
    speech = float(sum(durations))
    normal = _spacing(n, LEAD_IN_S, GAP_S, TAIL_S)
    tight = _spacing(n, MIN_LEAD_IN_S, MIN_GAP_S, MIN_TAIL_S)
    comfortable, minimum = speech + normal, speech + tight
    if n == 0:
        return ScenePlacement((), scene_s, 0.0, 0.0)
    if comfortable <= scene_s:
        t = 1.0
    elif minimum < scene_s:  # squeeze the spacing linearly between tight and normal
        t = (scene_s - minimum) / (comfortable - minimum)
    else:
        t = 0.0
    lead = MIN_LEAD_IN_S + t * (LEAD_IN_S - MIN_LEAD_IN_S)
    gap = MIN_GAP_S + t * (GAP_S - MIN_GAP_S)
    slots: list[Slot] = []
    at = lead
    for duration in durations:
        slots.append(Slot(round(at, 6), round(at + duration, 6)))
        at += duration + gap
    return ScenePlacement(tuple(slots), scene_s, round(comfortable, 6), round(minimum, 6))


# ─── who voices a line ───────────────────────────────────────────────────────

LineSource = Literal["local", "tts", "clip"]
OFFLINE = "offline"
# Voices a clip of a voice model takes as references (reference_audios, xai-facts.md).
MAX_VOICE_REFERENCES = 3


def clip_speaks_dialogue(story: Story, backend: str, index: int) -> bool:
    """True when the video model itself speaks scene `index`'s dialogue: a real video backend
    making the clips' own sound (audio.native), for a clip of one generation. The lines then go
    into the video prompt and the clip carries them; otherwise (offline, silent clips, or a
    scene longer than one generation: an extension takes no voices and a segment is a new
    generation, so the lines' timing would not hold) the speech step renders them."""
    return backend != OFFLINE and story.audio.native and not clip_plan(story, index).long


def fallback_voice(name: str) -> str:
    """The xAI voice a character without one speaks in when a service voices its lines."""
    digest = hashlib.sha256(name.encode("utf-8")).digest()
    return VOICE_IDS[int.from_bytes(digest[:4], "big") % len(VOICE_IDS)]


@dataclass(frozen=True)
class VoicedLine:
    """A line of a scene with who makes its sound: `local` (the offline backend's speech),
    `tts` (the service's text-to-speech) or `clip` (the video model, in the clip's own sound)."""

    line: ScriptLine
    voice: str | None  # the xAI voice id; None for a character without one (offline: voiced by name)
    source: LineSource


def voiced_script(story: Story, index: int, backend: str) -> list[VoicedLine]:
    """Scene `index`'s lines in order, each with its voice and who voices it on `backend`."""
    in_clip = clip_speaks_dialogue(story, backend, index)
    out = []
    for line in scene_script(story.scenes[index]):
        if line.kind == "narration":
            voice: str | None = story.audio.narration_voice
            source: LineSource = "local" if backend == OFFLINE else "tts"
        else:
            character = story.character(line.speaker or "")
            voice = character.voice if character is not None else None
            if backend == OFFLINE:
                source = "local"
            elif in_clip:
                source = "clip"
            else:
                source, voice = "tts", voice or fallback_voice(line.speaker or "")
        out.append(VoicedLine(line, voice, source))
    return out


@dataclass(frozen=True)
class VoiceReference:
    """A speaker's voice passed to the video model, referred to in the prompt as <AUDIO_n>."""

    speaker: str
    voice: str
    number: int  # n, from 1


def clip_voice_references(story: Story, index: int) -> tuple[VoiceReference, ...]:
    """The voices a scene's clip is given (models that speak in a given voice only): each
    speaker with a voice, in the order they first speak, at most MAX_VOICE_REFERENCES."""
    if not info_of(story.models.video, "video").can(VOICES):  # the capability table (an alias counts)
        return ()
    refs: list[VoiceReference] = []
    for line in story.scenes[index].dialogue:
        character = story.character(line.speaker)
        if character is None or character.voice is None or any(r.speaker == line.speaker for r in refs):
            continue
        if len(refs) < MAX_VOICE_REFERENCES:
            refs.append(VoiceReference(line.speaker, character.voice, len(refs) + 1))
    return tuple(refs)


def suggested_duration(placement: ScenePlacement, max_s: int) -> int | None:
    """The whole number of seconds that fits the lines comfortably, or None above `max_s`."""
    need = math.ceil(placement.comfortable_s - 1e-9)
    return need if need <= max_s else None
