"""The review loop offline, end to end (issue 14): stop after the keyframes, approve takes,
build on, CI on a fresh cache, staleness in lint; redo with a note; draft then final.

Real builds on the session's Prefect harness with tiny real media; the counting fake
backend says exactly which step made which paid call."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _fake_backend import FakeBackend
from _html import parse_page
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.cli.app import app
from storyc.graph.select import SelectionError
from storyc.hashing import file_sha256
from storyc.lint import lint_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORY = """\
# Review loop: scene 2 matches scene 1's keyframe, scene 3 starts its own branch,
# so every keyframe can be reviewed before any clip is paid for.
title: Harbour review
style: flat vector illustration with bold outlines and soft pastel shading
color_palette: teal, coral, cream
characters:
  - {name: Ava, role: protagonist, visual_description: a tall woman with short red hair and a yellow raincoat, personality_cues: [bold]}
  - {name: Bo, role: supporting, visual_description: a small boy with curly black hair and a blue striped shirt, personality_cues: [shy]}
scenes:
  - scene_id: 1
    title: Ava at the pier
    description: Ava walks along the pier.
    characters_present: [Ava]
    setting: wooden pier at dawn
    camera: "wide shot, slow pan"
    mood: calm
    action: Ava walks toward the sea
    duration_seconds: 3
  - scene_id: 2
    title: Bo joins Ava
    description: Bo runs up to Ava.
    characters_present: [Ava, Bo]
    setting: wooden pier at dawn
    camera: medium shot
    mood: warm
    action: Bo runs to Ava and waves
    duration_seconds: 3
    chain_source: keyframe   # matches scene 1's keyframe, not its clip
  - scene_id: 3
    title: Bo alone
    description: Bo watches the boats.
    characters_present: [Bo]
    setting: end of the wooden pier
    camera: "wide shot, push in"
    mood: golden
    action: Bo sits and watches the boats
    duration_seconds: 3
    chain_from: none
"""

# scene 2's keyframe loop never passes: three takes, the third kept
SCORES = {("keyframe:2", "keyframe"): [0.5, 0.6, 0.7]}


@pytest.fixture(autouse=True)
def _offline(monkeypatch):
    monkeypatch.setenv("STORYC_RENDER_SCALE", "0.1")
    monkeypatch.delenv("XAI_API_KEY", raising=False)


def build(story: Path, out: str = "out", cache: str = "cache", **kw):
    backend = FakeBackend(SCORES)
    opts = BuildOptions(
        story=story,
        out_dir=story.parent / out,
        cache_dir=story.parent / cache,
        backend="offline",
        backend_factory=lambda name: backend,
        rates={"image": 1000.0, "video": 1000.0},
        **kw,
    )
    return run_build(opts), backend


def calls_by_step(backend: FakeBackend) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for kind, step in backend.log:
        out.setdefault(step, {}).setdefault(kind, 0)
        out[step][kind] += 1
    return out


def approve(story: Path, *args: str, out: str = "out") -> str:
    result = CliRunner().invoke(
        app, ["approve", str(story), *args, "--out", str(story.parent / out), "--cache", str(story.parent / "cache")]
    )
    assert result.exit_code == 0, result.stderr
    return result.stdout


def report(story: Path, out: str = "out") -> dict:
    return json.loads((story.parent / out / "report.json").read_text())


def state(story: Path, out: str = "out") -> dict:
    return json.loads((story.parent / out / "state.json").read_text())


@pytest.fixture
def story(tmp_path) -> Path:
    path = tmp_path / "story.yaml"
    path.write_text(STORY)
    return path


def test_the_whole_review_loop_offline(story, prefect_harness):
    # 1. stop after the keyframes: sheets and keyframes, not one clip
    result, backend = build(story, until="keyframes")
    assert result.status == "stopped", result.message
    assert set(result.until["built"]) == {"character:Ava", "character:Bo", "keyframe:1", "keyframe:2", "keyframe:3"}
    assert backend.calls["video"] == 0 and result.until["waiting"] == {}
    rest = result.until["rest"]
    assert rest["steps"] == ["video:1", "video:2", "video:3", "assemble", "script"]
    assert rest["calls_min"]["video"] == 3 and rest["cost_min_usd"] > 0  # the --dry-run figures of the rest
    # the storyboard numbers the takes as --take does, each with its exact approve command
    page = (story.parent / "out" / "storyboard.html").read_text()
    assert "Stopped after the keyframes" in page
    out_dir = story.parent / "out"
    assert f"storyc approve {story} scene:2 --take 2 --out {out_dir}" in page
    assert "take 3 · compose" in page or "take 3 · fix edit" in page
    md = (story.parent / "out" / "script.md").read_text()
    assert f"- take 2: `storyc approve {story} scene:2 --take 2 --out {out_dir}`" in md
    # the command line says so too, with the commands that approve and go on (all cached: no call)
    cache = story.parent / "cache"
    folders = ["--out", str(out_dir), "--cache", str(cache)]
    cli = CliRunner().invoke(app, ["build", str(story), "--backend", "offline", "--until", "keyframes", *folders])
    assert cli.exit_code == 0, cli.stderr
    lines = cli.stdout.splitlines()
    assert any(
        line.startswith("stopped after the keyframes (--until keyframes): 5 step(s) ready to review  (0 API call(s)")
        for line in lines
    )
    assert any(line.startswith("the rest: 5 step(s), ") for line in lines)
    assert f"approve: storyc approve {story} scene:3 [--take N] --out {out_dir} --cache {cache}" in lines
    assert lines[-1] == f"continue: storyc build {story} --backend offline --out {out_dir} --cache {cache}"
    quiet = CliRunner().invoke(
        app, ["-q", "build", str(story), "--backend", "offline", "--until", "keyframes", *folders]
    )
    assert quiet.exit_code == 0 and len(quiet.stdout.splitlines()) == 1 and quiet.stdout.startswith("stopped after")

    # 2. approve two scenes, one with --take 2 (not the kept take 3)
    kept_1 = state(story)["steps"]["keyframe:1"]["sha256"]["keyframe"]
    take_2 = file_sha256(story.parent / "out" / "keyframes" / "scene_2_v2.jpg")
    approve(story, "scene:1")
    assert "take 2 of 3" in approve(story, "scene:2", "--take", "2")
    # 3. edit the third scene's action
    story.write_text(story.read_text().replace("Bo sits and watches the boats", "Bo waves at the boats"))

    # 4. build: the approved keyframes are used as is (no call at all), the edited scene's
    #    keyframe and the clips render; scene 2's clip starts from the approved take 2
    result, backend = build(story)
    assert result.status == "built", result.message
    by_step = calls_by_step(backend)
    assert "keyframe:1" not in by_step and "keyframe:2" not in by_step
    assert by_step["keyframe:3"]["image"] >= 1
    assert {s for s in by_step if s.startswith("video:")} == {"video:1", "video:2", "video:3"}
    assert {r[0] for r in backend.image_requests} == {"keyframe:3"}  # the sheets were cached
    steps = state(story)["steps"]
    assert steps["keyframe:1"]["sha256"]["keyframe"] == kept_1
    assert steps["keyframe:2"]["sha256"]["keyframe"] == take_2
    saved = report(story)["approvals"]
    assert saved["pinned"] == 2 and saved["saved"]["calls_min"]["image"] == 2 and saved["saved"]["cost_min_usd"] > 0
    assert [t["target"] for t in saved["targets"]] == ["scene:1", "scene:2"]
    assert saved["targets"][1]["take"] == 2 and saved["generated"]["calls"] > 0

    # 5. CI: a fresh cache and output folder; no call for any approved target
    result, backend = build(story, out="ci-out", cache="ci-cache")
    assert result.status == "built", result.message
    by_step = calls_by_step(backend)
    assert "keyframe:1" not in by_step and "keyframe:2" not in by_step
    assert set(by_step) == {"character:Ava", "character:Bo", "keyframe:3", "video:1", "video:2", "video:3"}
    assert state(story, "ci-out")["steps"]["keyframe:2"]["sha256"]["keyframe"] == take_2
    assert report(story, "ci-out")["approvals"]["pinned"] == 2

    # 6. a character description changes: lint warns at both stale pins' lines
    story.write_text(story.read_text().replace("a tall woman with short red hair", "a tall woman with long grey hair"))
    stale = sorted(d for d in lint_path(story) if d.code == "W417")
    lines = [i for i, row in enumerate(story.read_text().splitlines(), 1) if "keyframe_image: approved/" in row]
    assert [d.line for d in stale] == lines and len(lines) == 2
    assert all("with Ava's previous visual_description" in d.message for d in stale)


def test_redo_with_a_note_regenerates_only_that_target_and_its_dependents(story, prefect_harness):
    result, _ = build(story)
    assert result.status == "built", result.message
    note = "the boats must have red sails"
    result, backend = build(story, redo="scene:3", note=note)
    assert result.status == "built", result.message
    assert set(calls_by_step(backend)) == {"keyframe:3", "video:3"}  # the target and its clip only
    sent = state(story)["steps"]["keyframe:3"]["prompts"]["compose"]
    assert sent.endswith("Revision note (follow it exactly): the boats must have red sails.")
    assert json.loads((story.parent / "approved" / "approvals.json").read_text())["notes"] == {"scene:3": note}
    assert report(story)["redo"] == {"target": "scene:3", "note": note}
    listed = CliRunner().invoke(app, ["prompts", str(story), "--scene", "3"])
    assert listed.exit_code == 0 and sent in listed.stdout  # storyc prompts shows what the build sends
    page = (story.parent / "out" / "storyboard.html").read_text()
    assert f"Redo note (appended to its prompt): {note}" in page
    # the note is kept: the next plain build is up to date
    result, backend = build(story)
    assert result.status == "up_to_date" and not backend.log
    # --redo without a note generates again even though cached (and keeps the note)
    result, backend = build(story, redo="scene:3")
    assert "keyframe:3" in calls_by_step(backend)
    assert state(story)["steps"]["keyframe:3"]["prompts"]["compose"] == sent
    # approving the redone take moves the note into its approval
    approve(story, "scene:3")
    recorded = json.loads((story.parent / "approved" / "approvals.json").read_text())
    assert recorded["notes"] == {} and recorded["pins"]["scene:3"]["note"] == note
    with pytest.raises(SelectionError, match="it is approved"):
        build(story, redo="scene:3", note="again")
    with pytest.raises(SelectionError, match="no scene '7'"):
        build(story, redo="scene:7")


def test_draft_approvals_carry_over_to_the_final_build(story, prefect_harness):
    # the draft (storyc build --draft), keyframes only
    result, _ = build(story, out="draft", until="keyframes", draft=True)
    assert result.status == "stopped"
    assert report(story, "draft")["draft"] is True
    for target in ("character:Ava", "scene:1", "scene:2"):
        approve(story, target, out="draft")
    recorded = json.loads((story.parent / "approved" / "approvals.json").read_text())["pins"]
    assert recorded["scene:1"]["source"]["draft"] is True  # approved on a draft
    # the final, same cache: every approved target is used as is, and the draft's other
    # pictures are the final's (a draft renders pictures as the final does), so only clips are made
    result, backend = build(story, out="final")
    assert result.status == "built", result.message
    by_step = calls_by_step(backend)
    assert {"video:1", "video:2", "video:3"} == set(by_step)
    steps = {s["id"]: s for s in report(story, "final")["steps"]}
    assert steps["character:Bo"]["cached"] and steps["keyframe:3"]["cached"]
    rep = report(story, "final")
    saved = rep["approvals"]
    assert saved["pinned"] == 3
    assert saved["saved"]["calls_min"] == {"image": 3, "vision": 3, "video": 0, "chat": 0, "tts": 0}
    assert saved["saved"]["cost_min_usd"] > 0 and saved["saved"]["cost_max_usd"] >= saved["saved"]["cost_min_usd"]
    # the final video is full size: 0.1 (the suite's render scale) of 1280x720
    from storyc.media.probe import probe

    info = probe(story.parent / "final" / "final_video.mp4")
    assert (info.width, info.height) == (128, 72)
    # the storyboard marks the approved targets current, with the command that undoes each
    text = "".join(parse_page((story.parent / "final" / "storyboard.html").read_text()).text)
    assert "✓ Approved: take 1 → approved/keyframe_scene_1.jpg (current)" in text
    assert re.search(r"To generate it again: storyc unapprove \S+ scene:2", text)
