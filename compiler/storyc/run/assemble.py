"""The assemble step: the final video from every scene's kept clip, in one ffmpeg pass.

A story with sound gets the sound pass (storyc.media.audio_mix): the clips' own sound (or
none, audio.native: false), every rendered line at its place on the video's timeline, the
music looped and ducked under speech, loudness-normalized, and the subtitles
(final_video.srt and .vtt beside the video, a soft track or burned into the picture).
Burned subtitles change the picture, so that is one pass over everything. Otherwise the
picture is joined once and kept in the cache under a key of the clips alone (a memo entry
of this step, like a paid call's), and the sound is mixed onto it with the picture copied:
editing a line re-runs the sound, not the video encode.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path

from storyc.backends.offline import bands
from storyc.hashing import KEY_VERSION, digest
from storyc.media.assemble import Clip, assemble, assemble_picture
from storyc.media.audio_mix import PlacedSpeech, SoundPlan, assemble_with_sound, clip_starts, mix_onto_picture
from storyc.media.ffmpeg import dimensions, encoder_args
from storyc.media.subtitles import SceneSpeech, SpokenLine, cues_for, time_scenes, write_burn_style, write_subtitles
from storyc.model.story import DRAFT_RESOLUTION
from storyc.run.calls import StepRun
from storyc.run.context import BuildContext
from storyc.run.outcome import StepResult


def run_assemble(ctx: BuildContext, run: StepRun) -> StepResult:
    story = ctx.story
    ctx.upstream(run.step)  # every clip and speech step finished (MissingUpstream otherwise)
    clips = [
        Clip(
            path=ctx.output(f"video:{s.scene_id}", "video"),
            duration_s=float(s.duration_seconds),
            transition_in=s.transition,  # a scene's transition is how it is entered
        )
        for s in story.scenes
    ]
    draft = bool(run.step.static.get("draft"))  # storyc build --draft: 480p, fast encoding
    width, height = dimensions(story.aspect_ratio, DRAFT_RESOLUTION if draft else story.resolution)
    dest = ctx.path("final_video.mp4")
    fps = run.step.static.get("fps", 24)
    if "sound" not in run.step.static:
        assemble(clips, dest, width, height, fps=fps, draft=draft)
        return StepResult({"final_video": run.keep(dest)}, score=None, attempts=1)
    outputs = _assemble_with_sound(ctx, run, clips, width, height, fps, draft)
    return StepResult(outputs, score=None, attempts=1)


def _assemble_with_sound(
    ctx: BuildContext, run: StepRun, clips: Sequence[Clip], width: int, height: int, fps: int, draft: bool
) -> dict[str, str]:
    story, audio = ctx.story, ctx.story.audio
    starts, total = clip_starts(clips)
    scenes = []
    for scene, start in zip(story.scenes, starts, strict=True):
        sid = f"speech:{scene.scene_id}"
        if sid not in ctx.outcomes:
            continue
        lines = [
            SpokenLine(
                line.kind,
                line.text,
                line.duration_s,
                line.speaker,
                ctx.path(line.audio) if line.audio else None,
            )
            for line in ctx.outcomes[sid].record.lines
        ]
        scenes.append(SceneSpeech(scene.scene_id, start, float(scene.duration_seconds), lines))
    timeline = time_scenes(scenes)
    dest = ctx.path("final_video.mp4")
    cues = cues_for(timeline.lines, total)
    outputs: dict[str, str] = {}
    subtitle_file = None
    if audio.subtitles != "none":
        srt, vtt = write_subtitles(cues, dest)
        outputs["subtitles_srt"], outputs["subtitles_vtt"] = run.keep(srt), run.keep(vtt)
        subtitle_file = srt
        if audio.subtitles == "burned":
            # above the offline animatic's bottom band (its name tags and action line)
            band = height - bands.Layout(width, height).band_top if ctx.graph.backend == "offline" else 0
            subtitle_file = write_burn_style(
                cues, ctx.path("subtitles/final_video.ass"), width, height, clear_bottom_px=band
            )
            outputs["subtitles_ass"] = run.keep(subtitle_file)
    plan = SoundPlan(
        speech=tuple(PlacedSpeech(t.line.audio, t.start_s) for t in timeline.lines if t.line.audio is not None),
        native=audio.native,
        music=ctx.base_dir / audio.music if audio.music else None,
        music_volume_db=audio.music_volume_db,
        loudness_lufs=audio.loudness_lufs,
        subtitles=audio.subtitles,
        subtitle_file=subtitle_file,
    )
    if plan.subtitles == "burned":
        assemble_with_sound(clips, dest, width, height, plan, fps, draft=draft)
    else:
        with tempfile.TemporaryDirectory(prefix="storyc-picture-") as folder:
            picture = _picture(ctx, run, clips, width, height, fps, draft, Path(folder) / "picture.mp4")
            mix_onto_picture(picture, clips, dest, plan)
    outputs["final_video"] = run.keep(dest)
    return outputs


def _picture(
    ctx: BuildContext, run: StepRun, clips: Sequence[Clip], width: int, height: int, fps: int, draft: bool, dest: Path
) -> Path:
    """The clips' pictures joined (no sound) at `dest`: from the cache when these very clips
    were joined before, under a key of their contents, lengths, transitions and the frame."""
    key = digest(
        {
            "storyc_key": KEY_VERSION,
            "kind": "picture",
            "clips": [[ctx.outcomes[f"video:{s.scene_id}"].record.sha256["video"], c.duration_s, c.transition_in]
                      for s, c in zip(ctx.story.scenes, clips, strict=True)],
            "frame": [width, height, fps],
            "encoder": encoder_args(fps, draft=draft),
        }
    )  # fmt: skip
    entry = None if run.step.id in ctx.force else ctx.cache.get_call(key)
    sha = (entry or {}).get("files", {}).get("picture")
    if sha is not None and ctx.cache.has_blob(sha):
        ctx.cache.materialize(sha, dest)
    else:
        assemble_picture(clips, dest, width, height, fps, draft=draft)
        sha = ctx.cache.put_file(dest)
    # recorded under this step's key, so `storyc cache prune` keeps it while this assembly is current
    if entry is None or entry.get("step_key") != run.key:
        ctx.cache.put_call(key, {"step_key": run.key, "kind": "picture", "files": {"picture": sha}, "cost_usd": 0.0})
    return dest
