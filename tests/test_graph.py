"""The step graph (storyc.graph): edges from slots and chaining, which keys an edit changes, selection,
dry-run estimates and `storyc graph` (which must not import Prefect)."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from storyc.graph.builder import build_graph
from storyc.graph.estimate import planned_calls
from storyc.graph.keys import outputs_digest, step_key
from storyc.graph.resolve import resolve
from storyc.graph.select import SelectionError
from storyc.load.loader import load_story
from storyc.prompts.promptset import PromptSet
from storyc.store.cache import Cache

STORY = """\
title: Plan test
style: flat vector illustration with bold outlines and soft pastel shading
color_palette: teal, coral, cream
characters:
  - {name: Ava, role: protagonist, visual_description: a tall woman with short red hair and a yellow raincoat, personality_cues: [bold]}
  - {name: Bo, role: supporting, visual_description: a small boy with curly black hair and a blue striped shirt, personality_cues: [shy]}
  - {name: Cy, role: supporting, visual_description: an old man with a white beard and a green hat, personality_cues: [wise], reference_image: cy.png}
scenes:
  - {scene_id: 1, title: Ava at the pier, description: Ava walks along the pier., characters_present: [Ava],
     setting: wooden pier at dawn, camera: "wide shot, slow pan", mood: calm, action: Ava walks toward the sea, duration_seconds: 4}
  - {scene_id: 2, title: Bo joins Ava, description: Bo runs up to Ava., characters_present: [Ava, Bo],
     setting: wooden pier at dawn, camera: medium shot, mood: warm, action: Bo runs to Ava and waves, duration_seconds: 4,
     transition: crossfade}
  - {scene_id: 3, title: Cy in the shop, description: Cy sorts nets., characters_present: [Cy], setting: cluttered fishing shop,
     camera: close up, mood: dusty light, action: Cy untangles a net, duration_seconds: 4, chain_from: none}
  - {scene_id: 4, title: Cy looks up, description: Cy hears a bell., characters_present: [Cy], setting: cluttered fishing shop,
     camera: "close up, push in", mood: dusty light, action: Cy looks up at the door, duration_seconds: 10, chain_from: 3,
     chain_source: keyframe}
  - {scene_id: 5, title: The postcard, description: A postcard of the pier., characters_present: [Ava], setting: a postcard,
     camera: static, mood: nostalgic, action: the postcard flutters, duration_seconds: 4, chain_from: none,
     keyframe_image: postcard.png}
"""

ALL_MEDIA = {f"{k}:{i}" for k in ("keyframe", "video") for i in range(1, 6)} | {
    "character:Ava",
    "character:Bo",
    "character:Cy",
}


def _write_story(folder: Path, data=None) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "cy.png").write_bytes(b"\x89PNG fake cy")
    (folder / "postcard.png").write_bytes(b"\x89PNG fake postcard")
    path = folder / "story.yaml"
    if data is None:
        path.write_text(STORY)
    else:
        YAML().dump(data, path.open("w"))
    return path


def _plan(path: Path, override_dir=None, backend="offline"):
    loaded = load_story(path)
    return build_graph(
        loaded, PromptSet(loaded.story, story_path=loaded.path, override_dir=override_dir), backend=backend
    )


@pytest.fixture
def story_path(tmp_path) -> Path:
    return _write_story(tmp_path / "s")


@pytest.mark.unit
def test_edges_follow_slots_chaining_and_pins(story_path):
    plan = _plan(story_path)
    deps = {sid: set(s.deps) for sid, s in plan.steps.items()}
    assert deps["character:Ava"] == set()
    assert deps["keyframe:1"] == {"character:Ava"}  # first scene: no chain
    assert deps["keyframe:2"] == {"character:Ava", "character:Bo", "video:1"}  # last_frame chain
    assert deps["keyframe:3"] == {"character:Cy"}  # chain_from: none starts a branch
    assert deps["keyframe:4"] == {"character:Cy", "keyframe:3"}  # chain_source: keyframe
    assert deps["keyframe:5"] == set()  # pinned keyframe_image: used as is
    assert deps["video:2"] == {"keyframe:2", "character:Ava", "character:Bo"}  # drift check compares sheets
    assert deps["assemble"] == {f"video:{i}" for i in range(1, 6)}
    assert deps["script"] == set(plan.steps) - {"script"}
    # topological order: every dep comes first
    seen = set()
    for sid, step in plan.steps.items():
        assert set(step.deps) <= seen, sid
        seen.add(sid)


def _mutate_set(path, value):
    def apply(d):
        target = d
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return apply


# edit → steps whose static fingerprint must change (script always changes: it renders the whole story)
KEY_CASES = [
    ("scene 2 action", _mutate_set(("scenes", 1, "action"), "Bo jumps"), {"keyframe:2", "video:2"}),
    ("scene 2 transition", _mutate_set(("scenes", 1, "transition"), "cut"), {"assemble"}),
    ("scene 2 duration", _mutate_set(("scenes", 1, "duration_seconds"), 5), {"video:2", "assemble"}),
    # what happens in the scene: the moment the keyframe composes, what happens over the clip
    ("scene 2 description", _mutate_set(("scenes", 1, "description"), "Other."), {"keyframe:2", "video:2"}),
    # the checks name the scene by its title; the offline animatic's caption band shows it
    ("scene 2 title", _mutate_set(("scenes", 1, "title"), "Bo waves"), {"keyframe:2", "video:2"}),
    # a line gives the scene a speech step and the story a sound pass (the assembly); the
    # subtitles show it, so the offline clip does not (see test_sound_graph.py)
    (
        "scene 2 dialogue",
        _mutate_set(("scenes", 1, "dialogue"), [{"speaker": "Bo", "line": "Hello!"}]),
        {"assemble"},
    ),
    ("scene 2 narration", _mutate_set(("scenes", 1, "narration"), "Bo came running."), {"assemble"}),
    (
        "Bo visual_description",
        _mutate_set(("characters", 1, "visual_description"), "a tall boy"),
        {"character:Bo", "keyframe:2", "video:2"},
    ),
    ("Bo role", _mutate_set(("characters", 1, "role"), "villain"), set()),
    ("title", _mutate_set(("title",), "New title"), set()),
    ("palette", _mutate_set(("color_palette",), "black, white"), {f"keyframe:{i}" for i in range(1, 5)}),
    (
        "style",
        _mutate_set(("style",), "oil painting with thick impasto brush strokes and warm glazes"),
        ALL_MEDIA - {"keyframe:5"},
    ),
    ("video model", _mutate_set(("models",), {"video": "v2"}), {f"video:{i}" for i in range(1, 6)}),
    (
        "max video corrections",
        _mutate_set(("quality",), {"max_video_corrections": 1}),
        {f"video:{i}" for i in range(1, 6)},
    ),
    (
        "max keyframe iterations",
        _mutate_set(("quality",), {"max_keyframe_iterations": 2}),
        {f"keyframe:{i}" for i in range(1, 5)},
    ),
    # a pinned target is its file whatever the frame format: an approval on a 480p draft carries over
    ("resolution", _mutate_set(("resolution",), "480p"), (ALL_MEDIA - {"keyframe:5"}) | {"assemble"}),
]


@pytest.mark.unit
@pytest.mark.parametrize("name,mutate,expected", KEY_CASES, ids=[c[0] for c in KEY_CASES])
def test_an_edit_changes_exactly_the_keys_it_should(tmp_path, name, mutate, expected):
    base = YAML(typ="safe").load(STORY)
    before = {sid: s.fingerprint for sid, s in _plan(_write_story(tmp_path / "a", base)).steps.items()}
    data = copy.deepcopy(base)
    mutate(data)
    after = {sid: s.fingerprint for sid, s in _plan(_write_story(tmp_path / "b", data)).steps.items()}
    changed = {sid for sid in before if before[sid] != after[sid]}
    assert changed == expected | {"script"}


@pytest.mark.unit
def test_input_file_content_is_part_of_the_key(story_path):
    before = _plan(story_path).steps
    (story_path.parent / "cy.png").write_bytes(b"\x89PNG another drawing")
    (story_path.parent / "postcard.png").write_bytes(b"\x89PNG another postcard")
    after = _plan(story_path).steps
    changed = {sid for sid in before if before[sid].fingerprint != after[sid].fingerprint}
    assert changed == {"character:Cy", "keyframe:5"}  # downstream keys follow through their outputs


@pytest.mark.unit
def test_a_template_override_rekeys_only_the_steps_that_use_it(story_path, tmp_path):
    from storyc.resources import prompts_dir

    override = tmp_path / "prompts"
    override.mkdir()
    text = (prompts_dir() / "video.j2").read_text()
    (override / "video.j2").write_text(text + " Extra motion blur.")
    before = _plan(story_path).steps
    after = _plan(story_path, override_dir=override).steps
    changed = {sid for sid in before if before[sid].fingerprint != after[sid].fingerprint}
    assert changed == {f"video:{i}" for i in range(1, 6)}


@pytest.mark.unit
def test_a_paid_clip_is_not_rekeyed_by_what_only_the_offline_captions_show(tmp_path):
    base = YAML(typ="safe").load(STORY)
    data = copy.deepcopy(base)
    data["scenes"][1]["narration"] = "Bo came running."  # spoken by text to speech, not the clip
    before = _plan(_write_story(tmp_path / "a", base), backend="xai").steps
    after = _plan(_write_story(tmp_path / "b", data), backend="xai").steps
    changed = {sid for sid in before if before[sid].fingerprint != after[sid].fingerprint}
    assert changed == {"assemble", "script"}  # a sound pass now, and no clip re-keyed
    data["scenes"][1]["dialogue"] = [{"speaker": "Bo", "line": "Hello!"}]  # the clip speaks a line
    again = _plan(_write_story(tmp_path / "c", data), backend="xai").steps
    changed = {sid for sid in after if after[sid].fingerprint != again[sid].fingerprint}
    assert changed == {"speech:2", "video:2", "script"}  # its estimated timing, and the clip that speaks it


@pytest.mark.unit
def test_backend_and_render_scale_are_part_of_every_generated_media_key(story_path, monkeypatch):
    monkeypatch.delenv("STORYC_RENDER_SCALE", raising=False)
    generated = ALL_MEDIA - {"keyframe:5"}
    offline = _plan(story_path).steps
    xai = _plan(story_path, backend="xai").steps
    assert all(offline[s].fingerprint != xai[s].fingerprint for s in generated)
    monkeypatch.setenv("STORYC_RENDER_SCALE", "0.1")
    small = _plan(story_path).steps
    assert all(offline[s].fingerprint != small[s].fingerprint for s in generated)
    # a pinned keyframe is its file under any backend and scale (a draft's approval carries over)
    assert offline["keyframe:5"].fingerprint == xai["keyframe:5"].fingerprint == small["keyframe:5"].fingerprint


@pytest.mark.unit
def test_a_draft_changes_only_what_it_renders_differently(story_path):
    # storyc build --draft: a 480p, fast-encoded final video everywhere; on xai 480p clips with
    # no video corrections too. The rest is the full build's: shared in the cache.
    loaded = load_story(story_path)
    prompts = PromptSet(loaded.story, story_path=loaded.path)
    for backend in ("offline", "xai"):
        full = build_graph(loaded, prompts, backend=backend)
        draft = build_graph(loaded, prompts, backend=backend, draft=True)
        assert draft.draft and not full.draft
        changed = {sid for sid in full.steps if full.steps[sid].fingerprint != draft.steps[sid].fingerprint}
        clips = {f"video:{i}" for i in range(1, 6)}  # video:4 too (10 s: it gets no corrections anyway)
        assert changed == ({"assemble", "script"} | (clips if backend == "xai" else set())), backend
        assert draft.steps["assemble"].static["draft"] is True
        assert "draft" not in full.steps["assemble"].static
    xai_full = build_graph(loaded, prompts, backend="xai")
    xai_draft = build_graph(loaded, prompts, backend="xai", draft=True)
    clip, full_clip = xai_draft.steps["video:1"], xai_full.steps["video:1"]
    assert (clip.static["clip"]["resolution"], clip.static["quality"]["corrections"]) == ("480p", 0)
    assert (full_clip.static["resolution"], full_clip.static["quality"]["corrections"]) == ("720p", 2)
    assert clip.calls_max["video"] == 1 and full_clip.calls_max["video"] == 3
    assert (
        planned_calls(xai_draft, list(xai_draft.steps))["cost_max_usd"]
        < planned_calls(xai_full, list(xai_full.steps))["cost_max_usd"]
    )
    # the pictures a draft renders are the full build's steps: one cache entry for both
    for sid in ("character:Ava", "keyframe:1", "keyframe:2"):
        assert xai_draft.steps[sid].fingerprint == xai_full.steps[sid].fingerprint


@pytest.mark.unit
def test_a_paid_draft_takes_one_take_per_picture(tmp_path):
    # best-of-N is a full build's: a paid draft asks for one take per sheet and keyframe (and
    # re-keys them), the offline draft keeps the story's N (free, and shared with its full build)
    data = YAML(typ="safe").load(STORY)
    data["quality"] = {"sheet_candidates": 2, "keyframe_candidates": 4}
    loaded = load_story(_write_story(tmp_path, data))
    prompts = PromptSet(loaded.story, story_path=loaded.path)
    xai_full = build_graph(loaded, prompts, backend="xai")
    xai_draft = build_graph(loaded, prompts, backend="xai", draft=True)
    for sid, n in (("character:Ava", 2), ("keyframe:1", 4)):
        assert xai_full.steps[sid].static["quality"]["candidates"] == n
        assert xai_draft.steps[sid].static["quality"]["candidates"] == 1
        assert xai_draft.steps[sid].fingerprint != xai_full.steps[sid].fingerprint
        assert xai_draft.steps[sid].cost_max < xai_full.steps[sid].cost_max
    offline_full = build_graph(loaded, prompts, backend="offline")
    offline_draft = build_graph(loaded, prompts, backend="offline", draft=True)
    for sid in ("character:Ava", "keyframe:1"):
        assert offline_draft.steps[sid].fingerprint == offline_full.steps[sid].fingerprint


@pytest.mark.unit
def test_keys_resolve_progressively_from_upstream_outputs(story_path):
    plan = _plan(story_path)
    digest_a = outputs_digest({"a.jpg": "1" * 64}, {"sheet": "a.jpg"})
    digest_b = outputs_digest({"a.jpg": "2" * 64}, {"sheet": "a.jpg"})
    up = dict.fromkeys(plan.steps, digest_a)
    kf2 = plan.steps["keyframe:2"]
    k1 = step_key(kf2, up)
    # a regenerated chain frame (new bytes) gives the chained keyframe a new key...
    assert step_key(kf2, {**up, "video:1": digest_b}) != k1
    # ...an unrelated step's output does not
    assert step_key(kf2, {**up, "video:3": digest_b}) == k1
    # and with nothing cached, only steps without deps have keys
    res = resolve(plan, Cache(story_path.parent / "empty-cache"))
    known = {sid for sid, k in res.keys.items() if k}
    assert known == {"character:Ava", "character:Bo", "character:Cy", "keyframe:5"}
    assert not res.all_cached


SELECT_CASES = [
    ("scene:2", {"keyframe:2", "video:2"}),
    ("keyframe:3", {"keyframe:3"}),
    ("scene:3+", {"keyframe:3", "video:3", "keyframe:4", "video:4", "assemble", "script"}),
    ("character:Bo+", {"character:Bo", "keyframe:2", "video:2", "assemble", "script"}),
    ("+keyframe:2", {"keyframe:2", "character:Ava", "character:Bo", "video:1", "keyframe:1"}),
    ("scene:1, scene:5", {"keyframe:1", "video:1", "keyframe:5", "video:5"}),
    ("assemble", {"assemble"}),
]


@pytest.mark.unit
@pytest.mark.parametrize("spec,expected", SELECT_CASES, ids=[c[0] for c in SELECT_CASES])
def test_selection(story_path, spec, expected):
    assert _plan(story_path).select(spec) == expected


@pytest.mark.unit
@pytest.mark.parametrize("spec", ["scene:9", "character:Nobody", "frame:1", "scene", "!!"])
def test_bad_selection_is_a_clear_error(story_path, spec):
    with pytest.raises(SelectionError):
        _plan(story_path).select(spec)


@pytest.mark.unit
def test_dry_run_estimate_bounds(story_path):
    plan = _plan(story_path)
    est = planned_calls(plan, plan.order)
    # min: 3 sheets (image+vision), 4 keyframes (image+vision; scene 5 pinned: none), 5 clips (video+vision)
    assert est["calls_min"] == {"image": 7, "video": 5, "vision": 12, "chat": 0, "tts": 0}
    # max: 3 attempts per sheet, 3 iterations per keyframe, 1+2 clips per correctable scene (scene 4 is 10 s: 1)
    assert est["calls_max"] == {"image": 21, "video": 13, "vision": 9 + 12 + 13, "chat": 0, "tts": 0}
    assert 0 < est["cost_min_usd"] < est["cost_max_usd"]


@pytest.mark.integration
def test_graph_command_prints_keys_without_importing_prefect(story_path):
    code = (
        "import sys, json\n"
        "from typer.testing import CliRunner\n"
        "from storyc.cli.app import app\n"
        f"r = CliRunner().invoke(app, ['graph', {str(story_path)!r}, '--format', 'json', '--backend', 'offline'])\n"
        "assert r.exit_code == 0, r.output\n"
        "heavy = [m for m in ('prefect', 'xai_sdk', 'av', 'PIL', 'imageio_ffmpeg') if m in sys.modules]\n"
        "print(json.dumps({'graph': json.loads(r.output), 'heavy': heavy}))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    data = json.loads(out.stdout)
    assert data["heavy"] == []
    steps = {s["id"]: s for s in data["graph"]["steps"]}
    assert steps["character:Ava"]["key"] != "pending" and len(steps["character:Ava"]["key"]) == 64
    assert steps["video:1"]["key"] == "pending"
    assert not any(s["cached"] for s in steps.values())


@pytest.mark.unit
@pytest.mark.parametrize("fmt,needle", [("mermaid", "flowchart LR"), ("dot", "digraph storyc")])
def test_graph_text_formats(story_path, fmt, needle):
    from typer.testing import CliRunner

    from storyc.cli.app import app

    r = CliRunner().invoke(app, ["graph", str(story_path), "--format", fmt, "--backend", "offline"])
    assert r.exit_code == 0, r.output
    assert needle in r.output and "keyframe:4" in r.output and "pending" in r.output


@pytest.mark.unit
def test_graph_usage_errors(tmp_path):
    from typer.testing import CliRunner

    from storyc.cli.app import app

    assert CliRunner().invoke(app, ["graph", str(tmp_path / "missing.yaml")]).exit_code == 2


@pytest.mark.unit
def test_graph_refuses_a_story_with_lint_errors(story_path):
    from typer.testing import CliRunner

    from storyc.cli.app import app

    story_path.write_text(STORY.replace("characters_present: [Ava, Bo]", "characters_present: [Ava, Zed]"))
    r = CliRunner().invoke(app, ["graph", str(story_path)])
    assert r.exit_code == 1 and "Zed" in r.output and "flowchart" not in r.output


@pytest.mark.unit
def test_pinned_sheet_and_clip_are_steps_without_calls_keyed_by_their_file(tmp_path):
    base = YAML(typ="safe").load(STORY)
    base["characters"][1]["sheet_image"] = "approved/sheet_Bo.png"
    base["scenes"][0]["clip_video"] = "approved/clip_scene_1.mp4"
    path = _write_story(tmp_path / "p", base)
    (path.parent / "approved").mkdir()
    (path.parent / "approved" / "sheet_Bo.png").write_bytes(b"\x89PNG Bo take 2")
    (path.parent / "approved" / "clip_scene_1.mp4").write_bytes(b"mp4 clip take 1")
    plan = _plan(path)
    bo, clip = plan.steps["character:Bo"], plan.steps["video:1"]
    assert bo.pinned == "approved/sheet_Bo.png" and clip.pinned == "approved/clip_scene_1.mp4"
    assert bo.deps == () and clip.deps == ()  # the file is what it is
    assert bo.calls_max == {} and clip.calls_max == {}  # no paid call...
    assert bo.saves["calls_min"] == {"image": 1, "vision": 1} and clip.saves["cost_min"] > 0  # ...and what it saves
    assert est_total(plan) == est_total(_plan(_write_story(tmp_path / "u"))) - 2 - 2  # a sheet and a clip fewer (min)
    # downstream still depends on the pinned steps: their outputs feed downstream keys
    assert "character:Bo" in plan.steps["keyframe:2"].deps and "video:1" in plan.steps["keyframe:2"].deps
    # the pinned key follows the file, not the character's text nor the scene's
    data = copy.deepcopy(base)
    data["characters"][1]["visual_description"] = "a small boy in a red coat"
    data["scenes"][0]["action"] = "Ava runs"
    _write_story(path.parent, data)
    after = _plan(path).steps
    assert after["character:Bo"].fingerprint == bo.fingerprint and after["video:1"].fingerprint == clip.fingerprint
    assert after["keyframe:2"].fingerprint != plan.steps["keyframe:2"].fingerprint
    (path.parent / "approved" / "sheet_Bo.png").write_bytes(b"\x89PNG Bo take 3")
    assert _plan(path).steps["character:Bo"].fingerprint != bo.fingerprint


def est_total(plan) -> int:
    return planned_calls(plan, plan.order)["calls_min_total"]


@pytest.mark.unit
def test_a_redo_note_is_appended_to_its_prompt_and_rekeys_only_its_step(story_path):
    loaded = load_story(story_path)
    prompts = PromptSet(loaded.story, story_path=loaded.path)
    plain = build_graph(loaded, prompts).steps
    notes = {"scene:2": "the scarf must be emerald green", "character:Ava": "add freckles", "clip:3": "slower"}
    noted = build_graph(loaded, prompts, notes=notes).steps
    changed = {sid for sid in plain if plain[sid].fingerprint != noted[sid].fingerprint}
    assert changed == {"keyframe:2", "character:Ava", "video:3"}
    assert noted["keyframe:2"].static["prompts"]["compose"].endswith("the scarf must be emerald green.")
    assert noted["keyframe:2"].static["prompts"]["compose"].startswith(plain["keyframe:2"].static["prompts"]["compose"])
    assert noted["character:Ava"].static["prompts"]["sheet"].endswith("add freckles.")
    assert noted["video:3"].static["prompts"]["video"].endswith("slower.")
    assert noted["keyframe:2"].note == "the scarf must be emerald green"
    # a note on a pinned target changes nothing: the file is used as is
    assert (
        build_graph(loaded, prompts, notes={"scene:5": "x"}).steps["keyframe:5"].fingerprint
        == plain["keyframe:5"].fingerprint
    )


@pytest.mark.unit
def test_until_stops_before_any_clip(story_path):
    plan = _plan(story_path)
    assert plan.up_to("sheets") == {"character:Ava", "character:Bo", "character:Cy"}
    # keyframe 2 is chained from clip 1's last frame: it waits for the clips
    keyframes = plan.up_to("keyframes") - plan.up_to("sheets")
    assert keyframes == {"keyframe:1", "keyframe:3", "keyframe:4", "keyframe:5"}
    assert plan.up_to("videos") == ALL_MEDIA
