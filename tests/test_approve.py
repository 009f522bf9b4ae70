"""`storyc approve` and `storyc unapprove` against a real build (the session's Prefect
harness, tiny real JPEGs and MP4s from the counting fake backend): the take copied into
approved/, the story edited on one line, the approval recorded, staleness reported by
`--list` and lint, files removed only when no other pin uses them."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

sys.path.insert(0, str(Path(__file__).parent))
from _fake_backend import FakeBackend
from storyc.build.options import BuildOptions
from storyc.build.pipeline import run_build
from storyc.cli.app import app
from storyc.hashing import file_sha256
from storyc.lint import lint_path

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STORY = """\
# A story with comments: approve and unapprove keep them.
title: Harbour approvals
style: flat vector illustration with bold outlines and soft pastel shading
color_palette: teal, coral, cream
characters:
  - name: Ava   # the lead
    role: protagonist
    visual_description: >-
      a tall woman with short red hair
      and a yellow raincoat
    personality_cues: [bold]
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

  - {scene_id: 2, title: Bo joins Ava, description: Bo runs up to Ava., characters_present: [Ava, Bo],
     setting: wooden pier at dawn, camera: medium shot, mood: warm, action: Bo runs to Ava and waves, duration_seconds: 3}
  - {scene_id: 3, title: Both look out, description: They watch the boats., characters_present: [Bo],
     setting: end of the wooden pier, camera: "wide shot, push in", mood: golden, action: Bo watches boats,
     duration_seconds: 3, chain_from: none}
"""

# Ava's sheet and scene 2's keyframe pass on their 2nd take: two takes each to choose from.
SCORES = {("character:Ava", "sheet"): [0.6, 0.9], ("keyframe:2", "keyframe"): [0.5, 0.9]}


@pytest.fixture(autouse=True)
def _tiny_renders(monkeypatch):
    monkeypatch.setenv("STORYC_RENDER_SCALE", "0.1")
    monkeypatch.delenv("XAI_API_KEY", raising=False)


def build(story: Path, backend: FakeBackend | None = None, **kw):
    backend = backend or FakeBackend(SCORES)
    opts = BuildOptions(
        story=story,
        out_dir=story.parent / "out",
        cache_dir=story.parent / "cache",
        backend="offline",
        backend_factory=lambda name: backend,
        rates={"image": 1000.0, "video": 1000.0},
        **kw,
    )
    return run_build(opts), backend


@pytest.fixture(scope="module")
def built(tmp_path_factory, prefect_harness):
    """One build every test copies (story, output and cache), never mutates."""
    mp = pytest.MonkeyPatch()
    mp.setenv("STORYC_RENDER_SCALE", "0.1")
    root = tmp_path_factory.mktemp("approve-built")
    (root / "story.yaml").write_text(STORY)
    result, _ = build(root / "story.yaml")
    assert result.status == "built", result.message
    yield root
    mp.undo()


@pytest.fixture
def project(built, tmp_path) -> Path:
    shutil.copytree(built, tmp_path / "p")
    return tmp_path / "p" / "story.yaml"


def storyc(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(app, [str(a) for a in args])
    return result.exit_code, result.stdout, result.stderr


def approve(story: Path, *args: str) -> tuple[int, str, str]:
    return storyc("approve", story, *args, "--out", story.parent / "out", "--cache", story.parent / "cache")


def state(story: Path) -> dict:
    return json.loads((story.parent / "out" / "state.json").read_text())


def sidecar(story: Path) -> dict:
    return json.loads((story.parent / "approved" / "approvals.json").read_text())


def test_approve_copies_the_chosen_take_and_pins_it_on_one_line(project):
    before = project.read_text()
    code, out, err = approve(project, "scene:2", "--take", "1")
    assert code == 0, err
    assert "approved scene:2 take 1 of 2 (keyframes/scene_2_v1.jpg" in out
    copy = project.parent / "approved" / "keyframe_scene_2.jpg"
    assert file_sha256(copy) == file_sha256(project.parent / "out" / "keyframes" / "scene_2_v1.jpg")
    after = project.read_text()
    # the flow mapping of scene 2 gets the pin before its closing brace; nothing else changes
    assert after == before.replace(
        "duration_seconds: 3}\n  - {scene_id: 3",
        ("duration_seconds: 3, keyframe_image: approved/keyframe_scene_2.jpg}\n  - {scene_id: 3"),
    )
    record = sidecar(project)["pins"]["scene:2"]
    steps = state(project)["steps"]
    assert record["take"] == 1 and record["file"] == "approved/keyframe_scene_2.jpg"
    assert record["sha256"] == file_sha256(copy)
    # what it was approved against: the sheets it was made from (this build's) and its scene's text
    assert record["inputs"]["character:Ava"] == steps["character:Ava"]["sha256"]["sheet"]
    assert record["inputs"]["character:Bo"] == steps["character:Bo"]["sha256"]["sheet"]
    assert record["inputs"]["clip:1"] == steps["video:1"]["sha256"]["video"]  # its chain source
    assert {"prompt", "description:Ava", "description:Bo"} <= set(record["inputs"])
    assert record["generated"] == {"calls": 4, "cost_usd": pytest.approx(0.042)}  # 2 images, 2 checks
    # approving the same take again changes nothing
    code, out, _ = approve(project, "scene:2", "--take", "1")
    assert code == 0 and out.startswith("already approved: scene:2 take 1")
    assert project.read_text() == after
    # the kept take (the default) replaces the file under the same name: the pin line stays
    code, out, _ = approve(project, "scene:2")
    assert code == 0 and "take 2 of 2" in out and "already pins approved/keyframe_scene_2.jpg" in out
    assert project.read_text() == after
    assert file_sha256(copy) == file_sha256(project.parent / "out" / "keyframes" / "scene_2_v2.jpg")


def test_a_block_mapping_gets_its_pin_after_its_last_line(project):
    code, _, err = approve(project, "character:Ava", "--take", "2")
    assert code == 0, err
    assert "    personality_cues: [bold]\n    sheet_image: approved/sheet_Ava.jpg\n  - {name: Bo" in project.read_text()
    code, _, err = approve(project, "clip:1")
    assert code == 0, err
    assert (
        "    duration_seconds: 3\n    clip_video: approved/clip_scene_1.mp4\n\n  - {scene_id: 2" in project.read_text()
    )
    assert "note: scene:1's keyframe is not approved" in err  # a fresh cache would still make it


def test_refusals_are_one_clear_line(project, tmp_path):
    code, _, err = approve(project, "scene:2", "--take", "3")
    assert code == 1 and "scene:2 has 2 take(s)" in err and "--take 1 to 2" in err
    code, _, err = approve(project, "scene:9")
    assert code == 2 and "the story has no scene '9'" in err
    code, _, err = approve(project, "frame:1")
    assert code == 2 and "expected character:NAME, location:NAME, scene:ID, clip:ID" in err
    code, _, err = storyc("approve", project, "scene:1", "--out", tmp_path / "nothing")
    assert code == 1 and "no build in" in err and "--until keyframes" in err
    code, _, err = storyc("unapprove", project, "scene:1")
    assert code == 1 and "scene:1 is not pinned" in err
    # a story edited since the build: its takes were made from another prompt
    project.write_text(project.read_text().replace("Bo runs to Ava and waves", "Bo hops to Ava"))
    code, _, err = approve(project, "scene:2")
    assert code == 1 and "earlier version of the story" in err
    assert not (project.parent / "approved").exists()


def test_unapprove_gives_the_file_back_and_keeps_shared_or_own_files(project):
    original = project.read_text()
    assert approve(project, "scene:1")[0] == 0
    assert approve(project, "scene:2")[0] == 0
    # scene 3 pinned by hand to scene 1's approved file, and a user's own image
    text = project.read_text().replace(
        "chain_from: none}", "chain_from: none, keyframe_image: approved/keyframe_scene_1.jpg}"
    )
    project.write_text(text)
    code, out, _ = storyc("unapprove", project, "scene:1")
    assert code == 0 and "kept approved/keyframe_scene_1.jpg" in out
    assert (project.parent / "approved" / "keyframe_scene_1.jpg").is_file()
    assert "scene:1" not in sidecar(project)["pins"]
    code, out, _ = storyc("unapprove", project, "scene:3")  # pinned by hand: no record, file in approved/
    assert code == 0 and "removed approved/keyframe_scene_1.jpg" in out
    code, out, _ = storyc("unapprove", project, "scene:2")
    assert code == 0 and "removed approved/keyframe_scene_2.jpg" in out
    assert project.read_text() == original  # byte for byte
    assert not (project.parent / "approved").exists()  # nothing left: the folder goes too
    # a pin to the user's own file: the pin goes, the file stays
    own = project.parent / "mine.png"
    shutil.copy(project.parent / "out" / "keyframes" / "scene_1_v1.jpg", own)
    project.write_text(
        original.replace("    duration_seconds: 3\n\n", "    duration_seconds: 3\n    keyframe_image: mine.png\n\n")
    )
    code, out, _ = storyc("unapprove", project, "scene:1")
    assert code == 0 and "kept mine.png" in out and own.is_file()
    assert project.read_text() == original


def test_staleness_in_list_and_lint(project):
    assert approve(project, "character:Ava")[0] == 0  # take 2, the one scene 2 was made with
    assert approve(project, "scene:2")[0] == 0
    code, out, _ = storyc("approve", project, "--list", "--out", project.parent / "out")
    assert code == 0
    assert "character:Ava  approved/sheet_Ava.jpg" in out and out.count("current") == 2
    assert not [d for d in lint_path(project) if d.code == "W417"]

    # re-approving Ava's other take makes the keyframe made with the previous one stale
    code, _, err = approve(project, "character:Ava", "--take", "1")
    assert code == 0
    assert "now stale: scene:2: scene 2's keyframe was approved with Ava's previous sheet" in err
    stale = [d for d in lint_path(project) if d.code == "W417"]
    assert len(stale) == 1 and "scene 2's keyframe was approved with Ava's previous sheet" in stale[0].message
    line = next(i for i, row in enumerate(project.read_text().splitlines(), 1) if "keyframe_scene_2.jpg" in row)
    assert stale[0].line == line

    # a changed description: both pins are stale, each at its own line
    project.write_text(project.read_text().replace("and a yellow raincoat", "and a green raincoat"))
    stale = sorted(d for d in lint_path(project) if d.code == "W417")
    assert [d.message.split(";")[0] for d in stale] == [
        "Ava's sheet was approved with Ava's previous visual_description",
        "scene 2's keyframe was approved with Ava's previous visual_description (and 1 more)",
    ]
    code, out, _ = storyc("approve", project, "--list")
    assert "STALE: Ava's sheet was approved with Ava's previous visual_description" in out


@pytest.mark.parametrize(
    ("recorded", "current", "reasons"),
    [
        ({"prompt": "a", "description:Ava": "d"}, {"prompt": "a", "description:Ava": "d"}, []),
        ({"prompt": "a", "character:Ava": None}, {"prompt": "a", "character:Ava": "s2"}, []),  # unknown then
        ({"prompt": "a", "character:Ava": "s1"}, {"prompt": "a", "character:Ava": None}, []),  # unknown now
        (
            {"prompt": "a"},
            {"prompt": "b", "description:Cy": "d"},
            ["scene 2's keyframe was approved with a different prompt"],
        ),
        (
            {"prompt": "a", "description:Ava": "d1", "clip:1": "c1"},
            {"prompt": "b", "description:Ava": "d2", "clip:1": "c2"},
            ["with Ava's previous visual_description", "with scene 1's previous clip"],
        ),
        (
            {"prompt": "a", "clip:1": "c1"},
            {"prompt": "b", "clip:1": "c2"},
            ["different prompt", "scene 1's previous clip"],
        ),
    ],
)
def test_stale_reasons(recorded, current, reasons):
    from storyc.lint.staleness import stale_reasons

    found = stale_reasons("scene:2", recorded, current)
    assert len(found) == len(reasons) and all(r in f for r, f in zip(reasons, found, strict=True)), found
