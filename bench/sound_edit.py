"""Editing one dialogue line: rebuild time against a full build, through the real CLI.

1. A 6-scene story with sound (narration in every scene, two or three dialogue lines, music,
   soft subtitles; offline backend) built from an empty cache: every sheet, keyframe, clip,
   each scene's speech, and the mix.
2. One dialogue line of scene 3 reworded, rebuilt: the minimal set is that scene's speech
   step, the assembly (the mix, the subtitles) and the storyboard. Offline speech pays for
   nothing, so the rebuild runs those steps in the process, without starting Prefect.

Figures: full build and rebuild wall time (new processes, as a user runs them), their ratio,
the steps rebuilt against the minimal set, and whether Prefect started for the rebuild.

Last line: one JSON object. Run: .venv/bin/python bench/sound_edit.py [--scale 0.25]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from incremental import storyc  # a timed `storyc` process

EDITED_SCENE = 3
SCENES = 6

CHARACTERS = """\
characters:
  - name: Ember
    role: protagonist
    voice: ara
    personality_cues: [curious, brave]
    visual_description: a small red fox with amber eyes, a white chest and a white-tipped tail, wearing a green scarf
  - name: Sage
    role: mentor
    voice: leo
    personality_cues: [calm, wise]
    visual_description: an old grey owl with round brass spectacles and a long brown cloak with a silver clasp
"""

LINES = [
    ("Ember", "Sage, what is that glow between the roots?"),
    ("Sage", "Something that belongs where it is."),
    ("Ember", "Can we follow it, just a little way?"),
]


def make_story(folder: Path) -> Path:
    scenes = []
    for n in range(1, SCENES + 1):
        dialogue = "\n".join(
            f'      - {{speaker: {who}, line: "{text} (scene {n})"}}' for who, text in LINES[: 2 + n % 2]
        )
        scenes.append(
            f"""  - scene_id: {n}
    title: The glow, part {n}
    description: Ember and Sage follow the glow deeper into the forest.
    characters_present: [Ember, Sage]
    setting: autumn forest at dusk, golden leaves, mossy roots
    camera: {"wide shot, slow pan" if n % 2 else "medium shot, push in"}
    mood: warm golden light
    action: Ember points at the glow and Sage turns his head
    duration_seconds: 12
    transition: {"crossfade" if n % 3 == 0 else "cut"}
    narration: "In part {n}, the glow led them on between the old trees."
    dialogue:
{dialogue}
"""
        )
    story = f"""title: Following the glow
style: soft watercolour illustration with ink outlines, warm light and visible paper texture
color_palette: amber, moss green, cream
models: {{video: grok-imagine-video-1.5}}
{CHARACTERS}scenes:
{"".join(scenes)}audio:
  music: theme.wav
  music_volume_db: -20
  subtitles: soft
  loudness_lufs: -16
"""
    path = folder / "story.yaml"
    path.write_text(story, encoding="utf-8")
    return path


def make_music(dest: Path) -> None:
    from storyc.media.ffmpeg import run_ffmpeg

    tune = "0.2*sin(2*PI*220*t)+0.15*sin(2*PI*330*t)+0.1*sin(2*PI*(440+220*floor(t))*t)"
    run_ffmpeg(["-f", "lavfi", "-i", f"aevalsrc={tune}:s=44100:d=4", "-c:a", "pcm_s16le", str(dest)])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scale", default=os.environ.get("STORYC_RENDER_SCALE", "0.25"))
    args = ap.parse_args()
    env = {**os.environ, "STORYC_RENDER_SCALE": str(args.scale)}
    env.pop("XAI_API_KEY", None)
    env.pop("STORYC_OFFLINE_LATENCY", None)

    work = Path(tempfile.mkdtemp(prefix="storyc-bench-sound-edit-"))
    story = make_story(work)
    make_music(work / "theme.wav")
    out, cache = work / "out", work / "cache"
    common = ["--backend", "offline", "--out", str(out), "--cache", str(cache)]

    full_s, proc = storyc("build", str(story), *common, env=env)
    if proc.returncode != 0:
        print(json.dumps({"error": "full build failed", "stderr": proc.stderr[-2000:]}))
        sys.exit(1)
    full = json.loads((out / "report.json").read_text())

    text = story.read_text()
    old = f'"{LINES[1][1]} (scene {EDITED_SCENE})"'
    assert old in text, old
    story.write_text(text.replace(old, f'"Something old, and kind, that waits for us. (scene {EDITED_SCENE})"'))
    edit_s, proc = storyc("build", str(story), *common, env=env)
    if proc.returncode != 0:
        print(json.dumps({"error": "edit build failed", "stderr": proc.stderr[-2000:]}))
        sys.exit(1)
    edit = json.loads((out / "report.json").read_text())

    minimal = {f"speech:{EDITED_SCENE}", "assemble", "script"}
    rebuilt = {s["id"] for s in edit["steps"] if not s["cached"] and s["status"] == "done"}
    step_s = {s["id"]: s["wall_s"] for s in edit["steps"] if s["id"] in rebuilt}
    result = {
        "bench": "sound_edit",
        "render_scale": float(args.scale),
        "scenes": SCENES,
        "lines": full["speech"]["lines"],
        "speech_s": full["speech"]["seconds"],
        "full_build_s": round(full_s, 3),
        "full_build_steps": len(full["steps"]),
        "edit_rebuild_s": round(edit_s, 3),
        "ratio": round(edit_s / full_s, 3),
        "edit_steps_rebuilt": sorted(rebuilt),
        "edit_step_wall_s": step_s,
        "minimal_steps": sorted(minimal),
        "edit_rebuilt_exactly_minimal_set": rebuilt == minimal,
        "edit_api_calls": edit["api_calls_total"],
        "edit_prefect_started": "prefect" in edit,
    }
    shutil.rmtree(work, ignore_errors=True)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
