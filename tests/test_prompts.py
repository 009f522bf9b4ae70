"""Prompt templates: the style lock, verbatim descriptions, motion-only video prompts,
slot binding, override lookup, the sandbox, caching and the `storyc prompts` command."""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from storyc.cli.app import app
from storyc.diagnostics import StorycError
from storyc.load.loader import load_story
from storyc.model.story import Story
from storyc.prompts.listing import prompt_listing
from storyc.prompts.promptset import TEMPLATE_NAMES, PromptSet, render_plan_prompts
from storyc.prompts.slots import allocate_slots
from storyc.prompts.text import brief, collapse, normalize_space, split_sentences
from storyc.resources import prompts_dir

ROOT = Path(__file__).resolve().parent.parent
STORIES = sorted((ROOT / "stories").glob("*.yaml"))
FOX = ROOT / "stories" / "fox_and_owl.yaml"
HEIST = ROOT / "stories" / "market_heist.yaml"
runner = CliRunner()


def prompt_set(path: Path, **kwargs) -> PromptSet:
    loaded = load_story(path)
    return PromptSet(loaded.story, story_path=loaded.path, **kwargs)


def every_prompt(ps: PromptSet) -> dict[str, str]:
    story = ps.story
    out = {}
    for c in story.characters:
        out[f"sheet:{c.name}"] = ps.character_sheet(c)
        out[f"from_reference:{c.name}"] = ps.character_from_reference(c)
        out[f"check_sheet:{c.name}"] = ps.check_sheet(c)
    for i in range(len(story.scenes)):
        out[f"keyframe:{i}"] = ps.keyframe(i)
        out[f"video:{i}"] = ps.video(i)
        out[f"check_keyframe:{i}"] = ps.check_keyframe(i)
        out[f"check_last_frame:{i}"] = ps.check_last_frame(i)
        out[f"video_fix:{i}"] = ps.video_fix(i, ["the scarf turned red"])
    out["fix_edit"] = ps.fix_edit("the scarf", "make it emerald green")
    return out


@pytest.mark.unit
def test_example_stories_exist():
    assert {p.name for p in STORIES} >= {"fox_and_owl.yaml", "lighthouse_keeper.yaml", "market_heist.yaml"}


@pytest.mark.unit
@pytest.mark.parametrize("path", STORIES, ids=lambda p: p.stem)
def test_style_lock_starts_every_image_and_video_prompt(path):
    ps = prompt_set(path)
    style = normalize_space(ps.story.style)
    for name, prompt in every_prompt(ps).items():
        if name.split(":")[0] in ("sheet", "from_reference", "keyframe", "video", "fix_edit", "video_fix"):
            assert prompt.startswith(style), name
        assert prompt == prompt.strip() and "  " not in prompt, f"{name} is not whitespace-collapsed"


@pytest.mark.unit
@pytest.mark.parametrize("path", STORIES, ids=lambda p: p.stem)
def test_descriptions_verbatim_where_characters_are_described(path):
    ps = prompt_set(path)
    story = ps.story
    for c in story.characters:
        desc = normalize_space(c.visual_description)
        assert desc in ps.character_sheet(c)
        assert desc in ps.character_from_reference(c)
        assert desc in ps.check_sheet(c)
    for i, scene in enumerate(story.scenes):
        for name in dict.fromkeys(scene.characters_present):
            desc = normalize_space(story.character(name).visual_description)
            assert desc in ps.check_keyframe(i) and desc in ps.check_last_frame(i)
            # the keyframe repeats at least the description's first whole sentence(s)
            assert brief(desc) in ps.keyframe(i) and desc.startswith(brief(desc))


@pytest.mark.unit
@pytest.mark.parametrize("path", STORIES, ids=lambda p: p.stem)
def test_video_prompts_are_motion_only(path):
    ps = prompt_set(path)
    for i, scene in enumerate(ps.story.scenes):
        for prompt in (ps.video(i), ps.video_fix(i, ["drift"])):
            for c in ps.story.characters:
                desc = normalize_space(c.visual_description)
                assert desc not in prompt
                assert brief(desc) not in prompt, "not even the description's first sentence"
        video = ps.video(i)
        for part in (scene.camera, scene.action, scene.mood):
            assert normalize_space(part)[1:] in video


@pytest.mark.unit
def test_keyframe_binds_each_slot_to_its_reference_image():
    """Inputs are named as xAI documents them: <IMAGE_N>, from 1, in the order sent."""
    ps = prompt_set(FOX)
    prompt = ps.keyframe(1)  # Ember, Sage, chain from scene 1
    assert "Ember from <IMAGE_1>" in prompt
    assert "Sage from <IMAGE_2>" in prompt
    assert "<IMAGE_3> is the last frame of the previous shot (scene 1)" in prompt
    assert "Maintain exact character appearances from the reference images." in prompt
    first = ps.keyframe(0)  # Ember alone, first scene: no chain
    assert "Ember from <IMAGE_1>" in first and "<IMAGE_2>" not in first


@pytest.mark.unit
def test_text_only_characters_are_described_in_full():
    loaded = load_story(HEIST)
    data = loaded.story.model_dump()
    data["scenes"][4]["chain_from"] = 4  # the 3-character finale now chains: Marlow loses his slot
    story = Story.model_validate(data)
    plan = allocate_slots(story, 4)
    assert plan.text_only == ("Marlow",)
    prompt = PromptSet(story).keyframe(4)
    marlow = normalize_space(story.character("Marlow").visual_description)
    assert f"Marlow, positioned on the right, has no reference image; draw exactly this description: {marlow}" in prompt
    assert "Juno from <IMAGE_1>" in prompt and "Pike from <IMAGE_2>" in prompt
    assert "<IMAGE_3> is the last frame of the previous shot (scene 4)" in prompt


@pytest.mark.unit
def test_chain_source_keyframe_wording():
    ps = prompt_set(ROOT / "stories" / "lighthouse_keeper.yaml")
    assert "<IMAGE_3> is the keyframe of scene 1" in ps.keyframe(2)


@pytest.mark.unit
def test_fix_edit_and_video_fix_are_surgical():
    ps = prompt_set(FOX)
    fix = ps.fix_edit("Ember's scarf.", "make it emerald green")
    assert "Change ONLY Ember's scarf in <IMAGE_1>: make it emerald green. Keep everything else identical." in fix
    assert "<IMAGE_2>" not in fix
    anchored = ps.fix_edit("Ember's scarf.", "make it emerald green", sheet_of="Ember")
    assert "Ember must look exactly as in <IMAGE_2> (their character sheet)." in anchored
    vfix = ps.video_fix(1, ["Ember's scarf turned red", " ", "Sage lost his spectacles"])
    assert "Fix ONLY this drift: Ember's scarf turned red; Sage lost his spectacles." in vfix
    assert "Keep Ember and Sage looking exactly as in the first frame" in vfix
    assert "Fix ONLY the drift from the first frame." in ps.video_fix(0, [])


@pytest.mark.unit
def test_reword_softens_but_keeps_the_prompt():
    ps = prompt_set(FOX)
    original = ps.keyframe(0) + " A Knife and blood."
    softened = ps.reword(original)
    assert softened.startswith(normalize_space(ps.story.style))
    assert "Knife" not in softened and "blood" not in softened and "A Tool and red paint." in softened
    assert "family-friendly" in softened


@pytest.mark.unit
def test_reword_keeps_the_style_lock_verbatim_even_when_it_holds_softened_words():
    ps = prompt_set(FOX)
    style = "Gritty comic art with blood-red skies, heavy ink shadows and a knife-sharp line over a ruined city"
    ps = PromptSet(ps.story.model_copy(update={"style": style}))
    for prompt in (ps.video(0), ps.keyframe(1), ps.character_sheet(ps.story.characters[0])):
        softened = ps.reword(prompt + " Blood everywhere.")
        assert softened.startswith(style)
        assert "Blood everywhere" not in softened


@pytest.mark.unit
def test_checks_name_the_images_in_order():
    ps = prompt_set(HEIST)
    check = ps.check_keyframe(4)
    assert check.startswith('Image 1 is the keyframe of scene 5, "Caught Red-Handed".')
    assert "image 2 is Juno; image 3 is Pike; image 4 is Marlow." in check
    assert "Change ONLY" in check
    assert "Image 1 is the last frame of the video clip of scene 5" in ps.check_last_frame(4)


@pytest.mark.unit
def test_plan_prompts():
    system, user = render_plan_prompts("A fox meets an owl", characters=2, scenes=3)
    assert "80+ words" in system and "visual storytelling director" in system
    assert user.startswith("Create a visual story plan for: A fox meets an owl.")
    assert "exactly 2 characters" in user and "exactly 3 scenes" in user
    _, plain = render_plan_prompts("A fox")
    assert "exactly" not in plain


@pytest.mark.unit
def test_multiline_descriptions_are_normalized_not_paraphrased():
    loaded = load_story(FOX)
    data = loaded.story.model_dump()
    data["characters"][0]["visual_description"] = "A red fox.\n\n  Wears a   green scarf.\tBright eyes."
    story = Story.model_validate(data)
    assert "A red fox. Wears a green scarf. Bright eyes." in PromptSet(story).character_sheet(story.characters[0])


@pytest.mark.unit
def test_collapse_rules():
    assert collapse("  a\n b  c \n\n\n d\n") == "a b c\nd"
    assert collapse("\n\n") == ""


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(st.lists(st.text(alphabet="abc XYZ.!?,\n", min_size=1, max_size=40), min_size=1, max_size=8), st.integers(1, 60))
def test_brief_is_a_verbatim_whole_sentence_prefix(parts, max_words):
    text = normalize_space(" ".join(parts))
    short = brief(text, max_words)
    assert text.startswith(short)
    rest = text[len(short) :]
    # never cut inside a word: what follows starts a new word (or nothing follows)
    assert rest == "" or rest.startswith(" ")
    if rest:
        assert short[-1] in ".!?", "only cut at a sentence end"


@pytest.mark.unit
@pytest.mark.parametrize(
    "text, expected",
    [
        # a period after an abbreviation or an initial does not end the sentence
        (
            "A man aged approx. 40 with a St. Bernard-sized build. He smiles.",
            "A man aged approx. 40 with a St. Bernard-sized build.",
        ),
        ("J. R. Smith wears e.g. a hat. Done.", "J. R. Smith wears e.g. a hat."),
        # nor does one followed by a lower-case word
        ("Tall... and thin. Red coat.", "Tall... and thin."),
        # a closing quote stays with its sentence
        ('She says "Hi." Then she waves.', 'She says "Hi."'),
        ("Short woman!!! Red coat?! Green boots.", "Short woman!!!"),
    ],
)
def test_brief_never_ends_inside_a_sentence(text, expected):
    assert brief(text, max_words=1) == expected
    assert " ".join(split_sentences(text)) == text


# ─── template lookup and overrides ──────────────────────────────────────────


def copy_story(tmp_path: Path, source: Path = FOX) -> Path:
    target = tmp_path / "story.yaml"
    target.write_text(source.read_text())
    return target


@pytest.mark.unit
def test_lookup_order_override_dir_then_story_dir_then_default(tmp_path):
    story = copy_story(tmp_path)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "video.j2").write_text("STORY DIR {{ scene.action }}")
    (tmp_path / "prompts" / "fix_edit.j2").write_text("STORY DIR fix")
    override = tmp_path / "mine"
    override.mkdir()
    (override / "video.j2").write_text("OVERRIDE {{ scene.camera }}")

    ps = prompt_set(story, override_dir=override)
    assert ps.video(0) == "OVERRIDE wide shot, slow dolly forward"
    assert ps.fix_edit("a", "b") == "STORY DIR fix"
    assert ps.keyframe(0) == prompt_set(FOX).keyframe(0)  # packaged default
    used = ps.templates_used()
    assert set(used) == set(TEMPLATE_NAMES)
    assert used["video"] == override / "video.j2"
    assert used["fix_edit"] == (tmp_path / "prompts" / "fix_edit.j2").resolve()
    assert used["keyframe"] == prompts_dir() / "keyframe.j2"
    assert prompt_set(story).video(0) == "STORY DIR the fox trots forward and pauses, ears perking toward a glow"


@pytest.mark.unit
def test_template_digest_is_sha256_of_the_source_in_use(tmp_path):
    story = copy_story(tmp_path)
    ps = prompt_set(story)
    default = (prompts_dir() / "video_extend.j2").read_bytes()  # a template that imports nothing
    assert ps.template_digest("video_extend") == hashlib.sha256(default).hexdigest()
    images = (prompts_dir() / "_images.j2").read_bytes()  # keyframe.j2 imports the <IMAGE_N> macro
    keyframe = hashlib.sha256((prompts_dir() / "keyframe.j2").read_bytes() + b"\0_images.j2\0" + images)
    assert ps.template_digest("keyframe") == keyframe.hexdigest()
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "keyframe.j2").write_text("{% include '_part.j2' %}")
    (tmp_path / "prompts" / "_part.j2").write_text("{{ style }}")
    first = prompt_set(story).template_digest("keyframe")
    assert first != ps.template_digest("keyframe")
    (tmp_path / "prompts" / "_part.j2").write_text("{{ style }} changed")
    assert prompt_set(story).template_digest("keyframe") != first, "an edited partial changes the digest"
    assert prompt_set(story).keyframe(0).endswith("changed")


@pytest.mark.unit
@pytest.mark.parametrize(
    "source, line, column, message",
    [
        ("fine\n{{ ''.__class__.__mro__ }}\n", 2, 1, "unsafe"),
        ("ok\n\n{% if %}\n", 3, 1, "Expected an expression"),
        # an undefined name or field: its own column, and a did-you-mean when one is near
        ("a\nb\n{{ no_such_variable }}\n", 3, 4, "'no_such_variable' is undefined"),
        ("{{ scene.no_such_field }}\n", 1, 4, "'scene' has no field 'no_such_field'"),
        ("x\n  {{ scene.actoin | capfirst }}\n", 2, 6, "'scene' has no field 'actoin'; did you mean 'action'?"),
        ("{{ style }} {{ plaette }}", 1, 16, "'plaette' is undefined; did you mean 'palette'?"),
        ("x\n{% include '_missing.j2' %}\n", 2, 1, "template '_missing.j2' not found"),
        ("{{ 1 / 0 }}", 1, 1, "division by zero"),
        ("{{ scene.action.__init__.__globals__ }}", 1, 1, "unsafe"),
        ("{% set x = names.append(1) %}", 1, 1, "unsafe"),
    ],
)
def test_template_failures_are_positioned_diagnostics(tmp_path, source, line, column, message):
    (tmp_path / "video.j2").write_text(source)
    ps = prompt_set(FOX, override_dir=tmp_path)
    with pytest.raises(StorycError) as info:
        ps.video(0)
    [diag] = info.value.diagnostics
    assert diag.code == "E501" and diag.is_error
    assert (diag.path, diag.line, diag.column) == (str(tmp_path / "video.j2"), line, column)
    assert diag.message.startswith("template error: ") and message in diag.message
    # other templates still render
    assert ps.character_sheet(ps.story.characters[0])


@pytest.mark.unit
def test_unreadable_template_is_a_diagnostic(tmp_path):
    (tmp_path / "video.j2").write_bytes(b"\xff\xfe bad utf-8")
    with pytest.raises(StorycError) as info:
        prompt_set(FOX, override_dir=tmp_path).video(0)
    assert info.value.diagnostics[0].format().startswith(f"{tmp_path / 'video.j2'}:1:1: error E501 template error:")


@pytest.mark.unit
def test_prompts_are_cached_per_instance():
    ps = prompt_set(FOX)
    assert ps.keyframe(1) is ps.keyframe(1)
    assert ps.video_fix(1, ["a"]) is ps.video_fix(1, ["a"])


def big_story(scenes: int) -> Story:
    desc = " ".join(f"trait{i}" for i in range(100)) + "."
    names = [f"C{i}" for i in range(4)]
    return Story.model_validate(
        {
            "title": "Big",
            "style": "flat vector animation with bold outlines and soft pastel shading",
            "color_palette": "red, blue",
            "characters": [
                {"name": n, "role": "r", "visual_description": f"{n} {desc}", "personality_cues": ["calm"]}
                for n in names
            ],
            "scenes": [
                {
                    "scene_id": i + 1,
                    "title": f"S{i}",
                    "description": "d.",
                    "characters_present": names[: i % 4],
                    "setting": f"place {i}",
                    "camera": "wide shot, slow pan",
                    "mood": "soft",
                    "action": f"move {i}",
                    "duration_seconds": 8,
                    **({"chain_from": "none"} if i % 10 == 0 else {}),
                }
                for i in range(scenes)
            ],
        }
    )


@pytest.mark.unit
def test_a_1000_scene_story_renders_every_prompt():
    entries = prompt_listing(PromptSet(big_story(1000)))  # how fast: bench/lint_speed.py
    assert len(entries) == 4 * 2 + 1000 * 4


# ─── storyc prompts ─────────────────────────────────────────────────────────


@pytest.mark.unit
def test_cli_prompts_text_lists_every_step():
    result = runner.invoke(app, ["prompts", str(FOX)])
    assert result.exit_code == 0, result.output
    out = result.output
    for header in (
        "== character:Ember character_sheet",
        "== character:Sage check_sheet",
        "== keyframe:1 keyframe",
        "== keyframe:3 check_keyframe",
        "== video:2 video",
        "== video:3 check_last_frame",
    ):
        assert header in out
    assert "images: 1 = character Ember, 2 = character Sage, 3 = chain scene 1 last_frame" in out


@pytest.mark.unit
def test_cli_prompts_json_one_scene():
    result = runner.invoke(app, ["prompts", str(HEIST), "--scene", "5", "--format", "json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    assert [(e["step"], e["kind"]) for e in entries] == [
        ("keyframe:5", "keyframe"),
        ("keyframe:5", "check_keyframe"),
        ("video:5", "video"),
        ("video:5", "check_last_frame"),
    ]
    assert all(set(e) >= {"step", "kind", "prompt", "slots"} for e in entries)
    assert entries[0]["slots"] == [
        {"image": 1, "kind": "character", "name": "Juno"},
        {"image": 2, "kind": "character", "name": "Pike"},
        {"image": 3, "kind": "character", "name": "Marlow"},
    ]
    assert entries[0]["text_only"] == []
    assert entries[0]["prompt"] == prompt_set(HEIST).keyframe(4)


@pytest.mark.unit
def test_cli_prompts_pinned_keyframe_and_reference_image(tmp_path):
    story = copy_story(tmp_path)
    (tmp_path / "ember.png").write_bytes(b"\x89PNG")
    (tmp_path / "k.png").write_bytes(b"\x89PNG")
    text = story.read_text().replace(
        "    role: protagonist\n", "    role: protagonist\n    reference_image: ember.png\n", 1
    )
    text = text.replace(
        "    duration_seconds: 8\n    transition: cut\n",
        "    duration_seconds: 8\n    transition: cut\n    keyframe_image: k.png\n",
        1,
    )
    story.write_text(text)
    result = runner.invoke(app, ["prompts", str(story), "--format", "json"])
    assert result.exit_code == 0, result.output
    entries = json.loads(result.output)
    kinds = {(e["step"], e["kind"]) for e in entries}
    assert ("character:Ember", "character_from_reference") in kinds and ("character:Sage", "character_sheet") in kinds
    pinned = next(e for e in entries if e["step"] == "keyframe:1")
    assert pinned["kind"] == "keyframe_pinned" and pinned["prompt"] is None and pinned["image"] == "k.png"
    assert ("keyframe:1", "check_keyframe") not in kinds
    ref = next(e for e in entries if e["kind"] == "character_from_reference")
    assert ref["slots"] == [{"image": 1, "kind": "reference_image", "path": "ember.png"}]


@pytest.mark.unit
def test_cli_prompts_errors(tmp_path):
    missing = runner.invoke(app, ["prompts", str(tmp_path / "nope.yaml")])
    assert missing.exit_code == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("title: [unclosed\n")
    result = runner.invoke(app, ["prompts", str(bad)])
    assert result.exit_code == 1 and "bad.yaml:" in result.output and "Traceback" not in result.output
    assert runner.invoke(app, ["prompts", str(FOX), "--scene", "42"]).exit_code == 2
    assert runner.invoke(app, ["prompts", str(FOX), "--format", "xml"]).exit_code == 2
    assert runner.invoke(app, ["prompts", str(FOX), "--prompts", str(tmp_path / "nodir")]).exit_code == 2


@pytest.mark.unit
def test_cli_prompts_broken_story_template_fails_unless_prompts_replaces_it(tmp_path):
    story = copy_story(tmp_path)
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "video.j2").write_text("{{ style }}\n{{ scene.descripton }}\n")
    broken = runner.invoke(app, ["prompts", str(story)])
    assert broken.exit_code == 1
    assert f"{tmp_path / 'prompts' / 'video.j2'}:2:4: error E501 " in broken.output
    assert "did you mean 'description'?" in broken.output
    fixed = tmp_path / "fixed"
    fixed.mkdir()
    (fixed / "video.j2").write_text("{{ style }} FIXED")
    result = runner.invoke(app, ["prompts", str(story), "--prompts", str(fixed), "--scene", "1"])
    assert result.exit_code == 0, result.output
    assert "FIXED" in result.output


@pytest.mark.unit
def test_cli_prompts_hostile_override_is_a_diagnostic(tmp_path):
    (tmp_path / "keyframe.j2").write_text("{{ style }}\n{{ ''.__class__.__mro__[1].__subclasses__() }}\n")
    result = runner.invoke(app, ["prompts", str(FOX), "--prompts", str(tmp_path)])
    assert result.exit_code == 1
    assert re.search(
        rf"^{re.escape(str(tmp_path / 'keyframe.j2'))}:2:1: error E501 template error: ", result.output, re.M
    )
    assert "Traceback" not in result.output


@pytest.mark.integration
def test_prompts_and_schema_commands_stay_light_in_a_real_process():
    """Through the installed entry point: output, exit code, and no heavy imports."""
    import subprocess
    import sys

    heavy = ("prefect", "xai_sdk", "av", "PIL", "imageio_ffmpeg")
    code = (
        "import sys\n"
        "from storyc.cli.app import app\n"
        "try:\n"
        f"    app(sys.argv[1:], standalone_mode=False)\n"
        "finally:\n"
        f"    print('HEAVY:' + ','.join(m for m in {heavy!r} if m in sys.modules))\n"
    )
    for args in (["prompts", str(FOX), "--scene", "1"], ["schema"]):
        done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        assert done.stdout.rstrip().endswith("HEAVY:"), done.stdout[-200:]
    script = Path(sys.executable).with_name("storyc")
    argv = [str(script)] if script.exists() else [sys.executable, "-m", "storyc"]
    done = subprocess.run([*argv, "prompts", str(FOX), "--format", "json"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and len(json.loads(done.stdout)) == 4 + 3 * 4
    missing = subprocess.run([*argv, "prompts", "no/such/story.yaml"], capture_output=True, text=True, timeout=60)
    assert missing.returncode == 2 and "no such file" in missing.stderr


@pytest.mark.unit
def test_cli_prompts_refuses_a_story_with_lint_errors(tmp_path):
    story = copy_story(tmp_path)
    story.write_text(story.read_text().replace("characters_present: [Ember]", "characters_present: [Embr]"))
    result = runner.invoke(app, ["prompts", str(story)])
    assert result.exit_code == 1
    assert re.search(r"story\.yaml:\d+:\d+: error E\d+ .*Embr", result.output), result.output


words = st.text(alphabet="abcdefghij", min_size=1, max_size=8)
phrase = st.lists(words, min_size=1, max_size=10).map(" ".join)
description = st.lists(words, min_size=80, max_size=120).map(lambda w: " ".join(w) + ".")


@pytest.mark.unit
@settings(max_examples=60, deadline=None)
@given(
    descriptions=st.lists(description, min_size=1, max_size=3),
    scene_parts=st.lists(st.tuples(phrase, phrase, phrase), min_size=1, max_size=4),
    style=st.lists(words, min_size=8, max_size=16).map(" ".join),
)
def test_generated_stories_keep_the_prompt_rules(descriptions, scene_parts, style):
    names = [f"C{i}" for i in range(len(descriptions))]
    story = Story.model_validate(
        {
            "title": "T",
            "style": style,
            "color_palette": "red",
            "characters": [
                {"name": n, "role": "r", "visual_description": d, "personality_cues": []}
                for n, d in zip(names, descriptions, strict=True)
            ],
            "scenes": [
                {
                    "scene_id": i + 1,
                    "title": "t",
                    "description": "d",
                    "characters_present": names,
                    "setting": "s",
                    "camera": camera,
                    "mood": mood,
                    "action": action,
                    "duration_seconds": 5,
                }
                for i, (camera, mood, action) in enumerate(scene_parts)
            ],
        }
    )
    ps = PromptSet(story)
    for i in range(len(story.scenes)):
        video, keyframe = ps.video(i), ps.keyframe(i)
        assert video.startswith(style) and keyframe.startswith(style)
        assert not any(d in video for d in descriptions)
        plan = allocate_slots(story, i)
        for n, slot in enumerate(plan.slots, start=1):
            if slot.kind == "character":
                assert f"{slot.name} from <IMAGE_{n}>" in keyframe
        for name in plan.text_only:
            assert story.character(name).visual_description in keyframe


@pytest.mark.unit
def test_reword_of_a_check_prompt_keeps_it_a_check():
    ps = prompt_set(FOX)
    softened = ps.reword(ps.check_keyframe(0))
    assert softened.startswith("Image 1 is the keyframe of scene 1")
    assert "Depict this" not in softened and "fictional, family-friendly artwork" in softened


@pytest.mark.unit
def test_a_scenes_description_and_every_distinguishing_mark_reach_its_prompts():
    # issue 13: the description fed no prompt, and keyframes carried only the first ~45
    # words of each visual_description (the fox's scarf and the owl's spectacles were cut)
    ps = prompt_set(FOX)
    story = ps.story
    index = next(i for i, s in enumerate(story.scenes) if len(s.characters_present) >= 2)
    scene = story.scenes[index]
    keyframe, video = ps.keyframe(index), ps.video(index)
    description = normalize_space(scene.description)
    assert description in keyframe and description in video
    for name in scene.characters_present:
        for part in split_sentences(normalize_space(story.character(name).visual_description)):
            assert part in keyframe, (name, part)
            assert part not in video  # the keyframe carries appearance; a video prompt never does
    assert "scarf" in keyframe and "spectacles" in keyframe


@pytest.mark.unit
def test_storyc_prompts_says_which_story_fields_feed_each_prompt(tmp_path):
    text = runner.invoke(app, ["prompts", str(FOX), "--scene", "2"])
    assert text.exit_code == 0, text.output
    blocks = {block.splitlines()[0]: block for block in text.output.split("\n\n")}
    keyframe = blocks["== keyframe:2 keyframe"].splitlines()
    assert keyframe[2] == (
        "from: color_palette, style; scene: action, camera, description, mood, setting; "
        "characters: name, personality_cues, visual_description"
    )
    video = blocks["== video:2 video"].splitlines()
    # what the template can read: the setting in reference mode, the lines a clip speaks itself
    video_fields = ["action", "camera", "description", "dialogue", "mood", "setting"]
    assert video[2] == "from: style; scene: " + ", ".join(video_fields)
    as_json = json.loads(runner.invoke(app, ["prompts", str(FOX), "--scene", "2", "--format", "json"]).output)
    assert {e["kind"]: e["fields"] for e in as_json}["video"]["scene"] == video_fields
    # an override is read as it is: a video template that leaves the description out says so
    (tmp_path / "video.j2").write_text("{{ style }} {% for n in names %}{{ n }}{% endfor %} {{ scene.action }}")
    listed = runner.invoke(app, ["prompts", str(FOX), "--scene", "2", "--prompts", str(tmp_path)])
    assert "from: style; scene: action, characters_present\n" in listed.output


@pytest.mark.unit
@pytest.mark.parametrize("story", STORIES, ids=[s.stem for s in STORIES])
def test_storyc_prompts_lists_the_fields_of_every_prompt_of_every_example_story(story):
    # every kind of prompt, a reference-to-video clip's too (video.j2 in mode "reference"),
    # names the story fields its template reads
    listed = runner.invoke(app, ["prompts", str(story), "--format", "json"])
    assert listed.exit_code == 0, listed.output
    entries = [e for e in json.loads(listed.output) if e["prompt"] is not None]
    assert entries and all(e["fields"].get("story") for e in entries), story
    if story.stem == "harbour_lights":
        (reference,) = [e for e in entries if e["kind"] == "video_reference"]
        assert reference["fields"]["location"] == ["name", "visual_description"]
