"""Rules about sound: who speaks, in which voice, whether the words fit the scene, the music file."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

from storyc.diagnostics import Diagnostic, Severity
from storyc.lint.base import LintContext, Rule, did_you_mean
from storyc.load.positions import Loc
from storyc.model.capabilities import VOICES, info_of
from storyc.model.speech import (
    WORDS_PER_SECOND,
    ScenePlacement,
    estimate_seconds,
    place_lines,
    scene_script,
    suggested_duration,
)
from storyc.model.story import MAX_DURATION_S, VOICE_IDS, VOICE_VIDEO_MODELS


class E307SpeakerNotInScene(Rule):
    """A dialogue line's speaker must be one of the scene's characters_present: the clip shows
    who speaks, and the voice is the speaker's.

    Bad::

        - scene_id: 2
          characters_present: [Ember]
          dialogue:
            - speaker: Sage          # not in this scene
              line: "Something that belongs where it is."

    Good::

        - scene_id: 2
          characters_present: [Ember, Sage]
          dialogue:
            - speaker: Sage
              line: "Something that belongs where it is."
    """

    code = "E307"
    summary = "dialogue speaker is not in the scene's characters_present"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for i, scene in enumerate(ctx.story.scenes):
            present = set(scene.characters_present)
            for j, line in enumerate(scene.dialogue):
                speaker = line.speaker
                if speaker in present:
                    continue
                where = ("scenes", i, "dialogue", j, "speaker")
                if speaker in ctx.character_names:
                    message = (
                        f"scene {scene.scene_id}: {speaker} speaks but is not in characters_present; "
                        f"add {speaker} to the scene or give the line to someone in it"
                    )
                else:
                    hint = did_you_mean(speaker, present, "characters in this scene")
                    message = f"scene {scene.scene_id}: speaker '{speaker}' is not in characters_present{hint}"
                yield self.report(ctx, where, message)


def _voice_fields(ctx: LintContext) -> Iterator[tuple[Loc, str]]:
    for i, character in enumerate(ctx.story.characters):
        if character.voice is not None:
            yield ("characters", i, "voice"), character.voice
    if "narration_voice" in ctx.story.audio.model_fields_set:
        yield ("audio", "narration_voice"), ctx.story.audio.narration_voice


class E308UnknownVoice(Rule):
    """A voice must be one of the xAI voice ids: eve, ara, leo, rex, sal (lower case). The
    offline backend maps each to a local voice; others would fail at the API.

    Bad::

        characters:
          - name: Ember
            voice: Ava
        audio:
          narration_voice: narrator

    Good::

        characters:
          - name: Ember
            voice: ara
        audio:
          narration_voice: eve
    """

    code = "E308"
    summary = "unknown voice id"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for loc, voice in _voice_fields(ctx):
            if voice not in VOICE_IDS:
                hint = did_you_mean(voice, VOICE_IDS, "voices")
                yield self.report(ctx, loc, f"unknown voice '{voice}'{hint}")


class E309VoiceNeedsVoiceModel(Rule):
    """A character's voice is passed to the video model, and only some video models speak in a
    given voice. With another model the lines would come out in whatever voice it picks.

    Bad::

        models:
          video: grok-imagine-video
        characters:
          - name: Ember
            voice: ara

    Good::

        models:
          video: grok-imagine-video-1.5
        characters:
          - name: Ember
            voice: ara
    """

    code = "E309"
    summary = "character voice set, but the video model has no voices"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        model = ctx.story.models.video
        if info_of(model, "video").can(VOICES):  # the capability table (an alias counts as its model)
            return
        capable = " or ".join(sorted(VOICE_VIDEO_MODELS))
        for i, character in enumerate(ctx.story.characters):
            if character.voice is not None:
                yield self.report(
                    ctx,
                    ("characters", i, "voice"),
                    f"{character.name} has a voice, but video model '{model}' has no voices; "
                    f"set models.video: {capable}, or remove the voice",
                )


def _needs(placement: ScenePlacement) -> str:
    def up(seconds: float) -> str:  # rounded up: "needs 6.1 s" must not read as fitting in 6
        return f"{math.ceil(seconds * 10 - 1e-6) / 10:.1f} s"

    return (
        f"at least {up(placement.minimum_s)} ({up(placement.comfortable_s)} with natural pauses) "
        f"at {WORDS_PER_SECOND:g} words per second"
    )


class W415LinesDoNotFit(Rule):
    """A scene's narration and dialogue must fit in its duration: spoken one after another with
    short pauses, estimated at 2.5 words per second (about 150 words a minute). Lines that do not
    fit run over the cut into the next scene. The warning points at the first line that does not
    fit and says how many seconds the lines need.

    Bad::

        - scene_id: 2
          duration_seconds: 3
          dialogue:
            - speaker: Ember
              line: "Sage, what is that strange golden glow between the old roots over there?"

    Good::

        - scene_id: 2
          duration_seconds: 6
          dialogue:
            - speaker: Ember
              line: "Sage, what is that strange golden glow between the old roots over there?"
    """

    code = "W415"
    summary = "a scene's lines cannot fit its duration"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for i, scene in enumerate(ctx.story.scenes):
            if not scene.dialogue:
                continue
            if scene.narration and not place_lines([estimate_seconds(scene.narration)], scene.duration_seconds).fits:
                continue  # W416 says it: the narration alone is too long
            script = scene_script(scene)
            placement = place_lines([estimate_seconds(line.text) for line in script], scene.duration_seconds)
            if placement.fits:
                continue
            late = placement.first_late()
            blamed = script[late] if late is not None and script[late].kind == "dialogue" else script[-1]
            need = suggested_duration(placement, MAX_DURATION_S)
            fix = f"set duration_seconds: {need}" if need is not None else "split the scene"
            yield self.report(
                ctx,
                ("scenes", i, *blamed.loc),
                f"scene {scene.scene_id}'s lines need {_needs(placement)}, but the scene lasts "
                f"{scene.duration_seconds} s; {fix}, or shorten the lines",
            )


class W416NarrationLongerThanScene(Rule):
    """A scene's narration, estimated at 2.5 words per second, must fit in the scene; a longer
    one runs on over the next scene.

    Bad::

        - scene_id: 1
          duration_seconds: 3
          narration: "Deep in the autumn forest, where the light falls gold, the old oak kept a secret."

    Good::

        - scene_id: 1
          duration_seconds: 8
          narration: "Deep in the autumn forest, where the light falls gold, the old oak kept a secret."
    """

    code = "W416"
    summary = "narration longer than its scene"
    severity = Severity.WARNING

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        for i, scene in enumerate(ctx.story.scenes):
            if not scene.narration:
                continue
            placement = place_lines([estimate_seconds(scene.narration)], scene.duration_seconds)
            if placement.fits:
                continue
            need = suggested_duration(placement, MAX_DURATION_S)
            fix = f"set duration_seconds: {need}" if need is not None else "split the scene"
            yield self.report(
                ctx,
                ("scenes", i, "narration"),
                f"scene {scene.scene_id}'s narration needs {_needs(placement)}, but the scene lasts "
                f"{scene.duration_seconds} s; {fix}, or shorten it",
            )


class E310MissingMusicFile(Rule):
    """audio.music must name an existing file, relative to the story file.

    Bad::

        audio:
          music: music/theme.mp3     # no such file

    Good::

        audio:
          music: music/theme.mp3     # beside the story: music/theme.mp3
    """

    code = "E310"
    summary = "music file missing or not a file"

    def check(self, ctx: LintContext) -> Iterator[Diagnostic]:
        text = ctx.story.audio.music
        if text is None:
            return
        loc = ("audio", "music")
        if not text.strip():
            yield self.report(ctx, loc, "music is empty; remove the field or name a music file")
            return
        try:
            path = ctx.loaded.base_dir / Path(text).expanduser()
            exists, is_file = path.exists(), path.is_file()
        except (OSError, ValueError):  # a NUL byte, a name too long for the OS
            exists = is_file = False
        if not exists:
            yield self.report(ctx, loc, f"music '{text}' does not exist (paths are relative to the story file)")
        elif not is_file:
            yield self.report(ctx, loc, f"music '{text}' is not a file")
