"""The speech step: a scene's lines rendered, timed and placed.

Each line is voiced by whoever the graph decided (storyc.model.speech.voiced_script):
`local` lines are spoken here by the offline backend's espeak-ng (no call, nothing paid),
`tts` lines are one paid text-to-speech call each (replayed from the memo on a resume),
and `clip` lines, which the video model speaks itself, get a length estimated from their
words. The lines are then placed in the scene (storyc.model.speech.place_lines), and the
step keeps: every rendered line, the scene's speech as one track (the storyboard plays
it), and a timing file whose hash tells the assembly when any of it changed.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from storyc.backends.base import CallResult, SpeechRequest
from storyc.backends.offline import speech as offline_speech
from storyc.media.audio_mix import PlacedSpeech, write_speech_track
from storyc.media.probe import audio_duration
from storyc.model.prices import tts_cost
from storyc.model.speech import ScriptLine, estimate_seconds, place_lines
from storyc.model.state import SpokenLineRecord
from storyc.run.calls import StepRun
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult
from storyc.store.fsutil import atomic_write_bytes


def run_speech(ctx: BuildContext, run: StepRun) -> StepResult:
    step = run.step
    scene_id = step.scene_id
    lines: list[dict[str, Any]] = step.static["lines"]
    cast = offline_speech.story_cast(ctx.story) if any(line["source"] == "local" for line in lines) else None
    rendered: list[tuple[float, Path | None]] = []
    for n, line in enumerate(lines, start=1):
        dest = ctx.path(f"speech/scene_{scene_id}_line_{n}.wav")
        if line["source"] == "local":
            assert cast is not None
            script_line = ScriptLine(line["kind"], line["text"], line["speaker"])
            spoken = offline_speech.render_speech(line["text"], cast.voice_of(script_line), dest)
            rendered.append((round(spoken.duration_s, 6), dest))
        elif line["source"] == "tts":
            _text_to_speech(ctx, run, line, dest, n)
            rendered.append((audio_duration(dest), dest))
        else:  # the clip speaks it: an estimate until the clip's own sound can be measured
            rendered.append((round(estimate_seconds(line["text"]), 6), None))
    placement = place_lines([duration for duration, _ in rendered], float(step.static["duration_s"]))
    records: list[SpokenLineRecord] = []
    outputs: dict[str, str] = {}
    for n, (line, (duration, audio), slot) in enumerate(zip(lines, rendered, placement.slots, strict=True), start=1):
        if audio is not None:
            outputs[f"line_{n}"] = run.keep(audio)
        records.append(
            SpokenLineRecord(
                kind=line["kind"],
                speaker=line["speaker"],
                text=line["text"],
                voice=line["voice"],
                local_voice=line.get("local_voice"),
                source=line["source"],
                duration_s=duration,
                estimated=audio is None,
                start_s=slot.start_s,
                end_s=slot.end_s,
                audio=outputs.get(f"line_{n}"),
            )
        )
    placed = [
        PlacedSpeech(audio, slot.start_s) for (_, audio), slot in zip(rendered, placement.slots, strict=True) if audio
    ]
    if placed:
        track = write_speech_track(placed, float(step.static["duration_s"]), ctx.path(f"speech/scene_{scene_id}.wav"))
        outputs["scene_audio"] = run.keep(track)
    timing = ctx.path(f"speech/scene_{scene_id}.json")
    document = {"scene_id": scene_id, "lines": [r.model_dump(mode="json") for r in records]}
    atomic_write_bytes(timing, (json.dumps(document, indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    outputs["timing"] = run.keep(timing)
    return StepResult(outputs, score=None, attempts=1, lines=tuple(records))


def _text_to_speech(ctx: BuildContext, run: StepRun, line: dict[str, Any], dest: Path, n: int) -> CallResult:
    """One paid text-to-speech call writing `dest`, or its replay from the memo."""
    backend = ctx.require_backend()
    hints = {"step_id": run.step.id, "step": "speech", "scene_id": run.step.scene_id, "line": n}

    def speak(text: str) -> CallResult:
        return backend.text_to_speech(SpeechRequest(text=text, voice=line["voice"], dest=dest, hints=hints))

    return run.call(
        "tts",
        f"speech line {n}",
        speak,
        prompt=line["text"],
        dest=dest,
        estimate=tts_cost(line["text"]),
        params={"voice": line["voice"], "kind": line["kind"]},
    )
